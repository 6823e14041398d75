"""Classification metrics as ``evaluate`` modules shipped inside the package (accuracy, precision, recall, F1).

``evaluate.load("accuracy")`` downloads the metric's script from the Hub, so it fails offline (and in CI). These
modules have the same inputs and result keys and load by path::

    from hfgpt import metrics
    accuracy = metrics.load("accuracy")                      # = evaluate.load(metrics.metric_path("accuracy"))
    clf = metrics.classification_metrics()                   # evaluate.combine of all four
    clf.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    # {'accuracy': 0.75, 'precision': 0.5, 'recall': 1.0, 'f1': 0.666...}
"""

from __future__ import annotations

import os

METRICS = ("accuracy", "precision", "recall", "f1")


def metric_path(name: str) -> str:
    """The folder of one shipped metric, for ``evaluate.load(path)``."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; hfgpt ships {', '.join(METRICS)}.")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


def load(name: str, **kwargs):
    """``evaluate.load`` of a shipped metric by its path (works offline)."""
    import evaluate  # lazily: evaluate costs seconds to import

    return evaluate.load(metric_path(name), **kwargs)


def classification_metrics(names=METRICS):
    """The four metrics combined into one ``evaluate`` module (binary, positive class 1)."""
    import evaluate

    return evaluate.combine([load(name) for name in names])


__all__ = ["METRICS", "classification_metrics", "load", "metric_path"]
