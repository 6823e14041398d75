"""Spam classification fine-tuning (the book's chapter 6; LoRA as in appendix E) with the Hugging Face ``Trainer``.

``recipes/finetune_spam.py`` parses five dataclasses and calls :func:`finetune_spam`:

1. read the SMS Spam Collection (:mod:`hfgpt.data.spam`) and cut every split with :func:`~hfgpt.data.spam.spam_splits`:
   first a test set with the collection's real class mix (``natural_test``), then the book's protocol on the rest
   (balanced, 70 / 10 / 20, stratified, seed 123); with ``--export_pretraining_text`` only write the messages outside
   every evaluation split, and stop;
2. put a new ``score`` head (``n_embd -> 2``) on the body of a causal-LM checkpoint (hfgpt, or GPT-2 converted);
3. train what ``--mode`` says (``full``, the book's ``last-block``, or ``lora``) on the balanced training split (the
   book) or, with ``--no_balance``, on every message outside the evaluation splits (``--class_weighting``: a
   class-weighted cross-entropy through ``Trainer(compute_loss_func=...)``);
4. choose the decision threshold on the natural-mix validation split (``--target_fpr`` or the best F1) and put it into the saved
   model: the spam logit's bias is lowered by the threshold's log-odds, so argmax (what ``pipeline()`` and the demo
   do) is the threshold rule, and the config records it (``decision_threshold``);
5. score the model and the TF-IDF + linear SVM baseline (:mod:`hfgpt.training.baselines`, trained on the same
   split) on both test sets, then save the classifier (or the adapter plus a merged model), the metrics, a confusion
   matrix and a precision-recall curve PNG.

What differs from the book: steps 1 (the natural test), 3 (all data), 4 and 5 (the book reports argmax accuracy on
the balanced test only; ``test_argmax_accuracy`` is that figure).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..data.spam import ID2LABEL, LABEL2ID, LABELS, SMS_SPAM_HUB_ID, SpamReport, load_spam_dataset, spam_splits
from ..data.spam import tokenize_dataset, write_pretraining_text
from ..errors import HfgptInputError
from .common import FinetuneArguments, LoraArguments, RecipeTrainingArguments

logger = logging.getLogger("hfgpt.finetune_spam")

CONFUSION_MATRIX_FILE = "confusion_matrix.png"
NATURAL_CONFUSION_MATRIX_FILE = "natural_confusion_matrix.png"
PR_CURVE_FILE = "precision_recall.png"
POSITIVE = LABEL2ID["spam"]


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
    balance: bool = field(default=True, metadata={
        "help": "Undersample ham to the number of spam messages (the book); --no_balance trains on all the data."})
    natural_test_fraction: float = field(default=0.15, metadata={
        "help": "Share of all messages held out first, with the collection's class mix, as the natural test split."})
    train_fraction: float = field(default=0.7, metadata={"help": "Training share (the book: 0.7)."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Validation share (0.1); test gets the rest (0.2)."})
    split_seed: int = field(default=123, metadata={"help": "Seed of the balancing and of the stratified split (the book: 123)."})
    max_length: int | None = field(default=None, metadata={"help": "Longer messages are truncated; default the model's context."})
    export_pretraining_text: str | None = field(
        default=None, metadata={"help": "Only write the messages outside every evaluation split (one per line) to this "
                                         "file and stop."}
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


@dataclass
class SpamDecisionArguments:
    """How the classifier copes with the class mix: the loss's class weights and the decision threshold."""

    class_weighting: bool = field(default=False, metadata={
        "help": "Weight the cross-entropy by n / (2 * class count) of the training split (for --no_balance)."})
    target_fpr: float | None = field(default=None, metadata={
        "help": "Choose the threshold with the best validation recall whose validation false-positive rate on ham is at "
                "most this (e.g. 0.005); default: the best validation F1."})
    decision_threshold: float | None = field(default=None, metadata={
        "help": "A fixed P(spam) threshold instead of choosing one (0.5: the plain argmax of the book)."})
    svm_baseline: bool = field(default=True, metadata={
        "help": "Also train the TF-IDF character n-gram + linear SVM on the same split and score it beside the model."})


# What recipes/finetune_spam.py parses, in the order finetune_spam takes them.
ARGUMENT_TYPES = (FinetuneArguments, LoraArguments, SpamDataArguments, SpamTrainingArguments, SpamDecisionArguments)


