"""F1: the harmonic mean of precision and recall, 2 TP / (2 TP + FP + FN).

An ``evaluate`` metric shipped inside hfgpt and loaded by path, because ``evaluate.load("f1")`` fetches its
script from the Hub and fails offline::

    import evaluate, hfgpt.metrics
    f1 = evaluate.load(hfgpt.metrics.metric_path("f1"))   # or hfgpt.metrics.load("f1")
    f1.compute(predictions=[0, 1, 1], references=[0, 1, 0])

Same inputs, options and result key as the Hub's ``f1`` metric (computed with scikit-learn's ``f1_score``).
"""

import datasets
import evaluate

_DESCRIPTION = "F1: the harmonic mean of precision and recall, 2 TP / (2 TP + FP + FN)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
Returns:
    f1 (float, or an array of floats with average=None).
"""


class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None,
                 zero_division=0.0):
        from sklearn.metrics import f1_score

        score = f1_score(references, predictions, labels=labels, pos_label=pos_label, average=average,
                         sample_weight=sample_weight, zero_division=zero_division)
        return {"f1": float(score) if getattr(score, "size", 1) == 1 else score}
