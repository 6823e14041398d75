"""Preference tuning (the book's chapter-7 bonus, DPO) with TRL's ``DPOTrainer``.

:func:`finetune_preferences` follows the bonus notebook: preference records (:mod:`hfgpt.data.preferences`), the
instruction-tuned model against a frozen reference (for LoRA the model with its adapters off), the DPO metrics before
and after training, and sample answers (``preference-samples.json``, optionally judged) and ``preference_curve.png``.

What differs from the book: TRL sums the response's log-probabilities (the book averages them per token) and its
rewards are ``beta`` times the log-ratio, so margins are on another scale.
TRL (``pip install 'hfgpt[finetune]'``) is imported by this module only.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field

from trl import DPOConfig

from ..data.preferences import PreferenceDataArguments, preference_splits, to_dpo_dataset
from ..errors import HfgptInputError
from ..evaluation.generation import generate_responses
from ..evaluation.judge import JudgeArguments
from .common import FinetuneArguments, LoraArguments, RecipeTrainingArguments, load_chat_model
from .outputs import PREFERENCE_CURVE_FILE as CURVE_FILE
from .outputs import PREFERENCE_SAMPLES_FILE as SAMPLES_FILE
from .outputs import write_json

logger = logging.getLogger("hfgpt.finetune_preferences")

# TRL's validation metrics kept in all_results.json, as before_<name> / after_<name>
EVAL_METRICS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "logps/chosen",
                "logps/rejected")


@dataclass
class PreferenceTrainingArguments(RecipeTrainingArguments, DPOConfig):
    """TRL's ``DPOConfig`` (beta 0.1, sigmoid loss) with the recipes' defaults and the book's DPO settings (AdamW 5e-6,
    1 epoch, batch 8 as the Trainer's), validation five times while training, no activation checkpointing."""

    output_dir: str | None = field(default="runs/preferences", metadata={"help": "Where the model and results go."})
    learning_rate: float = field(default=5e-6, metadata={"help": "Peak AdamW learning rate (the book: 5e-6)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training pairs."})
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: steps, epoch or no."})
    eval_steps: float | None = field(default=0.2, metadata={"help": "Evaluate every N steps (below 1: a share)."})
    logging_steps: float = field(default=5, metadata={"help": "Log the training metrics every N steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoints during training (the final model is always saved)."})
    activation_checkpointing: bool | None = field(default=False, metadata={"help": "Recompute activations in backward (less memory, slower)."})
    gradient_checkpointing: bool | None = field(default=None, metadata={"help": "The old name of --activation_checkpointing."})
    max_length: int | None = field(default=None, metadata={"help": "Prompt + response tokens kept (the end is cut); default: the model's context."})


# What recipes/finetune_preferences.py parses, in the order finetune_preferences takes them.
ARGUMENT_TYPES = (FinetuneArguments, LoraArguments, PreferenceDataArguments, JudgeArguments, PreferenceTrainingArguments)


def check_arguments(model_args: FinetuneArguments, data_args: PreferenceDataArguments, training_args=None) -> None:
    """Cheap checks before any data or model is loaded (the judge flags: :func:`load_judge`)."""
    from .common import check_context, check_mode, checkpoint_config

    check_mode(model_args.mode)
    if not model_args.model_name_or_path:
        raise HfgptInputError("--model_name_or_path is required: an instruction-tuned hfgpt folder "
                              "(e.g. runs/instructions) or a GPT-2.")
    data_args.check()
    config = checkpoint_config(model_args.model_name_or_path)
    if getattr(training_args, "max_length", None) is not None:
        check_context(training_args.max_length, config)


def validation_metrics(trainer, prefix: str) -> dict:
    """TRL's DPO metrics on the validation pairs, as ``<prefix>_rewards/margins`` and so on."""
    result = trainer.evaluate()
    return {f"{prefix}_{name}": result[f"eval_{name}"] for name in EVAL_METRICS if f"eval_{name}" in result}


def answer(model, tokenizer, entries: list[dict], data_args, when: str) -> list[dict]:
    """``entries`` with ``response_<when>`` added: the model's greedy answers to their prompts."""
    responses, _ = generate_responses(model, tokenizer, entries, data_args.max_new_tokens,
                                      response_key=f"response_{when}")
    return responses


