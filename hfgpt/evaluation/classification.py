"""Scoring a binary classifier: a score is the log-odds ``logit[positive] - logit[other]``, the rule "positive if
score > cut". The metrics as one offline ``evaluate`` metric, the cut, the TF-IDF + SVM anchor, and plots.
:class:`ClassificationMetrics` also loads by this file's path (``evaluate.load(path)``, as ``evaluate.load("accuracy")``
fails offline), so its module level imports only numpy, datasets and evaluate.
"""

import math
import time
from dataclasses import dataclass, field

import datasets
import evaluate
import numpy as np

COUNT_KEYS = ("examples", "positives")  # decision_metrics' keys for the number of examples and of positive ones


class ClassificationMetrics(evaluate.Metric):
    """Accuracy, precision, recall and F1 as ONE ``evaluate`` metric; options as scikit-learn's."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy, precision, recall and F1 of a classifier (scikit-learn).",
            citation="",
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, pos_label=1, average="binary", zero_division=0.0, sample_weight=None,
                 normalize=True):
        from sklearn.metrics import accuracy_score, precision_recall_fscore_support

        precision, recall, f1, _ = precision_recall_fscore_support(
            references, predictions, pos_label=pos_label, average=average, zero_division=zero_division,
            sample_weight=sample_weight,
        )  # fmt: skip
        scores = {"accuracy": accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight),
                  "precision": precision, "recall": recall, "f1": f1}
        return {name: float(v) if getattr(v, "size", 1) == 1 else v for name, v in scores.items()}


def classification_metrics() -> ClassificationMetrics:
    """The metric for ``Trainer.compute_metrics``."""
    return ClassificationMetrics()


def compute_metrics_fn(positive: int = 1):
    """``Trainer.compute_metrics``: argmax of the logits, then accuracy / precision / recall / F1 of ``positive``."""
    combined = classification_metrics()

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        logits = logits[0] if isinstance(logits, tuple) else logits
        return combined.compute(predictions=logits.argmax(-1), references=labels, pos_label=positive)

    return compute_metrics


# ------------------------------------------------------------------------------------------- scores and decisions
@dataclass
class DecisionArguments:
    """How a binary classifier decides (the rule "positive if log-odds > cut"), and the anchor it is scored beside."""

    target_fpr: float | None = field(default=None, metadata={
        "help": "Best recall at most this false-positive rate (e.g. 0.005); default: the best F1."})
    decision_threshold: float | None = field(default=None, metadata={
        "help": "A fixed probability threshold (P(spam)) instead of choosing one (0.5: the plain argmax of the book)."})
    svm_baseline: bool = field(default=True, metadata={
        "help": "Also train the TF-IDF character n-gram + linear SVM on the same split and score it beside the model."})

    def check(self) -> None:
        """Both flags are probabilities, and only one of them may be given."""
        from ..errors import HfgptInputError

        for flag in ("target_fpr", "decision_threshold"):
            value = getattr(self, flag)
            if value is not None and not 0 < value < 1:
                raise HfgptInputError(f"--{flag} must be between 0 and 1 (e.g. 0.005 / 0.5), got {value}.")
        if self.target_fpr is not None and self.decision_threshold is not None:
            raise HfgptInputError("Give --target_fpr (choose the threshold) or --decision_threshold (fix it), "
                                  "not both.")


def log_odds(logits, positive: int = 1) -> np.ndarray:
    """Each example's score: ``logit[positive] - logit[other]``, the log-odds of the positive class (P = sigmoid)."""
    logits = np.asarray(logits, dtype=np.float64)
    return logits[:, positive] - logits[:, 1 - positive]


def predict(scores, cut: float, positive: int = 1) -> np.ndarray:
    """The label ids of the rule "positive if score > cut"."""
    return np.where(np.asarray(scores, dtype=np.float64) > cut, positive, 1 - positive).astype(np.int64)