# ------------------------------------------------------------------------------------------------------ loading
def check_arguments(model_args: FinetuneArguments, data_args: SpamDataArguments,
                    decision_args: SpamDecisionArguments | None = None) -> None:
    """Cheap checks of the flags this module owns, before any model or data is loaded (the data flags are checked by
    :func:`load_spam_dataset`, which runs first)."""
    from .common import check_mode, checkpoint_config

    check_mode(model_args.mode)
    if not 0 < data_args.natural_test_fraction < 1:
        raise HfgptInputError(f"--natural_test_fraction must be between 0 and 1 (e.g. 0.15), got "
                              f"{data_args.natural_test_fraction}.")
    decision_args = decision_args or SpamDecisionArguments()
    for flag in ("target_fpr", "decision_threshold"):
        value = getattr(decision_args, flag)
        if value is not None and not 0 < value < 1:
            raise HfgptInputError(f"--{flag} must be between 0 and 1 (e.g. 0.005 / 0.5), got {value}.")
    if decision_args.target_fpr is not None and decision_args.decision_threshold is not None:
        raise HfgptInputError("Give --target_fpr (choose the threshold) or --decision_threshold (fix it), not both.")
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


def class_weights(labels, num_labels: int = len(LABELS)) -> list[float]:
    """scikit-learn's ``class_weight="balanced"``: ``n / (num_labels * count[c])``, so each class weighs as much in
    the loss as the other, and the mean weight over the training split is 1 (the loss keeps its usual scale)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels)
    if (counts == 0).any():
        raise HfgptInputError(f"Cannot weight the classes: the training split's counts are "
                              f"{dict(zip(LABELS, counts.tolist()))}.")
    return (counts.sum() / (num_labels * counts)).tolist()


def weighted_loss_fn(weights: list[float]):
    """``Trainer(compute_loss_func=...)``: the cross-entropy with each message weighted by its class's weight, summed
    and divided by the number of messages (``num_items_in_batch`` when the Trainer gives it, so gradient accumulation
    stays exact)."""
    import torch

    def compute_loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = torch.tensor(weights, dtype=torch.float32, device=logits.device)
        losses = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        total = (weight[labels] * losses).sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())

    return compute_loss


def spam_log_odds(logits) -> np.ndarray:
    """The model's score for each message: ``logit[spam] - logit[ham]``, the log-odds of spam (P = sigmoid of it)."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[:, POSITIVE] - logits[:, 1 - POSITIVE]


