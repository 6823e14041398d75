"""Pretraining (the book's chapter 5) with the Hugging Face ``Trainer``.

:func:`pretrain` follows the book's steps: check every argument, load text, train a byte-level BPE (chapter 2), cut
sliding windows, build or load the model, train with the book's extras as callbacks, then evaluate (perplexity, bits
per byte, unigram and xz baselines, lm-eval on request) and save.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from ..errors import HfgptInputError
from .common import BaseModelArguments, RecipeTrainingArguments

logger = logging.getLogger("hfgpt.pretrain")


@dataclass
class ModelArguments(BaseModelArguments):
    preset: str = field(default="laptop", metadata={
        "help": "124M ... 1558M (GPT-2's), tiny, mini, small, laptop, medium-cpu."})
    config_overrides: str | None = field(default=None, metadata={"help": "GPTScratchConfig fields, e.g. 'n_layer=2'."})
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of the BPE trained on the corpus."})


@dataclass
class DataArguments:
    train_file: list[str] | None = field(default=None, metadata={"help": "Text files (txt, json/jsonl, parquet, csv)."})
    validation_file: list[str] | None = field(default=None, metadata={"help": "Validation files; default: a split."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id, e.g. 'roneneldan/TinyStories'."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    text_column: str = field(default="text", metadata={"help": "The column holding the text."})
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset (needs --max_steps)."})
    max_length: int = field(default=128, metadata={"help": "Tokens per training window (the book's max_length)."})
    stride: int | None = field(default=None, metadata={"help": "Step between windows; default max_length (no overlap)."})
    validation_fraction: float = field(default=0.05, metadata={"help": "Held-out fraction when no validation file."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    max_corpus_chars: int | None = field(default=None, metadata={"help": "Cap on the default corpus's characters."})
    sample_prompt: str = field(default="The return value of", metadata={"help": "Prompt printed with a continuation at each eval."})
    sample_max_new_tokens: int = field(default=40, metadata={"help": "Length of those samples."})
    xz_baseline: bool = field(default=True, metadata={"help": "Measure eval_xz_bits_per_byte (not with --streaming)."})
    lm_eval_tasks: str | None = field(default=None, metadata={
        "help": "Comma-separated lm-eval tasks for the saved model: hfgpt_heldout, hfgpt_english or lm-eval's own."})


@dataclass
class PretrainingArguments(RecipeTrainingArguments):
    """``TrainingArguments`` with defaults for a good first run on a laptop CPU (every flag still works)."""

    output_dir: str | None = field(default="runs/pretrain", metadata={"help": "Where checkpoints and the model go."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "Eval batch size per device."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate (AdamW, and Muon scaled to it)."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps (a fraction < 1 of all steps)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Passes over the training windows."})
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: steps, epoch or no."})
    eval_steps: float | None = field(default=0.25, metadata={"help": "Evaluate every N steps (or a fraction)."})
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint."})
    save_steps: float = field(default=0.25, metadata={"help": "Checkpoint every N steps (or a fraction)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep this many checkpoints."})
    muon_learning_rate: float | None = field(default=4e-3, metadata={"help": "Muon's peak learning rate."})
    use_muon: bool | None = field(default=None, metadata={
        "help": "Muon for the blocks' matrices; default: on, off with FSDP or DeepSpeed.", "nargs": "?", "const": True})


# What recipes/pretrain.py parses, in the order pretrain takes them.
ARGUMENT_TYPES = (ModelArguments, DataArguments, PretrainingArguments)


# ------------------------------------------------------------------------------------------------ the model
def parse_overrides(text: str | None) -> dict:
    """``'n_layer=2,qkv_bias=true'`` -> ``{'n_layer': 2, 'qkv_bias': True}``."""
    values = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise HfgptInputError(f"--config_overrides entries look like name=value; got {item!r}.")
        key, raw = (s.strip() for s in item.split("=", 1))
        try:
            values[key] = json.loads(raw.lower() if raw.lower() in ("true", "false", "null") else raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def build_config(model_args: ModelArguments, window: int, tokenizer=None):
    """A preset + ``--config_overrides`` (+ the tokenizer's vocabulary and special tokens); the context is the trained
    window, and a longer explicit ``n_positions`` is recorded with ``trained_context``."""
    from ..configuration_gpt_scratch import GPTScratchConfig
    from ..tokenization import special_token_ids

    overrides = {"n_positions": window, "drop_rate": model_args.drop_rate,
                 **parse_overrides(model_args.config_overrides)}
    if tokenizer is not None:
        overrides = {"vocab_size": len(tokenizer), **special_token_ids(tokenizer), **overrides}
    try:
        config = GPTScratchConfig.from_preset(model_args.preset, **overrides)
    except ValueError as err:  # the config's own validation of the user's --preset / --config_overrides
        raise HfgptInputError(f"--preset {model_args.preset} --config_overrides: {err}") from None
    return record_trained_context(config, window)


def record_trained_context(config, window: int):
    """``config.trained_context``: the longest window trained so far, while it is shorter than the context."""
    trained = max(window, config.trained_context or 0)
    config.trained_context = trained if trained < config.n_positions else None
    return config


def planned_config(model_args: ModelArguments, window: int):
    """The config the run will train, known before any data is read: the checkpoint's, or the preset's."""
    from .common import checkpoint_config

    if model_args.model_name_or_path is not None:
        if model_args.config_overrides:  # it would be silently ignored: a checkpoint keeps its own sizes
            raise HfgptInputError(f"--config_overrides {model_args.config_overrides!r} shapes a new model (--preset); "
                                  f"the checkpoint {model_args.model_name_or_path!r} keeps its own sizes: drop one "
                                  "of the two flags.")
        return checkpoint_config(model_args.model_name_or_path)
    return build_config(model_args, window)


def warn_untrained_positions(config, window: int) -> None:
    """One warning when a new model's context is longer than the windows it trains on."""
    if config.trained_context is not None and window < config.n_positions:
        logger.warning("n_positions=%d is longer than the training windows (--max_length %d): positions %d-%d stay "
                       "untrained; the saved config records trained_context=%d. Pass --max_length %d to train the "
                       "whole context.", config.n_positions, window, config.trained_context, config.n_positions - 1,
                       config.trained_context, config.n_positions)


def load_model(model_args: ModelArguments, tokenizer, window: int):
    """A fresh model from the preset, or the checkpoint in ``--model_name_or_path`` (GPT-2 converted)."""
    from ..modeling_gpt_scratch import GPTScratchForCausalLM
    from .common import check_vocabulary, load_base_model

    if model_args.model_name_or_path is None:
        config = build_config(model_args, window, tokenizer)
        check_vocabulary(tokenizer, config)  # --config_overrides vocab_size=... smaller than the tokenizer
        return GPTScratchForCausalLM._from_config(config, attn_implementation=model_args.attn_implementation)
    model = load_base_model(model_args.model_name_or_path, drop_rate=model_args.drop_rate,
                            attn_implementation=model_args.attn_implementation)
    if getattr(model.config, "trained_context", None) is not None:  # a longer window trains more of the context
        record_trained_context(model.config, window)
    check_vocabulary(tokenizer, model.config, model_args.model_name_or_path)
    return model


def prepare_tokenizer(tokenizer_name: str | None, raw_train, text_column: str, vocab_size: int, context: int):
    """The named tokenizer, or a byte-level BPE trained on the training text (chapter 2), for ``context`` tokens."""
    from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

    from ..tokenization import load_tokenizer, train_bpe_tokenizer

    if tokenizer_name is not None:
        tokenizer = load_tokenizer(tokenizer_name)
        if tokenizer.model_max_length >= VERY_LARGE_INTEGER:
            tokenizer.model_max_length = context
        return tokenizer

    def texts():
        for start in range(0, len(raw_train), 1000):
            yield raw_train[start : start + 1000][text_column]

    logger.info("Training a byte-level BPE tokenizer (vocab %d) on the training text", vocab_size)
    return train_bpe_tokenizer(texts(), vocab_size=vocab_size, model_max_length=context)


def check_lm_eval_tasks(data_args: DataArguments) -> list[str]:
    """``--lm_eval_tasks`` as a list, checked before training."""
    if data_args.lm_eval_tasks is None:
        return []
    from ..evaluation.lm_eval import HELDOUT_TASK, check_tasks

    try:
        names = check_tasks(data_args.lm_eval_tasks, allow=[HELDOUT_TASK])
    except HfgptInputError as err:
        raise HfgptInputError(f"--lm_eval_tasks: {err}") from None
    if HELDOUT_TASK in names and data_args.streaming:
        raise HfgptInputError(f"--lm_eval_tasks {HELDOUT_TASK} scores the validation documents, which --streaming "
                              "does not hold in memory: drop one of the two flags.")
    return names


# ------------------------------------------------------------------------------------------------ resuming
# The config fields that fix the tensors' shapes (vocab_size comes from the tokenizer, checked when it is loaded).
SHAPE_FIELDS = ("n_layer", "n_embd", "n_head", "n_inner", "n_positions")


def _shapes(config) -> dict:
    shapes = {name: getattr(config, name, None) for name in SHAPE_FIELDS}
    shapes["n_inner"] = shapes["n_inner"] or 4 * config.n_embd  # GPT-2's None means 4 * n_embd, as ours
    return shapes


def check_checkpoint_matches(checkpoint: str, planned, flag: str = "--resume_from_checkpoint") -> None:
    """A checkpoint to resume must hold a model of this run's sizes (else the Trainer fails after the data is read)."""
    from .common import checkpoint_config

    found = checkpoint_config(checkpoint, flag=flag)
    differ = [f"{name}={value} (this run: {_shapes(planned)[name]})" for name, value in _shapes(found).items()
              if value != _shapes(planned)[name]]
    if differ:
        raise HfgptInputError(f"{flag} {checkpoint!r} holds a model of another size: {', '.join(differ)}. Resume "
                              "with the --preset / --config_overrides / --model_name_or_path of the run that wrote "
                              "it, or start a new run in another --output_dir.")


# ------------------------------------------------------------------------------------------------ the recipe
def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args: PretrainingArguments):
    """Every cheap check, before the corpus is read: ``(planned config, checkpoint to resume, lm-eval tasks)``."""
    from ..data import check_window_args
    from .common import check_context
    from .outputs import protect_output_dir, resolve_resume

    check_window_args(data_args.max_length, data_args.stride)
    planned = planned_config(model_args, data_args.max_length)
    check_context(data_args.max_length, planned)
    if model_args.model_name_or_path is None:
        warn_untrained_positions(planned, data_args.max_length)
    if data_args.streaming and training_args.max_steps <= 0:
        raise HfgptInputError("--streaming needs --max_steps: a streamed dataset has no length to count epochs by.")
    lm_eval_tasks = check_lm_eval_tasks(data_args)
    resume = resolve_resume(training_args)
    if resume is not None:
        check_checkpoint_matches(resume, planned)
    protect_output_dir(training_args, resume)
    if data_args.streaming:
        logger.info("--streaming: no bits per byte, unigram or xz baseline (they need the whole validation split)")
    return planned, resume, lm_eval_tasks