def choose_threshold(labels, scores, target_fpr: float | None = None, positive: int = 1) -> float:
    """The cut ``t`` of the rule "positive if score > t" on known ``labels``: with ``target_fpr``, the best recall whose
    false-positive rate is at most the target; else the best F1. ``t`` lies halfway between two scores."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if target_fpr is not None:
        fpr, tpr, cuts = roc_curve(labels, scores, pos_label=positive, drop_intermediate=False)
        allowed = np.flatnonzero(fpr <= target_fpr)
        lowest = cuts[allowed[np.argmax(tpr[allowed])]]  # first (highest) cut reaching the best recall allowed
    else:
        precision, recall, cuts = precision_recall_curve(labels, scores, pos_label=positive)
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        lowest = cuts[np.flatnonzero(f1 == f1.max())[-1]]  # ties: the highest cut (fewest examples flagged)
    if not np.isfinite(lowest):  # nothing may be called positive
        return float(scores.max() + 1.0)
    below = scores[scores < lowest]
    return float((lowest + below.max()) / 2 if below.size else lowest - 1.0)


def decision_rule(labels, scores, target_fpr: float | None = None, threshold: float | None = None,
                  positive: int = 1, positive_name: str = "positive") -> tuple[float, str]:
    """(log-odds cut, how it was chosen): a fixed probability ``threshold``, else :func:`choose_threshold`."""
    if threshold is not None:
        return math.log(threshold / (1 - threshold)), f"fixed P({positive_name}) > {threshold:g}"
    cut = choose_threshold(labels, scores, target_fpr, positive)
    if target_fpr is not None:
        return cut, f"best validation recall at validation FPR <= {target_fpr:g}"
    return cut, "best validation F1"


def decision_metrics(labels, scores, cut: float, positive: int = 1, count_keys: tuple[str, str] = COUNT_KEYS) -> dict:
    """What a filter's user sees at "positive if score > cut": accuracy, precision, recall, F1, ``fpr``, counts,
    AUCs."""
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    predicted = predict(scores, cut, positive)
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(labels, predicted, labels=[1 - positive, positive]).ravel())
    result = classification_metrics().compute(predictions=predicted, references=labels, pos_label=positive)
    result.update({"fpr": fp / (fp + tn) if fp + tn else math.nan, "false_positives": fp, "false_negatives": fn,
                   count_keys[0]: len(labels), count_keys[1]: tp + fn})
    if 0 < tp + fn < len(labels):
        result["roc_auc"] = float(roc_auc_score(labels == positive, scores))
        result["average_precision"] = float(average_precision_score(labels == positive, scores))
    return result


def score_splits(splits: dict, cut: float, prefix: str = "", keys=None, positive: int = 1,
                 count_keys: tuple[str, str] = COUNT_KEYS) -> dict:
    """:func:`decision_metrics` of each ``{split: (labels, scores)}`` at ``cut``, as ``{prefix}{split}_{metric}``."""
    scored = {}
    for name, (labels, scores) in splits.items():
        metrics = decision_metrics(labels, scores, cut, positive, count_keys)
        scored.update({f"{prefix}{name}_{k}": v for k, v in metrics.items() if keys is None or k in keys})
    return scored


def set_decision_threshold(model, cut: float, rule: str, positive: int = 1, head: str = "score") -> dict:
    """Put the rule "positive if log-odds > ``cut``" into ``model`` (a ``PeftModel`` too): the ``head``'s positive bias
    is lowered by ``cut``, so any loader's argmax is the rule; the config records it. Returns the rule as metrics."""
    import torch

    config = model.config
    change = cut - float(getattr(config, "decision_logit_shift", 0.0) or 0.0)
    heads = [module for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and head in name.split(".") and module.bias is not None]
    if not heads:
        raise ValueError(f"The classifier has no {head!r} head with a bias to carry the decision threshold.")
    with torch.no_grad():
        for module in heads:
            module.bias[positive] -= change
    config.decision_threshold = 1.0 / (1.0 + math.exp(-cut))  # the probability cut (sigmoid)
    config.decision_logit_shift = cut
    config.decision_positive_label = config.id2label[positive]
    config.decision_rule = rule
    return {"decision_rule": rule, "decision_logit_shift": cut, "decision_threshold": config.decision_threshold}


