"""Accuracy, precision, recall and F1 of a classifier (the book's chapter 6 reports accuracy) as ONE ``evaluate``
metric computed with scikit-learn.

``evaluate.load("accuracy")`` fetches the metric's script from the Hub, so it fails offline; this module works
offline, instantiated (``classification_metrics()``) or loaded by its path (``evaluate.load(metrics.__file__)``)::

    from hfgpt import metrics
    metrics.classification_metrics().compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    # {'accuracy': 0.75, 'precision': 0.5, 'recall': 1.0, 'f1': 0.666...}  (binary, positive class 1)
"""

import datasets
import evaluate


class ClassificationMetrics(evaluate.Metric):
    """Options as scikit-learn's: ``pos_label``, ``average`` (``None`` gives per-class arrays), ``zero_division``
    (0: no positive predicted means precision 0, not nan), ``sample_weight``, ``normalize`` (accuracy as a count)."""

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
    """The metric for ``Trainer.compute_metrics`` (spam: positive class 1)."""
    return ClassificationMetrics()


__all__ = ["ClassificationMetrics", "classification_metrics"]
