"""The evaluate metrics shipped in hfgpt.metrics: loaded by path offline, checked against values worked out by hand."""

import math

import pytest

from hfgpt import metrics

# 10 predictions, positive class 1 (spam): TP = 3, FP = 1, FN = 2, TN = 4
REFERENCES = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
PREDICTIONS = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


def test_each_metric_against_hand_computed_values():
    expected = {"accuracy": 7 / 10, "precision": 3 / 4, "recall": 3 / 5, "f1": 2 * 3 / (2 * 3 + 1 + 2)}
    for name, value in expected.items():
        result = metrics.load(name).compute(predictions=PREDICTIONS, references=REFERENCES)
        assert set(result) == {name} and result[name] == pytest.approx(value), name


def test_combined_and_options():
    combined = metrics.classification_metrics().compute(predictions=PREDICTIONS, references=REFERENCES)
    assert combined == pytest.approx({"accuracy": 0.7, "precision": 0.75, "recall": 0.6, "f1": 2 / 3})
    precision = metrics.load("precision")
    assert precision.compute(predictions=PREDICTIONS, references=REFERENCES, pos_label=0)["precision"] == \
        pytest.approx(4 / 6)  # ham as the positive class: TN / (TN + FN)
    macro = metrics.load("f1").compute(predictions=PREDICTIONS, references=REFERENCES, average="macro")["f1"]
    assert macro == pytest.approx((2 / 3 + 2 * 4 / (2 * 4 + 2 + 1)) / 2)
    assert metrics.load("accuracy").compute(predictions=PREDICTIONS, references=REFERENCES, normalize=False)[
        "accuracy"] == 7
    # no spam predicted at all: precision is 0 by convention, not a crash or nan
    assert metrics.load("precision").compute(predictions=[0, 0], references=[1, 0])["precision"] == 0.0


def test_loaded_by_path_through_evaluate_and_added_in_batches():
    import evaluate

    accuracy = evaluate.load(metrics.metric_path("accuracy"))
    for start in range(0, 10, 4):
        accuracy.add_batch(predictions=PREDICTIONS[start:start + 4], references=REFERENCES[start:start + 4])
    assert math.isclose(accuracy.compute()["accuracy"], 0.7)
    with pytest.raises(ValueError, match="hfgpt ships accuracy, precision, recall, f1"):
        metrics.metric_path("bleu")
