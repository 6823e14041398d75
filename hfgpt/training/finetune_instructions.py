"""Instruction fine-tuning (the book's chapter 7) with the Hugging Face ``Trainer``: Alpaca records, the book's prompt
as the chat template, the validation loss before and after training, a response for every test record
(``instruction-data-with-response.json``, like the book) and an optional judge's scores.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ..data.instructions import (InstructionCollator, InstructionDataset, RecordDataArguments, RecordReport,
                                 clean_records, load_instruction_records, split_records, tokenize_records)
from ..errors import HfgptInputError
from ..evaluation.judge import JudgeArguments
from .common import FinetuneArguments, LoraArguments, RecipeTrainingArguments, load_chat_model
from .outputs import RESPONSES_FILE, write_json

logger = logging.getLogger("hfgpt.finetune_instructions")



@dataclass
class InstructionDataArguments(RecordDataArguments):
    max_length: int | None = field(default=None, metadata={"help": "allowed_max_length: longer examples are skipped; default the model's context."})
    mask_prompt: bool = field(default=False, metadata={"help": "Leave the prompt out of the training loss (the book's exercise 7.2)."})
    padding_free: bool = field(default=False, metadata={"help": "Pack each batch into one row without padding (DataCollatorWithFlattening)."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Generate responses for only the first N test records."})
    max_new_tokens: int = field(default=256, metadata={"help": "Response length limit when generating (the book: 256)."})
    generation_batch_size: int = field(default=8, metadata={"help": "Prompts per generate() call (left-padded)."})


@dataclass
class InstructionTrainingArguments(RecipeTrainingArguments):
    """``TrainingArguments`` with the book's chapter-7 defaults (AdamW 5e-5, weight decay 0.1, 2 epochs, batch 8)."""

    output_dir: str | None = field(default="runs/instructions", metadata={"help": "Where the model and results go."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Eval batch size per device."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Passes over the training examples."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: steps, epoch or no."})
    logging_steps: float = field(default=5, metadata={"help": "Log the training loss every N steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoints during training (the final model is always saved)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep prompt_length for the collator."})


# What recipes/finetune_instructions.py parses, in the order finetune_instructions takes them.
ARGUMENT_TYPES = (FinetuneArguments, LoraArguments, InstructionDataArguments, JudgeArguments,
                  InstructionTrainingArguments)


# ------------------------------------------------------------------------------------------------------ loading
def check_arguments(model_args: FinetuneArguments, data_args) -> None:
    """Cheap checks of the flags this module owns, before any model or data is loaded."""
    from .common import check_mode, checkpoint_config

    check_mode(model_args.mode)
    if not model_args.model_name_or_path:
        raise HfgptInputError("--model_name_or_path is required: an hfgpt folder (e.g. runs/pretrain) or a GPT-2.")
    if data_args.max_length is not None and data_args.max_length < 2:
        raise HfgptInputError(f"--max_length must be at least 2 tokens, got {data_args.max_length}.")
    if data_args.max_new_tokens < 1 or data_args.generation_batch_size < 1:
        raise HfgptInputError("--max_new_tokens and --generation_batch_size must be positive.")
    checkpoint_config(model_args.model_name_or_path)  # a causal-LM checkpoint, refused before any data is read


def prepare_data(records: list[dict], report: RecordReport, data_args, tokenizer, max_length: int):
    """Checked records -> book split -> tokenized train/validation examples; returns ``(splits, tokenized)``."""
    splits = split_records(records, data_args.train_fraction, data_args.test_fraction, data_args.split_seed)
    tokenized = {name: tokenize_records(splits[name], tokenizer, max_length, report, split=name)
                 for name in ("train", "validation")}
    for name, items in tokenized.items():
        if not items:
            raise HfgptInputError(f"Every {name} example is longer than {max_length} tokens; raise --max_length "
                                  f"(at most the model's context) or shorten the data.")
    return splits, tokenized


# ----------------------------------------------------------------------------------------------------- the recipe
def finetune_instructions(model_args: FinetuneArguments, lora_args: LoraArguments,
                          data_args: InstructionDataArguments, judge_args: JudgeArguments,
                          training_args: InstructionTrainingArguments, judge=None) -> dict:
    """Run the whole recipe and return the metrics; ``judge``: a callable ``prompt -> reply`` to use instead."""
    from transformers import Trainer, set_seed

    from ..evaluation.generation import generate_responses
    from ..evaluation.judge import score_responses
    from ..evaluation.language_model import evaluate_losses
    from ..hub import defer_trainer_push
    from .common import check_context, final_save, finish_run, set_trainable, share_cpu_cores, train
    from .optim import optimizer_cls_and_kwargs
    from .outputs import final_path, protect_output_dir, resolve_resume

    started = time.time()
    check_arguments(model_args, data_args)
    resume = resolve_resume(training_args)
    protect_output_dir(training_args, resume)
    records, report = clean_records(load_instruction_records(data_args.data_file, data_args.dataset_name,
                                                             data_args.dataset_config_name, data_args.dataset_split),
                                    source=data_args.data_file or data_args.dataset_name)
    if judge is None:
        judge = judge_args.load()
    share_cpu_cores()
    push = defer_trainer_push(training_args)
    set_seed(training_args.seed)
    model, tokenizer = load_chat_model(model_args)
    max_length = data_args.max_length or model.config.n_positions
    check_context(max_length, model.config)
    splits, tokenized = prepare_data(records, report, data_args, tokenizer, max_length)
    logger.info("Examples: %d train, %d validation, %d test", len(tokenized["train"]), len(tokenized["validation"]),
                len(splits["test"]))
    model = set_trainable(model, model_args.mode, lora_args)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=InstructionDataset(tokenized["train"]),
        eval_dataset=InstructionDataset(tokenized["validation"], mask_prompt=True),  # eval_loss = response loss
        processing_class=tokenizer,
        data_collator=InstructionCollator(tokenizer.pad_token_id, max_length, mask_prompt=data_args.mask_prompt,
                                          padding_free=data_args.padding_free),
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(training_args),  # None: AdamW; --use_muon: Muon too
    )
    metrics = {**report.as_dict(), "train_examples": len(tokenized["train"]),
               "validation_examples": len(tokenized["validation"]), "test_examples": len(splits["test"]),
               "mask_prompt": data_args.mask_prompt, "mode": model_args.mode}
    metrics.update(evaluate_losses(trainer, tokenized["validation"], "before"))
    train(trainer, metrics, resume)
    with final_save(trainer, push, [data_args.dataset_name] if data_args.dataset_name else None):
        trainer.save_model()  # full: model + tokenizer (with the chat template) + code; LoRA: the adapter + tokenizer
        metrics.update(evaluate_losses(trainer, tokenized["validation"], "after"))
        logger.info("Validation response loss: %.3f before -> %.3f after fine-tuning", metrics["before_response_loss"],
                    metrics["after_response_loss"])

        test = splits["test"][: data_args.max_test_samples] if data_args.max_test_samples is not None else splits["test"]
        generation_started = time.time()
        responses, metrics["skipped_too_long_test"] = generate_responses(
            model, tokenizer, test, data_args.max_new_tokens, data_args.generation_batch_size)
        metrics["generation_seconds"] = time.time() - generation_started
        responses_file = write_json(responses, os.path.join(training_args.output_dir, RESPONSES_FILE))
        metrics["responses_file"] = final_path(responses_file)
        if judge is not None and responses:
            judged = score_responses(responses, judge, progress=True)
            for entry, score in zip(responses, judged["scores"]):
                entry["score"] = score
            write_json(responses, responses_file)
            metrics.update({"judge": getattr(judge, "name", type(judge).__name__),
                            "judge_mean_score": judged["mean_score"], "judge_scored": judged["n_scored"],
                            "judge_unparsed": judged["n_unparsed"]})
            logger.info("Judge %s: mean score %s over %d responses (%d replies without a score)", metrics["judge"],
                        judged["mean_score"], judged["n_scored"], judged["n_unparsed"])
        metrics["total_seconds"] = time.time() - started
        return finish_run(trainer, metrics, tokenizer, model_args.mode)
