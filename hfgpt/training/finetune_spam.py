"""Spam classification fine-tuning (the book's chapter 6; LoRA as in appendix E) with the Hugging Face ``Trainer``.

What differs from the book: a test split with the real class mix, all-data training, a decision threshold chosen on
a natural-mix validation split and baked into the head (so ``pipeline()``'s argmax is the threshold rule), and the
TF-IDF + SVM anchor; the book's figure is ``test_argmax_accuracy``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..data.spam import ID2LABEL, LABEL2ID, LABELS, SMS_SPAM_HUB_ID, SpamDataArguments, SpamReport, tokenize_dataset
from ..errors import HfgptInputError
from ..evaluation.classification import DecisionArguments
from .common import FinetuneArguments, LoraArguments, RecipeTrainingArguments
from .outputs import CONFUSION_MATRIX_FILE, DATA_REPORT_FILE, NATURAL_CONFUSION_MATRIX_FILE, PR_CURVE_FILE

POSITIVE = LABEL2ID["spam"]
SPAM = {"positive": POSITIVE, "count_keys": ("messages", "spam")}  # the task, for hfgpt.evaluation.classification
EVALUATED = ("calibration", "test", "natural_test")  # the splits scored at the decision threshold


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
    class_weighting: bool = field(default=False, metadata={
        "help": "Weight the cross-entropy by n / (2 * class count) of the training split (for --no_balance)."})


# What recipes/finetune_spam.py parses, in the order finetune_spam takes them.
ARGUMENT_TYPES = (FinetuneArguments, LoraArguments, SpamDataArguments, SpamTrainingArguments, DecisionArguments)


# ------------------------------------------------------------------------------------------------------ loading
def check_arguments(model_args: FinetuneArguments, decision_args: DecisionArguments) -> None:
    """Cheap checks of the flags this module owns, before any model or data is loaded."""
    from .common import check_mode, checkpoint_config

    check_mode(model_args.mode)
    decision_args.check()
    if not model_args.model_name_or_path:
        raise HfgptInputError("--model_name_or_path is required: a causal-LM checkpoint (e.g. runs/pretrain) or a GPT-2.")
    checkpoint_config(model_args.model_name_or_path)  # a causal-LM checkpoint, refused before any data is read


def load_classifier_from_causal_lm(path: str, drop_rate: float | None = 0.0, attn_implementation: str = "sdpa"):
    """``GPTScratchForSequenceClassification`` with the body of a causal-LM checkpoint and a new 2-label head."""
    from ..modeling_gpt_scratch import GPTScratchForSequenceClassification
    from .common import load_base_model

    return load_base_model(path, GPTScratchForSequenceClassification, drop_rate, attn_implementation,
                           num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID))


def load_spam_classifier(path: str, **kwargs):
    """A trained classifier folder: a full one, or a LoRA adapter loaded on its base."""
    from transformers import AutoModelForSequenceClassification

    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        from peft import PeftConfig, PeftModel

        base_path = PeftConfig.from_pretrained(path).base_model_name_or_path
        base = load_classifier_from_causal_lm(base_path, **kwargs)
        return PeftModel.from_pretrained(base, path)
    return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)


# -------------------------------------------------------------------------------------------------- training loss
def class_weights(labels, num_labels: int = len(LABELS)) -> list[float]:
    """scikit-learn's ``class_weight="balanced"``: ``n / (num_labels * count[c])`` (mean weight 1 over the split)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels)
    if (counts == 0).any():
        raise HfgptInputError(f"Cannot weight the classes: the training split's counts are "
                              f"{dict(zip(LABELS, counts.tolist()))}.")
    return (counts.sum() / (num_labels * counts)).tolist()


def weighted_loss_fn(weights: list[float]):
    """``Trainer(compute_loss_func=...)``: the class-weighted cross-entropy over the messages or
    ``num_items_in_batch``."""
    import torch

    def compute_loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = torch.tensor(weights, dtype=torch.float32, device=logits.device)
        losses = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        total = (weight[labels] * losses).sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())

    return compute_loss


