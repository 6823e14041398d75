"""Accuracy: the fraction of predictions equal to the references, (TP + TN) / all.

An ``evaluate`` metric shipped inside hfgpt and loaded by path, because ``evaluate.load("accuracy")`` fetches its
script from the Hub and fails offline::

    import evaluate, hfgpt.metrics
    accuracy = evaluate.load(hfgpt.metrics.metric_path("accuracy"))   # or hfgpt.metrics.load("accuracy")
    accuracy.compute(predictions=[0, 1, 1], references=[0, 1, 0])

Same inputs, options and result key as the Hub's ``accuracy`` metric (computed with scikit-learn's ``accuracy_score``).
"""

import datasets
import evaluate

_DESCRIPTION = "Accuracy: the fraction of predictions equal to the references, (TP + TN) / all."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
Returns:
    accuracy (float, or an array of floats with average=None).
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, sample_weight=None, normalize=True):
        from sklearn.metrics import accuracy_score

        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score) if getattr(score, "size", 1) == 1 else score}