def choose_threshold(labels, scores, target_fpr: float | None = None) -> float:
    """The cut ``t`` of the rule "spam if score > t", chosen on known ``labels``: with ``target_fpr``, the one with the
    best recall whose false-positive rate on ham is at most the target (scikit-learn's ``roc_curve``); else the one
    with the best F1 (``precision_recall_curve``). ``t`` lies halfway between the lowest score called spam and the
    next lower score, so a score equal to a validation score gets the same answer on either side."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if target_fpr is not None:
        fpr, tpr, cuts = roc_curve(labels, scores, drop_intermediate=False)
        allowed = np.flatnonzero(fpr <= target_fpr)
        lowest = cuts[allowed[np.argmax(tpr[allowed])]]  # first (highest) cut reaching the best recall allowed
    else:
        precision, recall, cuts = precision_recall_curve(labels, scores)
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        lowest = cuts[np.flatnonzero(f1 == f1.max())[-1]]  # ties: the highest cut (fewest messages flagged)
    if not np.isfinite(lowest):  # nothing may be called spam
        return float(scores.max() + 1.0)
    below = scores[scores < lowest]
    return float((lowest + below.max()) / 2 if below.size else lowest - 1.0)


def decision_metrics(labels, scores, cut: float) -> dict:
    """What a filter's user sees for the rule "spam if score > cut": accuracy, precision, recall, F1, the
    false-positive rate on ham (``fpr``) and the counts; ROC-AUC and average precision need only the scores."""
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    from .. import metrics

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    predicted = (scores > cut).astype(np.int64)
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(labels, predicted, labels=[1 - POSITIVE, POSITIVE]).ravel())
    result = metrics.classification_metrics().compute(predictions=predicted, references=labels, pos_label=POSITIVE)
    result.update({"fpr": fp / (fp + tn) if fp + tn else math.nan, "false_positives": fp, "false_negatives": fn,
                   "messages": len(labels), "spam": tp + fn})
    if 0 < tp + fn < len(labels):
        result["roc_auc"] = float(roc_auc_score(labels, scores))
        result["average_precision"] = float(average_precision_score(labels, scores, pos_label=POSITIVE))
    return result


def set_decision_threshold(model, cut: float, rule: str) -> None:
    """Put the rule "spam if log-odds > ``cut``" into ``model``: the ``score`` head's spam bias is lowered by ``cut``
    (relative to a cut already there), so argmax of the logits, which ``pipeline()``, the demo and any loader do,
    is the rule; the config records ``decision_threshold`` (the P(spam) cut), ``decision_logit_shift`` (``cut``),
    ``decision_positive_label`` and ``decision_rule``. Works on a ``PeftModel`` too (its trained copy of the head)."""
    import torch

    config = model.config
    change = cut - float(getattr(config, "decision_logit_shift", 0.0) or 0.0)
    heads = [module for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and "score" in name.split(".") and module.bias is not None]
    if not heads:
        raise ValueError("The classifier has no 'score' head with a bias to carry the decision threshold.")
    with torch.no_grad():
        for head in heads:
            head.bias[POSITIVE] -= change
    config.decision_threshold = 1.0 / (1.0 + math.exp(-cut))
    config.decision_logit_shift = cut
    config.decision_positive_label = ID2LABEL[POSITIVE]
    config.decision_rule = rule


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


def plot_precision_recall(labels, curves: dict, path: str, title: str = "Natural test split") -> str:
    """A precision-recall PNG (scikit-learn's display): one curve per ``{name: (scores, cut)}``, each with its
    operating point (the rule "spam if score > cut") marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay

    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=120)
    for name, (scores, cut) in curves.items():
        display = PrecisionRecallDisplay.from_predictions(labels, scores, pos_label=POSITIVE, name=name, ax=ax)
        point = decision_metrics(labels, scores, cut)
        ax.plot(point["recall"], point["precision"], "o", color=display.line_.get_color(),
                label=f"{name} at its threshold: FPR {point['fpr']:.2%}, recall {point['recall']:.2%}")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------- the recipe
def prepare_splits(data_args: SpamDataArguments, report: SpamReport):
    """Messages -> (all messages, every split of :func:`spam_splits`, the splits this run uses: ``train`` and
    ``validation`` (the Trainer's) are the balanced ones with ``--balance`` (the book), else the natural-mix ones;
    ``calibration`` (where the threshold is chosen) is the natural-mix validation split in both modes)."""
    messages = load_spam_dataset(data_args.data_file, data_args.dataset_name, data_args.dataset_config_name,
                                 data_args.dataset_split, data_args.text_column, data_args.label_column, report)
    splits = spam_splits(messages, data_args.natural_test_fraction, data_args.train_fraction,
                         data_args.validation_fraction, data_args.split_seed, report)
    kind = "balanced" if data_args.balance else "natural"
    return messages, splits, {"train": splits[f"{kind}_train"], "validation": splits[f"{kind}_validation"],
                              "calibration": splits["natural_validation"], "test": splits["balanced_test"],
                              "natural_test": splits["natural_test"]}


def threshold_rule(decision_args: SpamDecisionArguments, labels, scores) -> tuple[float, str]:
    """(log-odds cut, how it was chosen) for the rule "spam if log-odds > cut"."""
    if decision_args.decision_threshold is not None:
        p = decision_args.decision_threshold
        return math.log(p / (1 - p)), f"fixed P(spam) > {p:g}"
    cut = choose_threshold(labels, scores, decision_args.target_fpr)
    if decision_args.target_fpr is not None:
        return cut, f"best validation recall at validation FPR <= {decision_args.target_fpr:g}"
    return cut, "best validation F1"