# --------------------------------------------------------------------------------------------------- the recipe
def describe_run(model_args, data_args, used: dict, max_length: int, weights, report: SpamReport) -> dict:
    """The run's first metrics: the data report, split sizes, settings, and test messages also in the training split."""
    train_texts = set(used["train"]["text"])
    return {**report.as_dict(), **{f"{name}_messages": len(split) for name, split in used.items()},
            "mode": model_args.mode, "max_length": max_length,
            "training_split": "balanced" if data_args.balance else "natural",
            **{f"class_weight_{label}": w for label, w in zip(LABELS, weights or [])},
            "test_texts_also_in_train": sum(t in train_texts for t in used["test"]["text"]),
            "natural_test_texts_also_in_train": sum(t in train_texts for t in used["natural_test"]["text"])}


def predict_log_odds(trainer, tokenized: dict, metrics: dict) -> dict:
    """The spam log-odds for each tokenized split; the book's train and validation accuracies go into ``metrics``."""
    from ..evaluation.classification import log_odds

    scores = {}
    for name, split in tokenized.items():
        prediction = trainer.predict(split, metric_key_prefix=name)
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        scores[name] = log_odds(logits, POSITIVE)
        if name in ("train", "validation"):
            metrics[f"{name}_accuracy"] = prediction.metrics[f"{name}_accuracy"]
    scores.setdefault("calibration", scores["validation"])  # all data: the threshold is chosen on validation
    return scores


def score_model(decision_args: DecisionArguments, used: dict, scores: dict) -> tuple[float, str, dict]:
    """(log-odds cut, rule, metrics): the rule chosen on the calibration split, scored at it and at argmax."""
    from ..evaluation.classification import decision_rule, score_splits

    at = {name: (used[name]["label"], scores[name]) for name in EVALUATED}
    cut, rule = decision_rule(*at["calibration"], decision_args.target_fpr, decision_args.decision_threshold,
                              POSITIVE, ID2LABEL[POSITIVE])
    metrics = score_splits(at, cut, **SPAM)
    metrics.update(score_splits({"test_argmax": at["test"]}, 0.0, keys=("accuracy",), **SPAM))
    metrics.update(score_splits({"natural_test_argmax": at["natural_test"]}, 0.0, keys=("precision", "recall", "fpr"),
                                **SPAM))
    return cut, rule, metrics


def save_results(trainer, metrics: dict, report: SpamReport, used: dict, scores: dict, curves: dict) -> None:
    """Confusion matrices, precision-recall curves, ``test_results.json`` and ``data_report.json``."""
    from ..evaluation.classification import plot_confusion_matrix, plot_precision_recall, predict
    from .outputs import final_path

    out, mode, cut = trainer.args.output_dir, metrics["mode"], metrics["decision_logit_shift"]
    test_metrics = {k: v for k, v in metrics.items() if k.startswith(("test_", "natural_test_", "decision_"))}
    for name, file, title in (("test", CONFUSION_MATRIX_FILE, "balanced test"),
                              ("natural_test", NATURAL_CONFUSION_MATRIX_FILE, "natural test")):
        test_metrics[f"{name}_confusion_matrix_png"] = final_path(plot_confusion_matrix(
            used[name]["label"], predict(scores[name], cut, POSITIVE), os.path.join(out, file),
            title=f"{mode}, {title}: accuracy {metrics[f'{name}_accuracy']:.2%}", names=LABELS))
    test_metrics["precision_recall_png"] = final_path(plot_precision_recall(
        used["natural_test"]["label"], {f"hfgpt ({mode})": (scores["natural_test"], cut), **curves},
        os.path.join(out, PR_CURVE_FILE), positive=POSITIVE,
        title=f"Natural test split ({metrics['natural_test_messages']} messages, {metrics['natural_test_spam']} spam)"))
    test_metrics["confusion_matrix_png"] = test_metrics["test_confusion_matrix_png"]
    trainer.save_metrics("test", test_metrics)
    metrics.update(test_metrics)
    with open(os.path.join(out, DATA_REPORT_FILE), "w") as f:
        json.dump(report.as_dict(), f, indent=2)


