"""hfgpt.evaluation.classification: one offline evaluate metric (accuracy, precision, recall, F1), checked against
values by hand; the threshold choice and the decision metrics by hand; and every function for a classifier whose
positive class is not label 1 (``positive=0``, names ("pos", "neg")), so nothing in it is spam's alone."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_config

from hfgpt.evaluation import classification as metrics
from hfgpt.evaluation.classification import (
    DecisionArguments,
    choose_threshold,
    compute_metrics_fn,
    decision_metrics,
    decision_rule,
    log_odds,
    plot_confusion_matrix,
    plot_precision_recall,
    predict,
    score_splits,
    score_tfidf_svm,
    set_decision_threshold,
)

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


# ------------------------------------------------------------------------------------------------- thresholds
def test_threshold_meets_the_target_fpr_or_the_best_f1():
    ham = [-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 4.0]  # 10 ham, 10 spam: log-odds scores
    spam = [0.2, 1.2, 2.2, 3.0, 3.5, 4.5, 5.0, 6.0, 7.0, 8.0]
    labels, scores = [0] * 10 + [1] * 10, ham + spam
    cut = choose_threshold(labels, scores, target_fpr=0.1)  # one ham (4.0) may be flagged: spam > 3.0 are 7
    assert cut == pytest.approx((3.0 + 2.5) / 2)
    m = decision_metrics(labels, scores, cut)
    assert (m["fpr"], m["recall"], m["false_positives"]) == (0.1, 0.7, 1)
    assert choose_threshold(labels, scores, target_fpr=0.05) == pytest.approx((4.5 + 4.0) / 2)  # no ham at all
    assert choose_threshold(labels, scores, target_fpr=0.35) == pytest.approx((2.2 + 2.0) / 2)  # 2 ham, recall 80%
    assert choose_threshold(labels, scores, target_fpr=0.45) == pytest.approx((1.2 + 1.0) / 2)  # 4 ham, recall 90%
    # best F1: flagging > 2.1 catches 8 spam and 2 ham (F1 0.8), the best; halfway to the next lower score 2.0
    assert choose_threshold(labels, scores) == pytest.approx((2.2 + 2.0) / 2)
    assert decision_metrics(labels, scores, 2.1)["f1"] == pytest.approx(0.8)
    assert choose_threshold([0, 0, 1], [5.0, 6.0, 1.0], target_fpr=0.01) == pytest.approx(7.0)  # flag nothing
    assert decision_metrics([0, 1, 1], [0.0, 2.0, -1.0], 0.5)["roc_auc"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------- any binary classifier: positive=0
NEGATIVE_SCORES = [-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 4.0]
POSITIVE_SCORES = [0.2, 1.2, 2.2, 3.0, 3.5, 4.5, 5.0, 6.0, 7.0, 8.0]
SCORES = NEGATIVE_SCORES + POSITIVE_SCORES
LABELS_1 = [0] * 10 + [1] * 10  # the positive class is label 1 ...
LABELS_0 = [1] * 10 + [0] * 10  # ... or label 0: the same task with the ids swapped


def test_positive_label_zero_gives_the_same_decisions():
    for target in (None, 0.1, 0.35):
        assert choose_threshold(LABELS_0, SCORES, target, positive=0) == choose_threshold(LABELS_1, SCORES, target)
    cut = choose_threshold(LABELS_0, SCORES, 0.1, positive=0)
    swapped = decision_metrics(LABELS_0, SCORES, cut, positive=0, count_keys=("reviews", "pos"))
    plain = decision_metrics(LABELS_1, SCORES, cut)
    for key in ("accuracy", "precision", "recall", "f1", "fpr", "false_positives", "false_negatives", "roc_auc",
                "average_precision"):
        assert swapped[key] == pytest.approx(plain[key]), key
    assert (swapped["fpr"], swapped["recall"], swapped["reviews"], swapped["pos"]) == (0.1, 0.7, 20, 10)
    assert (plain["examples"], plain["positives"]) == (20, 10)  # the generic count names
    assert list(predict([3.0, 2.0], cut, positive=0)) == [0, 1]
    logits = np.array([[2.0, -1.0], [0.5, 0.25]])
    assert list(log_odds(logits, positive=0)) == [3.0, 0.25] and list(log_odds(logits)) == [-3.0, -0.25]
    scored = score_splits({"dev": (LABELS_0, SCORES)}, cut, "model_", keys=("recall",), positive=0)
    assert scored == {"model_dev_recall": pytest.approx(0.7)}
    fixed = decision_rule(LABELS_0, SCORES, threshold=0.5, positive=0, positive_name="pos")
    assert fixed == (0.0, "fixed P(pos) > 0.5")
    assert decision_rule(LABELS_0, SCORES, 0.1, positive=0) == (cut, "best validation recall at validation FPR <= 0.1")
    # Trainer.compute_metrics: argmax of the logits, then the metrics of the positive class
    result = compute_metrics_fn(positive=0)((np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([0, 1, 1])))
    assert (result["precision"], result["recall"]) == (0.5, 1.0)


def test_threshold_baked_into_a_head_whose_positive_label_is_zero():
    from hfgpt import GPTScratchForSequenceClassification

    torch.manual_seed(0)
    model = GPTScratchForSequenceClassification(tiny_config(num_labels=2, id2label={0: "pos", 1: "neg"},
                                                            label2id={"pos": 0, "neg": 1})).eval()
    ids = torch.randint(0, 128, (16, 6))
    with torch.no_grad():
        scores = log_odds(model(input_ids=ids).logits.numpy(), positive=0)
    cut = float(np.median(scores))  # half the examples on either side
    assert set_decision_threshold(model, cut, "median", positive=0)["decision_logit_shift"] == cut
    with torch.no_grad():
        argmax = model(input_ids=ids).logits.argmax(-1).numpy()
    assert list(argmax) == list(predict(scores, cut, positive=0)) and 0 < (argmax == 0).sum() < 16
    assert model.config.decision_positive_label == "pos"
    assert model.config.decision_threshold == pytest.approx(1 / (1 + math.exp(-cut)))
    set_decision_threshold(model, 0.0, "argmax", positive=0)  # relative to the cut already there: back to argmax
    with torch.no_grad():
        assert list(model(input_ids=ids).logits.argmax(-1).numpy()) == list(predict(scores, 0.0, positive=0))
    with pytest.raises(ValueError, match="no 'classifier' head"):
        set_decision_threshold(model, 0.0, "x", head="classifier")


def test_svm_anchor_and_plots_with_positive_label_zero(tmp_path):
    good = ["great film, loved it", "wonderful acting and story", "a delight, superb", "loved every minute"]
    bad = ["dull and boring", "awful plot, hated it", "a waste of time", "boring, terrible acting"]
    split = {"text": good + bad, "label": [0] * 4 + [1] * 4}  # label 0: "pos", the class looked for
    splits = {"train": split, "calibration": split, "test": split}
    metrics_, curve = score_tfidf_svm(splits, ("test",), DecisionArguments(), positive=0, count_keys=("reviews", "pos"))
    assert metrics_["svm_test_recall"] == 1.0 and metrics_["svm_test_fpr"] == 0.0 and metrics_["svm_test_pos"] == 4
    assert metrics_["svm_rule"] == "best validation F1" and metrics_["svm_default_test_accuracy"] == 1.0
    scores, cut = curve["TF-IDF + linear SVM"]
    assert (scores[:4] > cut).all() and (scores[4:] <= cut).all()  # the positive class ("pos", id 0) scores high
    fixed, _ = score_tfidf_svm(splits, ("test",), DecisionArguments(decision_threshold=0.5), positive=0)
    assert fixed["svm_rule"] == "the SVM's own rule (score > 0)" and fixed["svm_cut"] == 0.0
    predicted = predict(scores, cut, positive=0)
    paths = [plot_confusion_matrix(split["label"], predicted, str(tmp_path / "cm.png"), names=("pos", "neg")),
             plot_precision_recall(split["label"], curve, str(tmp_path / "pr.png"), positive=0)]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_decision_arguments_are_checked():
    from hfgpt.errors import HfgptInputError

    DecisionArguments(target_fpr=0.01).check()
    with pytest.raises(HfgptInputError, match="--decision_threshold must be between 0 and 1"):
        DecisionArguments(decision_threshold=1.0).check()
    with pytest.raises(HfgptInputError, match="not both"):
        DecisionArguments(target_fpr=0.01, decision_threshold=0.5).check()
