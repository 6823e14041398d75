"""Spam classification fine-tuning (the book's chapter 6; LoRA as in appendix E) with the Hugging Face ``Trainer``.

``recipes/finetune_spam.py`` parses four dataclasses and calls :func:`finetune_spam`:

1. read the SMS Spam Collection (:mod:`hfgpt.data.spam`), balance it and split it 70 / 10 / 20 (stratified, seed 123:
   the book's protocol); with ``--export_pretraining_text`` only write the messages outside validation and test, and
   stop;
2. put a new ``score`` head (``n_embd -> 2``) on the body of a causal-LM checkpoint (hfgpt, or GPT-2 converted);
3. train what ``--mode`` says (``full``, the book's ``last-block``, or ``lora``), with accuracy / precision / recall /
   F1 from :mod:`hfgpt.metrics`, then save the classifier (or the adapter plus a merged model), the test metrics and a
   confusion matrix PNG.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

from ..data.spam import ID2LABEL, LABEL2ID, LABELS, SMS_SPAM_HUB_ID, SpamReport, balance, load_spam_dataset, split_dataset
from ..data.spam import tokenize_dataset, write_pretraining_text
from ..errors import HfgptInputError
from .common import FinetuneArguments, LoraArguments, RecipeTrainingArguments

logger = logging.getLogger("hfgpt.finetune_spam")

CONFUSION_MATRIX_FILE = "confusion_matrix.png"


@dataclass
class SpamDataArguments:
    data_file: str | None = field(
        default=None, metadata={"help": "SMSSpamCollection (ham|spam<TAB>text) or a csv/json/parquet table; default: download from UCI."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id, e.g. ucirvine/sms_spam."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    dataset_split: str = field(default="train", metadata={"help": "The Hub dataset's split to read."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of a table (default: text, sms or message)."})
    label_column: str = field(default="label", metadata={"help": "Label column of a table (ham/spam or 0/1)."})
    balance: bool = field(default=True, metadata={"help": "Undersample ham to the number of spam messages (the book)."})
    train_fraction: float = field(default=0.7, metadata={"help": "Training share (the book: 0.7)."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Validation share (0.1); test gets the rest (0.2)."})
    split_seed: int = field(default=123, metadata={"help": "Seed of the balancing and of the stratified split (the book: 123)."})
    max_length: int | None = field(default=None, metadata={"help": "Longer messages are truncated; default the model's context."})
    export_pretraining_text: str | None = field(
        default=None, metadata={"help": "Only write the messages outside validation/test (one per line) to this file and stop."}
    )


@dataclass
class SpamTrainingArguments(RecipeTrainingArguments):
    """``TrainingArguments`` with the book's chapter-6 defaults (AdamW 5e-5, weight decay 0.1, 5 epochs, batch 8)."""

    output_dir: str | None = field(default="runs/spam", metadata={"help": "Where the classifier and results go."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "Eval batch size per device."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: float = field(default=5.0, metadata={"help": "Passes over the training messages."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: steps, epoch or no."})
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoints during training (the final model is always saved)."})


# What recipes/finetune_spam.py parses, in the order finetune_spam takes them.
ARGUMENT_TYPES = (FinetuneArguments, LoraArguments, SpamDataArguments, SpamTrainingArguments)


# ------------------------------------------------------------------------------------------------------ loading
def check_arguments(model_args: FinetuneArguments, data_args: SpamDataArguments) -> None:
    """Cheap checks of the flags this module owns, before any model or data is loaded (the data flags are checked by
    :func:`load_spam_dataset`, which runs first)."""
    from .common import check_mode, checkpoint_config

    check_mode(model_args.mode)
    if data_args.export_pretraining_text:
        return
    if not model_args.model_name_or_path:
        raise HfgptInputError("--model_name_or_path is required: a causal-LM checkpoint (e.g. runs/pretrain) or a GPT-2.")
    checkpoint_config(model_args.model_name_or_path)  # a causal-LM checkpoint, refused before any data is read
    if data_args.max_length is not None and data_args.max_length < 1:
        raise HfgptInputError(f"--max_length must be a positive number of tokens, got {data_args.max_length}.")


def load_classifier_from_causal_lm(path: str, drop_rate: float | None = 0.0, attn_implementation: str = "sdpa"):
    """``GPTScratchForSequenceClassification`` with the body of a causal-LM checkpoint and a new 2-label head
    (an hfgpt *classifier* is refused: its head would be thrown away without a word)."""
    from ..modeling_gpt_scratch import GPTScratchForSequenceClassification
    from .common import load_base_model

    return load_base_model(path, GPTScratchForSequenceClassification, drop_rate, attn_implementation,
                           num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID))


def load_spam_classifier(path: str, **kwargs):
    """A trained classifier folder: a full one (``full`` / ``last-block`` / the merged export), or a LoRA adapter
    folder, loaded on its base with ``PeftModel.from_pretrained``."""
    from transformers import AutoModelForSequenceClassification

    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        from peft import PeftConfig, PeftModel

        base_path = PeftConfig.from_pretrained(path).base_model_name_or_path
        base = load_classifier_from_causal_lm(base_path, **kwargs)
        return PeftModel.from_pretrained(base, path)
    return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)


# --------------------------------------------------------------------------------------------------- evaluation
def compute_metrics_fn():
    """``Trainer.compute_metrics``: argmax of the logits, then accuracy / precision / recall / F1 (spam positive)."""
    from .. import metrics

    combined = metrics.classification_metrics()

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        logits = logits[0] if isinstance(logits, tuple) else logits
        return combined.compute(predictions=logits.argmax(-1), references=labels)

    return compute_metrics


def plot_confusion_matrix(labels, predictions, path: str, title: str = "Spam classifier, test split") -> str:
    """A confusion-matrix PNG (scikit-learn's display, matplotlib without a screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=120)
    ConfusionMatrixDisplay.from_predictions(labels, predictions, labels=list(range(len(LABELS))),
                                            display_labels=list(LABELS), cmap="Blues", colorbar=False, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------- the recipe
def prepare_splits(data_args: SpamDataArguments, report: SpamReport):
    """Messages -> (all messages, balanced or not, the stratified ``DatasetDict``)."""
    messages = load_spam_dataset(data_args.data_file, data_args.dataset_name, data_args.dataset_config_name,
                                 data_args.dataset_split, data_args.text_column, data_args.label_column, report)
    chosen = balance(messages, seed=data_args.split_seed) if data_args.balance else messages
    splits = split_dataset(chosen, data_args.train_fraction, data_args.validation_fraction, data_args.split_seed)
    return messages, splits


def finetune_spam(model_args: FinetuneArguments, lora_args: LoraArguments, data_args: SpamDataArguments,
                  training_args: SpamTrainingArguments) -> dict:
    """Run the whole recipe; returns the metrics (also saved as ``all_results.json`` in ``output_dir``)."""
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from ..hub import defer_trainer_push
    from ..tokenization import load_tokenizer
    from .common import check_context, check_vocabulary, final_save, finish_run, set_trainable, share_cpu_cores, train
    from .outputs import final_path, protect_output_dir, resolve_resume

    started = time.time()
    check_arguments(model_args, data_args)
    resume = resolve_resume(training_args)
    if not data_args.export_pretraining_text:
        protect_output_dir(training_args, resume)
    report = SpamReport()
    messages, splits = prepare_splits(data_args, report)
    counts = {f"{name}_messages": len(split) for name, split in splits.items()}
    logger.info("Messages: %s (%d read, %d empty skipped)", counts, report.read, report.empty_skipped)
    if data_args.export_pretraining_text:
        written = write_pretraining_text(messages, splits, data_args.export_pretraining_text)
        logger.info("Wrote %d messages (none from validation or test) to %s", written, data_args.export_pretraining_text)
        return {**report.as_dict(), **counts, "pretraining_messages": written,
                "pretraining_text": data_args.export_pretraining_text}

    share_cpu_cores()
    push = defer_trainer_push(training_args)
    set_seed(training_args.seed)
    model = load_classifier_from_causal_lm(model_args.model_name_or_path, model_args.drop_rate,
                                           model_args.attn_implementation)
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path)
    check_vocabulary(tokenizer, model.config)
    model.config.pad_token_id = tokenizer.pad_token_id
    max_length = data_args.max_length or model.config.n_positions
    check_context(max_length, model.config)
    tokenized = {name: tokenize_dataset(split, tokenizer, max_length, report, name) for name, split in splits.items()}
    model = set_trainable(model, model_args.mode, lora_args, head="score", task_type="SEQ_CLS")

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics_fn(),
    )
    metrics = {**report.as_dict(), **counts, "mode": model_args.mode, "max_length": max_length,
               "test_texts_also_in_train": len(set(splits["test"]["text"]) & set(splits["train"]["text"]))}
    before = trainer.evaluate(metric_key_prefix="before")  # the book prints accuracy before fine-tuning (~50%)
    metrics.update({k: v for k, v in before.items() if k in ("before_loss", "before_accuracy")})
    train(trainer, metrics, resume)
    with final_save(trainer, push, [data_args.dataset_name or SMS_SPAM_HUB_ID]):
        trainer.save_model()  # full / last-block: classifier + tokenizer + code; lora: the adapter (+ head) + tokenizer
        for name in ("train", "validation"):  # the book reports all three accuracies
            result = trainer.evaluate(tokenized[name], metric_key_prefix=f"{name}_final")
            metrics[f"{name}_accuracy"] = result[f"{name}_final_accuracy"]
        prediction = trainer.predict(tokenized["test"], metric_key_prefix="test")
        test_metrics = dict(prediction.metrics)
        predictions = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        if trainer.is_world_process_zero():
            test_metrics["confusion_matrix_png"] = final_path(plot_confusion_matrix(
                prediction.label_ids, predictions.argmax(-1),
                os.path.join(training_args.output_dir, CONFUSION_MATRIX_FILE),
                title=f"Spam classifier ({model_args.mode}), test accuracy {test_metrics['test_accuracy']:.2%}"))
            trainer.save_metrics("test", test_metrics)
            with open(os.path.join(training_args.output_dir, "data_report.json"), "w") as f:
                json.dump(report.as_dict(), f, indent=2)
        metrics.update(test_metrics)
        metrics["total_seconds"] = time.time() - started
        return finish_run(trainer, metrics, tokenizer, model_args.mode)