# ------------------------------------------------------------------------------------------------ the SVM anchor
def tfidf_svm(texts, labels, class_weight: str | None = None):
    """The classical text filter, fitted: TF-IDF of character 2- to 5-grams within words into ``LinearSVC``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                          LinearSVC(class_weight=class_weight))
    return model.fit(list(texts), np.asarray(labels))


def score_tfidf_svm(splits: dict, tests, decision: DecisionArguments, class_weight: str | None = None,
                    positive: int = 1, count_keys: tuple[str, str] = COUNT_KEYS) -> tuple[dict, dict]:
    """The anchor beside a model: :func:`tfidf_svm` trained on ``splits["train"]``, its cut chosen by the model's rule,
    scored on ``tests``. Returns (``svm_`` metrics, its precision-recall curve on the last test split)."""
    started = time.time()
    svm = tfidf_svm(splits["train"]["text"], splits["train"]["label"], class_weight)
    sign = 1.0 if svm.classes_[1] == positive else -1.0  # decision_function is positive for classes_[1]
    at = {name: (splits[name]["label"], sign * svm.decision_function(list(splits[name]["text"])))
          for name in ("calibration", *tests)}
    calibration = at.pop("calibration")
    if decision.decision_threshold is not None:
        cut, rule = 0.0, "the SVM's own rule (score > 0)"
    else:
        cut, rule = decision_rule(*calibration, decision.target_fpr, positive=positive)
    metrics = {"svm_rule": rule, "svm_class_weight": class_weight or "none", "svm_cut": cut,
               **score_splits(at, cut, "svm_", None, positive, count_keys),
               **score_splits(at, 0.0, "svm_default_", ("accuracy", "precision", "recall", "fpr"), positive,
                              count_keys),
               "svm_seconds": time.time() - started}
    return metrics, {"TF-IDF + linear SVM": (at[tests[-1]][1], cut)}


# --------------------------------------------------------------------------------------------------------- plots
def _figure(size):
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=size, dpi=120)


def _save(plt, fig, ax, path: str, title: str) -> str:
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion_matrix(labels, predictions, path: str, title: str = "Classifier, test split",
                          names=("negative", "positive")) -> str:
    """A confusion-matrix PNG (scikit-learn's display); ``names`` of label ids 0 and 1."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt, fig, ax = _figure((4.2, 3.8))
    ConfusionMatrixDisplay.from_predictions(labels, predictions, labels=list(range(len(names))),
                                            display_labels=list(names), cmap="Blues", colorbar=False, ax=ax)
    return _save(plt, fig, ax, path, title)


def plot_precision_recall(labels, curves: dict, path: str, title: str = "Test split", positive: int = 1) -> str:
    """A precision-recall PNG: one curve per ``{name: (scores, cut)}``, each with its operating point marked."""
    from sklearn.metrics import PrecisionRecallDisplay

    plt, fig, ax = _figure((5.2, 4.4))
    for name, (scores, cut) in curves.items():
        display = PrecisionRecallDisplay.from_predictions(labels, scores, pos_label=positive, name=name, ax=ax)
        point = decision_metrics(labels, scores, cut, positive)
        ax.plot(point["recall"], point["precision"], "o", color=display.line_.get_color(),
                label=f"{name} at its threshold: FPR {point['fpr']:.2%}, recall {point['recall']:.2%}")
    ax.legend(loc="lower left", fontsize=7)
    return _save(plt, fig, ax, path, title)


__all__ = ["COUNT_KEYS", "ClassificationMetrics", "DecisionArguments", "choose_threshold", "classification_metrics",
           "compute_metrics_fn", "decision_metrics", "decision_rule", "log_odds", "plot_confusion_matrix",
           "plot_precision_recall", "predict", "score_splits", "score_tfidf_svm", "set_decision_threshold", "tfidf_svm"]