def finetune_spam(model_args: FinetuneArguments, lora_args: LoraArguments, data_args: SpamDataArguments,
                  training_args: SpamTrainingArguments, decision_args: DecisionArguments | None = None) -> dict:
    """Run the whole recipe; returns the metrics (also saved as ``all_results.json`` in ``output_dir``)."""
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from ..evaluation.classification import compute_metrics_fn, score_tfidf_svm, set_decision_threshold
    from ..hub import defer_trainer_push
    from ..tokenization import load_tokenizer
    from .common import check_context, check_vocabulary, final_save, finish_run, set_trainable, share_cpu_cores, train
    from .optim import optimizer_cls_and_kwargs
    from .outputs import protect_output_dir, resolve_resume

    started = time.time()
    decision_args = decision_args or DecisionArguments()
    check_arguments(model_args, decision_args)
    resume = resolve_resume(training_args)
    protect_output_dir(training_args, resume)
    share_cpu_cores()
    push = defer_trainer_push(training_args)
    set_seed(training_args.seed)

    # 1. Data: the messages, cut into the splits this run trains, calibrates and is tested on.
    report = SpamReport()
    used = data_args.setup(report)
    # 2. Model: the pretrained body under a new 2-label head; --mode says what trains.
    model = load_classifier_from_causal_lm(model_args.model_name_or_path, model_args.drop_rate,
                                           model_args.attn_implementation)
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path)
    check_vocabulary(tokenizer, model.config)
    model.config.pad_token_id = tokenizer.pad_token_id
    max_length = data_args.max_length or model.config.n_positions
    check_context(max_length, model.config)
    tokenized = {name: tokenize_dataset(split, tokenizer, max_length, report, name) for name, split in used.items()
                 if name != "calibration" or data_args.balance}  # all data: calibration is the validation split
    model = set_trainable(model, model_args.mode, lora_args, head="score", task_type="SEQ_CLS")
    weights = class_weights(used["train"]["label"]) if training_args.class_weighting else None
    # 3. The Trainer, scoring accuracy / precision / recall / F1 at each evaluation.
    trainer = Trainer(model=model, args=training_args, train_dataset=tokenized["train"],
                      eval_dataset=tokenized["validation"], processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics_fn(POSITIVE),
                      compute_loss_func=weighted_loss_fn(weights) if weights else None,
                      optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(training_args))  # None: AdamW; or Muon too
    # 4. Train, with the accuracy before (the book prints ~50%) and after.
    metrics = describe_run(model_args, data_args, used, max_length, weights, report)
    before = trainer.evaluate(metric_key_prefix="before")
    metrics.update({k: v for k, v in before.items() if k in ("before_loss", "before_accuracy")})
    train(trainer, metrics, resume)
    # 5. Evaluate: the decision threshold from the calibration split goes into the head; both test sets; the SVM.
    scores = predict_log_odds(trainer, tokenized, metrics)
    cut, rule, scored = score_model(decision_args, used, scores)
    svm_metrics, svm_curve = ({}, {}) if not decision_args.svm_baseline else score_tfidf_svm(
        used, ("test", "natural_test"), decision_args, "balanced" if training_args.class_weighting else None, **SPAM)
    metrics.update({**set_decision_threshold(trainer.model, cut, rule, POSITIVE), **scored, **svm_metrics})
    # 6. Save: the classifier (lora: the adapter, then a merged copy), the metrics and the plots.
    with final_save(trainer, push, [data_args.dataset_name or SMS_SPAM_HUB_ID]):
        trainer.save_model()  # full / last-block: classifier + tokenizer + code; lora: the adapter (+ head) + tokenizer
        if trainer.is_world_process_zero():
            save_results(trainer, metrics, report, used, scores, svm_curve)
        metrics["total_seconds"] = time.time() - started
        return finish_run(trainer, metrics, tokenizer, model_args.mode)
