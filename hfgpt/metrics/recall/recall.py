"""Recall: of the references of the positive class, the share that is found, TP / (TP + FN).

An ``evaluate`` metric shipped inside hfgpt and loaded by path, because ``evaluate.load("recall")`` fetches its
script from the Hub and fails offline::

    import evaluate, hfgpt.metrics
    recall = evaluate.load(hfgpt.metrics.metric_path("recall"))   # or hfgpt.metrics.load("recall")
    recall.compute(predictions=[0, 1, 1], references=[0, 1, 0])

Same inputs, options and result key as the Hub's ``recall`` metric (computed with scikit-learn's ``recall_score``).
"""

import datasets
import evaluate

_DESCRIPTION = "Recall: of the references of the positive class, the share that is found, TP / (TP + FN)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
Returns:
    recall (float, or an array of floats with average=None).
"""


class Recall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.recall_score.html"],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None,
                 zero_division=0.0):
        from sklearn.metrics import recall_score

        score = recall_score(references, predictions, labels=labels, pos_label=pos_label, average=average,
                         sample_weight=sample_weight, zero_division=zero_division)
        return {"recall": float(score) if getattr(score, "size", 1) == 1 else score}