def score_svm(used: dict, decision_args: SpamDecisionArguments, class_weight: str | None) -> tuple[dict, dict]:
    """The TF-IDF + linear SVM on the same training split, its cut chosen by the same rule on the same calibration
    split: ({metric: value}, {split: (labels, scores, cut)})."""
    from .baselines import tfidf_svm

    started = time.time()
    svm = tfidf_svm(used["train"]["text"], used["train"]["label"], class_weight)
    scores = {name: svm.decision_function(list(used[name]["text"])) for name in ("calibration", "test", "natural_test")}
    if decision_args.decision_threshold is not None:
        cut, rule = 0.0, "the SVM's own rule (score > 0)"
    else:
        cut, rule = threshold_rule(decision_args, used["calibration"]["label"], scores["calibration"])
    metrics = {"svm_rule": rule, "svm_class_weight": class_weight or "none", "svm_cut": cut}
    for name in ("test", "natural_test"):
        labels = used[name]["label"]
        metrics.update({f"svm_{name}_{k}": v for k, v in decision_metrics(labels, scores[name], cut).items()})
        default = decision_metrics(labels, scores[name], 0.0)  # the SVM's own rule, uncalibrated
        metrics.update({f"svm_default_{name}_{k}": default[k] for k in ("accuracy", "precision", "recall", "fpr")})
    metrics["svm_seconds"] = time.time() - started
    return metrics, {name: (used[name]["label"], scores[name], cut) for name in ("test", "natural_test")}


def finetune_spam(model_args: FinetuneArguments, lora_args: LoraArguments, data_args: SpamDataArguments,
                  training_args: SpamTrainingArguments, decision_args: SpamDecisionArguments | None = None) -> dict:
    """Run the whole recipe; returns the metrics (also saved as ``all_results.json`` in ``output_dir``)."""
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from ..hub import defer_trainer_push
    from ..tokenization import load_tokenizer
    from .common import check_context, check_vocabulary, final_save, finish_run, set_trainable, share_cpu_cores, train
    from .optim import optimizer_cls_and_kwargs
    from .outputs import final_path, protect_output_dir, resolve_resume

    started = time.time()
    decision_args = decision_args or SpamDecisionArguments()
    check_arguments(model_args, data_args, decision_args)
    resume = resolve_resume(training_args)
    if not data_args.export_pretraining_text:
        protect_output_dir(training_args, resume)
    report = SpamReport()
    messages, splits, used = prepare_splits(data_args, report)
    counts = {f"{name}_messages": len(split) for name, split in used.items()}
    logger.info("Messages: %s (%d read, %d empty skipped)", counts, report.read, report.empty_skipped)
    if data_args.export_pretraining_text:
        written = write_pretraining_text(messages, splits, data_args.export_pretraining_text)
        logger.info("Wrote %d messages (none from an evaluation split) to %s", written, data_args.export_pretraining_text)
        return {**report.as_dict(), **{f"{name}_messages": len(split) for name, split in splits.items()},
                "pretraining_messages": written, "pretraining_text": data_args.export_pretraining_text}

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
    tokenized = {name: tokenize_dataset(split, tokenizer, max_length, report, name) for name, split in used.items()
                 if name != "calibration" or data_args.balance}
    model = set_trainable(model, model_args.mode, lora_args, head="score", task_type="SEQ_CLS")
    weights = class_weights(used["train"]["label"]) if decision_args.class_weighting else None

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics_fn(),
        compute_loss_func=weighted_loss_fn(weights) if weights else None,
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(training_args),  # None: AdamW; --use_muon: Muon too
    )
    train_texts = set(used["train"]["text"])
    metrics = {**report.as_dict(), **counts, "mode": model_args.mode, "max_length": max_length,
               "training_split": "balanced" if data_args.balance else "natural",
               **{f"class_weight_{label}": w for label, w in zip(LABELS, weights or [])},
               "test_texts_also_in_train": sum(t in train_texts for t in used["test"]["text"]),
               "natural_test_texts_also_in_train": sum(t in train_texts for t in used["natural_test"]["text"])}
    before = trainer.evaluate(metric_key_prefix="before")  # the book prints accuracy before fine-tuning (~50%)
    metrics.update({k: v for k, v in before.items() if k in ("before_loss", "before_accuracy")})
    train(trainer, metrics, resume)

    # Score every split with the raw logits, choose the cut on validation, then put it into the model.
    scores = {}
    for name in ("train", "validation", "calibration", "test", "natural_test"):
        if name == "calibration" and not data_args.balance:  # all data: the Trainer's validation split
            scores[name] = scores["validation"]
            continue
        prediction = trainer.predict(tokenized[name], metric_key_prefix=name)
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        scores[name] = spam_log_odds(logits)
        if name in ("train", "validation"):  # the book reports all three accuracies (argmax)
            metrics[f"{name}_accuracy"] = prediction.metrics[f"{name}_accuracy"]
    cut, rule = threshold_rule(decision_args, used["calibration"]["label"], scores["calibration"])
    metrics.update({"decision_rule": rule, "decision_logit_shift": cut, "decision_threshold": 1 / (1 + math.exp(-cut))})
    for name in ("calibration", "test", "natural_test"):
        metrics.update({f"{name}_{k}": v for k, v in decision_metrics(used[name]["label"], scores[name], cut).items()})
    metrics["test_argmax_accuracy"] = decision_metrics(used["test"]["label"], scores["test"], 0.0)["accuracy"]
    argmax = decision_metrics(used["natural_test"]["label"], scores["natural_test"], 0.0)
    metrics.update({f"natural_test_argmax_{k}": argmax[k] for k in ("precision", "recall", "fpr")})
    svm_curves = {}
    if decision_args.svm_baseline:
        svm_metrics, svm_curves = score_svm(used, decision_args, "balanced" if decision_args.class_weighting else None)
        metrics.update(svm_metrics)
    set_decision_threshold(trainer.model, cut, rule)

    with final_save(trainer, push, [data_args.dataset_name or SMS_SPAM_HUB_ID]):
        trainer.save_model()  # full / last-block: classifier + tokenizer + code; lora: the adapter (+ head) + tokenizer
        if trainer.is_world_process_zero():
            out = training_args.output_dir
            test_metrics = {k: v for k, v in metrics.items() if k.startswith(("test_", "natural_test_", "decision_"))}
            for name, file, title in (("test", CONFUSION_MATRIX_FILE, "balanced test"),
                                      ("natural_test", NATURAL_CONFUSION_MATRIX_FILE, "natural test")):
                predicted = (scores[name] > cut).astype(np.int64)
                test_metrics[f"{name}_confusion_matrix_png"] = final_path(plot_confusion_matrix(
                    used[name]["label"], predicted, os.path.join(out, file),
                    title=f"{model_args.mode}, {title}: accuracy {metrics[f'{name}_accuracy']:.2%}"))
            curves = {f"hfgpt ({model_args.mode})": (scores["natural_test"], cut)}
            if svm_curves:
                curves["TF-IDF + linear SVM"] = svm_curves["natural_test"][1:]
            test_metrics["precision_recall_png"] = final_path(plot_precision_recall(
                used["natural_test"]["label"], curves, os.path.join(out, PR_CURVE_FILE),
                title=f"Natural test split ({metrics['natural_test_messages']} messages, "
                      f"{metrics['natural_test_spam']} spam)"))
            test_metrics["confusion_matrix_png"] = test_metrics["test_confusion_matrix_png"]
            trainer.save_metrics("test", test_metrics)
            metrics.update(test_metrics)
            with open(os.path.join(out, "data_report.json"), "w") as f:
                json.dump(report.as_dict(), f, indent=2)
        metrics["total_seconds"] = time.time() - started
        return finish_run(trainer, metrics, tokenizer, model_args.mode)