def announce(training_args: PretrainingArguments) -> None:
    """The first lines of a run: its precision and optimizer."""
    if training_args.process_index == 0:
        print(training_args.precision(), flush=True)
        print("Optimizer: Muon for the transformer blocks' weight matrices, AdamW for the rest (--use_muon false: "
              "AdamW alone)" if training_args.use_muon else "Optimizer: AdamW", flush=True)


def load_text(data_args: DataArguments, seed: int):
    """The run's text: the embedded default corpus, local files or a Hub dataset (:mod:`hfgpt.data`)."""
    from ..data import load_text_datasets

    return load_text_datasets(
        train_files=data_args.train_file, validation_files=data_args.validation_file, seed=seed,
        dataset_name=data_args.dataset_name, dataset_config_name=data_args.dataset_config_name,
        text_column=data_args.text_column, streaming=data_args.streaming,
        validation_fraction=data_args.validation_fraction, default_corpus_max_chars=data_args.max_corpus_chars)


def pretraining_callbacks(tokenizer, model, data_args: DataArguments, tokens_per_step: int, baselines=None) -> list:
    """The book's extras: a sample at each evaluation, the loss curve, bits per byte beside every validation loss."""
    from .callbacks import BitsPerByteCallback, LossCurveCallback, SampleGenerationCallback

    unigram = None if baselines is None else ("unigram baseline (validation)", baselines.unigram_loss)
    return [
        SampleGenerationCallback(tokenizer, data_args.sample_prompt, data_args.sample_max_new_tokens),
        LossCurveCallback(tokens_per_step, title=f"hfgpt pretraining ({model.num_parameters() / 1e6:.1f}M "
                                                 "parameters)", baseline=unigram),
        *([] if baselines is None else [BitsPerByteCallback(baselines.tokens, baselines.n_bytes)]),
    ]


