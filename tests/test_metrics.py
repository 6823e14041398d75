"""hfgpt.metrics: one offline evaluate metric (accuracy, precision, recall, F1), checked against values by hand."""

import math

import pytest

from hfgpt import metrics

# 10 predictions, positive class 1 (spam): TP = 3, FP = 1, FN = 2, TN = 4
REFERENCES = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
PREDICTIONS = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


def compute(**options) -> dict:
    return metrics.classification_metrics().compute(predictions=PREDICTIONS, references=REFERENCES, **options)


def test_each_metric_against_hand_computed_values():
    expected = {"accuracy": 7 / 10, "precision": 3 / 4, "recall": 3 / 5, "f1": 2 * 3 / (2 * 3 + 1 + 2)}
    result = compute()
    assert set(result) == set(expected)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value), name
    assert result == pytest.approx({"accuracy": 0.7, "precision": 0.75, "recall": 0.6, "f1": 2 / 3})


def test_options():
    assert compute(pos_label=0)["precision"] == pytest.approx(4 / 6)  # ham as the positive class: TN / (TN + FN)
    assert compute(average="macro")["f1"] == pytest.approx((2 / 3 + 2 * 4 / (2 * 4 + 2 + 1)) / 2)
    assert compute(normalize=False)["accuracy"] == 7
    assert list(compute(average=None)["recall"]) == pytest.approx([4 / 5, 3 / 5])  # per class: ham, spam
    # no spam predicted at all: precision is 0 by convention, not a crash or nan
    none_predicted = metrics.classification_metrics().compute(predictions=[0, 0], references=[1, 0])
    assert none_predicted["precision"] == 0.0 and none_predicted["f1"] == 0.0


def test_loaded_by_path_through_evaluate_and_added_in_batches():
    import evaluate

    metric = evaluate.load(metrics.__file__)
    for start in range(0, 10, 4):
        metric.add_batch(predictions=PREDICTIONS[start:start + 4], references=REFERENCES[start:start + 4])
    result = metric.compute()
    assert math.isclose(result["accuracy"], 0.7) and math.isclose(result["f1"], 2 / 3)