def summary_table(run_dirs) -> str:
    """The README's table (markdown) from the ``all_results.json`` of finished runs: the model and its SVM on both test
    sets."""
    rows = ["| run | classifier | natural test: FPR on ham | recall | precision | F1 | ROC-AUC | AP | balanced test acc. |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for folder in run_dirs:
        with open(os.path.join(folder, "all_results.json")) as f:
            m = json.load(f)
        name = f"{os.path.basename(os.path.normpath(folder))} ({m['training_split']}, {m['mode']})"
        for label, prefix in ((f"hfgpt, P(spam) > {m['decision_threshold']:.4g}", ""), ("TF-IDF + linear SVM", "svm_")):
            if f"{prefix}natural_test_fpr" not in m:
                continue
            n = lambda key: m.get(f"{prefix}natural_test_{key}", math.nan)  # noqa: E731
            fp, ham = m[f"{prefix}natural_test_false_positives"], m["natural_test_messages"] - m["natural_test_spam"]
            rows.append(f"| {name} | {label} | {n('fpr'):.2%} ({fp} of {ham}) | {n('recall'):.2%} | "
                        f"{n('precision'):.2%} | {n('f1'):.2%} | {n('roc_auc'):.4f} | {n('average_precision'):.4f} | "
                        f"{m[f'{prefix}test_accuracy']:.2%} |")
    return "\n".join(rows)