def pretrain(model_args: ModelArguments, data_args: DataArguments, training_args: PretrainingArguments,
             extra_callbacks: list | None = None) -> dict:
    """The book's chapter 5 with the ``Trainer``; returns the run's metrics (also ``output_dir/all_results.json``)."""
    from transformers import Trainer, default_data_collator, set_seed

    from ..data import build_pretraining_datasets
    from ..evaluation.language_model import LanguageModelBaselines, evaluate_language_model
    from ..evaluation.lm_eval import HELDOUT_TASK
    from ..hub import defer_trainer_push
    from .common import final_save, finish_run, share_cpu_cores
    from .optim import optimizer_cls_and_kwargs

    announce(training_args)
    planned, resume, lm_eval_tasks = check_arguments(model_args, data_args, training_args)
    share_cpu_cores()
    push = defer_trainer_push(training_args)
    set_seed(training_args.seed)
    column = data_args.text_column
    # 1. data and tokenizer (chapter 2): a checkpoint brings its own tokenizer; a fresh model trains one
    raw = load_text(data_args, training_args.seed)
    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = prepare_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path or resume,
                                      raw["train"], column, model_args.vocab_size, planned.n_positions)
    # 2. the model (chapter 4); a training step needs only the loss: the fused linear + loss
    model = load_model(model_args, tokenizer, data_args.max_length)
    model.skip_logits_in_training = True
    with training_args.main_process_first(desc="windowing"):  # the book's sliding windows
        windows = build_pretraining_datasets(raw, tokenizer, data_args.max_length, data_args.stride,
                                             text_column=column, num_proc=data_args.preprocessing_num_workers)
    baselines = None if data_args.streaming else LanguageModelBaselines.measure(
        raw, windows, tokenizer, model.config.vocab_size, column,
        xz=data_args.xz_baseline and training_args.process_index == 0)  # only the main process saves metrics
    # 3. the Trainer, with the book's extras as callbacks, and training (chapter 5)
    tokens_per_step = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                       * max(1, training_args.world_size) * data_args.max_length)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=windows["train"],
        eval_dataset=windows["validation"],
        processing_class=tokenizer,
        data_collator=default_data_collator,
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(training_args),  # None: AdamW; --use_muon: Muon too
        callbacks=[*pretraining_callbacks(tokenizer, model, data_args, tokens_per_step, baselines),
                   *(extra_callbacks or [])],
    )
    metrics = dict(trainer.train(resume_from_checkpoint=resume).metrics)
    metrics["train_tokens"] = trainer.state.global_step * tokens_per_step
    # 4. evaluate and save: model, tokenizer, code, metrics and lm-eval's results, all or nothing
    with final_save(trainer, push, [data_args.dataset_name] if data_args.dataset_name else None):
        trainer.save_model()
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        documents = raw["validation"][column] if HELDOUT_TASK in lm_eval_tasks else None
        metrics.update(evaluate_language_model(trainer, baselines, lm_eval_tasks, documents))
        return finish_run(trainer, metrics, tokenizer, "full")