def judge_samples(samples: list[dict], judge, metrics: dict) -> None:
    """The judge's 0-100 score of each response before and after, against the chosen response."""
    from ..evaluation.judge import score_responses

    for when in ("before", "after"):
        judged = score_responses([{**s, "output": s["chosen"]} for s in samples], judge, f"response_{when}")
        for sample, score in zip(samples, judged["scores"]):
            sample[f"score_{when}"] = score
        metrics[f"{when}_judge_mean_score"] = judged["mean_score"]
    metrics["judge"] = getattr(judge, "name", type(judge).__name__)


def plot_preference_curve(log_history: list[dict], path: str) -> str | None:
    """Reward margin and preference accuracy against steps as a PNG at ``path``; None when the logs hold neither."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    drawn = False
    panels = (("rewards/margins", "reward margin"), ("rewards/accuracies", "preference accuracy"))
    for ax, (name, title) in zip(axes, panels):
        for key, label, style in ((name, "train", "-"), (f"eval_{name}", "validation", "o-")):
            points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
            if points:
                ax.plot(*zip(*points), style, label=label)
                drawn = True
        ax.set(xlabel="step", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    if drawn:
        fig.tight_layout()
        fig.savefig(path)
    plt.close(fig)
    return path if drawn else None


def finetune_preferences(model_args: FinetuneArguments, lora_args: LoraArguments, data_args: PreferenceDataArguments,
                         judge_args: JudgeArguments, training_args, judge=None) -> dict:
    """Run the whole recipe and return the metrics; ``judge``: a callable ``prompt -> reply`` to use instead."""
    from transformers import set_seed
    from trl import DPOTrainer

    from ..hub import defer_trainer_push
    from .common import final_save, finish_run, set_trainable, share_cpu_cores, train
    from .outputs import final_path, protect_output_dir, resolve_resume

    started = time.time()
    check_arguments(model_args, data_args, training_args)
    resume = resolve_resume(training_args)
    protect_output_dir(training_args, resume)
    splits, report = preference_splits(data_args)
    judge = judge if judge is not None else judge_args.load()
    share_cpu_cores()
    push = defer_trainer_push(training_args)
    set_seed(training_args.seed)
    model, tokenizer = load_chat_model(model_args)
    training_args.max_length = training_args.max_length or model.config.n_positions
    samples = answer(model, tokenizer, splits["validation"][: data_args.sample_prompts], data_args, "before")
    reference = None if model_args.mode == "lora" else copy.deepcopy(model).eval()  # LoRA: adapters off
    trainer = DPOTrainer(model=set_trainable(model, model_args.mode, lora_args), ref_model=reference,
                         args=training_args, train_dataset=to_dpo_dataset(splits["train"]),
                         eval_dataset=to_dpo_dataset(splits["validation"]), processing_class=tokenizer)
    if "ref" in getattr(trainer.model, "peft_config", {}):  # TRL's copy of fresh adapters: the same as none
        trainer.model.delete_adapter("ref")
    metrics = {**report.as_dict(), **{f"{name}_pairs": len(splits[name]) for name in splits},
               "mode": model_args.mode, "beta": training_args.beta, **validation_metrics(trainer, "before")}
    train(trainer, metrics, resume)
    with final_save(trainer, push, [data_args.dataset_name] if data_args.dataset_name else None) as staging:
        trainer.save_model()  # full: model + tokenizer (with the chat template) + code; LoRA: the adapter + tokenizer
        metrics.update(validation_metrics(trainer, "after"))
        logger.info("Validation reward margin %.3f -> %.3f, preference accuracy %.3f -> %.3f",
                    metrics["before_rewards/margins"], metrics["after_rewards/margins"],
                    metrics["before_rewards/accuracies"], metrics["after_rewards/accuracies"])
        samples = answer(trainer.model, tokenizer, samples, data_args, "after")
        if judge is not None and samples:
            judge_samples(samples, judge, metrics)
        metrics["samples_file"] = final_path(write_json(samples, os.path.join(staging, SAMPLES_FILE)))
        start = {"step": 0, **{f"eval_{name}": metrics[f"before_{name}"] for name in EVAL_METRICS}}  # not in the log
        curve = plot_preference_curve([start, *trainer.state.log_history], os.path.join(staging, CURVE_FILE))
        metrics["curve_file"] = curve and final_path(curve)
        metrics["total_seconds"] = time.time() - started
        return finish_run(trainer, metrics, tokenizer, model_args.mode)
