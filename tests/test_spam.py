"""Spam classification (chapter 6, appendix E): the SMS data pipeline, the three training modes through the real
Trainer (balanced and all-data class-weighted), the natural-mix metrics and PR curve, the class-weighted loss, the
threshold choice and its effect on pipeline(), the saved folders through AutoModelForSequenceClassification /
pipeline() / PeftModel, the merged LoRA export, and bad input."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import HAM, REPO_ROOT, SPAM

from hfgpt import GPTScratchForCausalLM
from hfgpt.data.spam import load_spam_dataset
from hfgpt.errors import HfgptInputError


def _args(base, sms, out, *extra):
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_spam import ARGUMENT_TYPES

    parser = HfArgumentParser(ARGUMENT_TYPES)
    return parser.parse_args_into_dataclasses(args=[
        "--model_name_or_path", base, "--data_file", sms, "--output_dir", str(out), "--max_steps", "4",
        "--learning_rate", "3e-3", "--eval_strategy", "no", "--logging_steps", "2", *extra])


# Each mode's run also tries one way of training and deciding: the book's balanced split with the best-F1 threshold,
# all the data with class weights and a target false-positive rate, and a fixed threshold.
RUN_OPTIONS = {"full": [], "last-block": ["--no_balance", "--class_weighting", "--target_fpr", "0.2"],
               "lora": ["--decision_threshold", "0.5"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base_dir, sms_file):
    """Each mode trained once for 4 steps: {mode: (output folder, metrics)}."""
    from hfgpt.training.finetune_spam import finetune_spam

    runs = {}
    for mode, options in RUN_OPTIONS.items():
        out = tmp_path_factory.mktemp(f"spam-{mode}")
        runs[mode] = (str(out), finetune_spam(*_args(base_dir, sms_file, out, "--mode", mode, "--lora_r", "4",
                                                     *options)))
    return runs


# ------------------------------------------------------------------------------------------------------ training
def test_every_mode_trains_and_reports(trained):
    sizes = {"balanced": (35, 5, 9, 10, 14), "natural": (57, 9, 9, 10, 14)}  # natural test: 15% of 90, carved first
    for mode, (out, metrics) in trained.items():
        assert metrics["mode"] == mode
        assert (metrics["train_messages"], metrics["validation_messages"], metrics["calibration_messages"],
                metrics["test_messages"], metrics["natural_test_messages"]) == sizes[metrics["training_split"]]
        assert metrics["natural_test_texts_also_in_train"] == 0 and metrics["natural_test_spam"] == 5
        for key in ("test_accuracy", "test_precision", "test_recall", "test_f1", "train_accuracy", "validation_accuracy",
                    "before_accuracy", "test_argmax_accuracy", "natural_test_precision", "natural_test_recall",
                    "natural_test_f1", "natural_test_fpr", "natural_test_roc_auc", "natural_test_average_precision",
                    "svm_natural_test_fpr", "svm_natural_test_recall", "svm_test_accuracy", "decision_threshold"):
            assert 0.0 <= metrics[key] <= 1.0, (mode, key)
        assert metrics["natural_test_false_positives"] == round(metrics["natural_test_fpr"] * 9)
        saved = json.loads(open(os.path.join(out, "test_results.json")).read())
        assert saved["test_accuracy"] == metrics["test_accuracy"]
        assert saved["natural_test_fpr"] == metrics["natural_test_fpr"]
        for png in ("confusion_matrix.png", "natural_confusion_matrix.png", "precision_recall.png"):
            with open(os.path.join(out, png), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", png
    assert trained["full"][1]["decision_rule"] == "best validation F1"
    weighted = trained["last-block"][1]
    assert weighted["decision_rule"] == "best validation recall at validation FPR <= 0.2"
    assert (weighted["class_weight_ham"], weighted["class_weight_spam"]) == pytest.approx((57 / 80, 57 / 34))  # n/(2c)
    assert "class_weight_ham" not in trained["full"][1]
    assert weighted["calibration_fpr"] <= 0.2 and weighted["svm_class_weight"] == "balanced"
    fixed = trained["lora"][1]
    assert fixed["decision_logit_shift"] == 0.0 and fixed["test_accuracy"] == fixed["test_argmax_accuracy"]


def test_last_block_mode_freezes_the_rest(trained, base_dir):
    from transformers import AutoModelForSequenceClassification

    base = GPTScratchForCausalLM.from_pretrained(base_dir)
    tuned = AutoModelForSequenceClassification.from_pretrained(trained["last-block"][0])
    torch.testing.assert_close(tuned.model.embeddings.tok_emb.weight, base.model.embeddings.tok_emb.weight)
    torch.testing.assert_close(tuned.model.trf_blocks[0].att.qkv.weight, base.model.trf_blocks[0].att.qkv.weight)
    assert not torch.allclose(tuned.model.trf_blocks[-1].ff.fc_in.weight, base.model.trf_blocks[-1].ff.fc_in.weight)
    full = AutoModelForSequenceClassification.from_pretrained(trained["full"][0])
    assert not torch.allclose(full.model.embeddings.tok_emb.weight, base.model.embeddings.tok_emb.weight)


def test_saved_classifier_through_auto_class_and_pipeline(trained, sms_file):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from hfgpt.data.spam import spam_splits
    from hfgpt.training.finetune_spam import load_spam_classifier

    splits = spam_splits(load_spam_dataset(sms_file))
    for mode in ("full", "last-block"):
        out, metrics = trained[mode]
        model = AutoModelForSequenceClassification.from_pretrained(out)
        assert type(model).__name__ == "GPTScratchForSequenceClassification"
        assert model.config.id2label == {0: "ham", 1: "spam"}
        assert model.config.decision_threshold == pytest.approx(metrics["decision_threshold"])
        assert model.config.decision_positive_label == "spam"
        classifier = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(out))
        for split, prefix in (("balanced_test", "test"), ("natural_test", "natural_test")):
            test = splits[split]
            predicted = [r["label"] for r in classifier(list(test["text"]))]
            assert set(predicted) <= {"ham", "spam"}
            accuracy = sum(p == ["ham", "spam"][y] for p, y in zip(predicted, test["label"])) / len(test)
            # the saved model, through pipeline()'s argmax, is the thresholded model that was scored
            assert accuracy == pytest.approx(metrics[f"{prefix}_accuracy"]), (mode, split)
    assert type(load_spam_classifier(out)).__name__ == "GPTScratchForSequenceClassification"


def test_lora_adapter_loads_with_peft_and_merged_export_agrees(trained, base_dir):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from hfgpt.training.finetune_spam import load_classifier_from_causal_lm, load_spam_classifier

    out, metrics = trained["lora"]
    assert os.path.isfile(os.path.join(out, "adapter_config.json"))
    assert not os.path.isfile(os.path.join(out, "model.safetensors"))
    adapter = PeftModel.from_pretrained(load_classifier_from_causal_lm(base_dir), out).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(metrics["merged_dir"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer([HAM[0], SPAM[0], SPAM[3] + " and more text"], padding=True, return_tensors="pt")
    with torch.no_grad():
        adapter_logits, merged_logits = adapter(**batch).logits, merged(**batch).logits
    torch.testing.assert_close(adapter_logits, merged_logits, atol=1e-5, rtol=1e-5)
    base = load_classifier_from_causal_lm(base_dir).eval()
    with torch.no_grad():  # the adapter (and the fully trained head) changed something
        assert not torch.allclose(base(**batch).logits, adapter_logits)
    with torch.no_grad():
        torch.testing.assert_close(load_spam_classifier(out).eval()(**batch).logits, adapter_logits)
    labels = [r["label"] for r in pipeline("text-classification", model=merged, tokenizer=tokenizer)([HAM[1], SPAM[1]])]
    assert set(labels) <= {"ham", "spam"}


def test_from_a_gpt2_checkpoint(tmp_path, sms_file, base_dir):
    from transformers import AutoModelForSequenceClassification, GPT2Config, GPT2LMHeadModel

    from hfgpt.tokenization import load_tokenizer
    from hfgpt.training.finetune_spam import finetune_spam

    tokenizer = load_tokenizer(base_dir)
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(gpt2)
    tokenizer.save_pretrained(gpt2)
    metrics = finetune_spam(*_args(str(gpt2), sms_file, tmp_path / "out", "--max_steps", "2"))
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    assert model.config.n_embd == 32 and 0.0 <= metrics["test_accuracy"] <= 1.0


def test_truncated_messages_are_reported_by_the_recipe(tmp_path, base_dir, sms_file):
    from hfgpt.training.finetune_spam import finetune_spam

    metrics = finetune_spam(*_args(base_dir, sms_file, tmp_path / "out", "--max_length", "6", "--max_steps", "1"))
    assert metrics["truncated_train"] > 0 and metrics["truncated_test"] > 0


# ---------------------------------------------------------------------------------------------------- bad input
def _recipe():
    spec = importlib.util.spec_from_file_location("spam_recipe", os.path.join(REPO_ROOT, "recipes", "finetune_spam.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_bad_input_is_one_line_and_exit_2(tmp_path, base_dir, sms_file, trained, capsys):
    recipe = _recipe()
    unknown = tmp_path / "unknown"
    unknown.write_text("ham\thello\nphishing\tclick here\n")
    empty = tmp_path / "empty"
    empty.write_text("\n\n")
    columns = tmp_path / "columns.csv"
    columns.write_text("body,label\nhello,ham\n")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    classifier = trained["full"][0]
    cases = [
        (["--model_name_or_path", base_dir, "--data_file", str(unknown)], "unknown label(s) 'phishing'"),
        (["--model_name_or_path", base_dir, "--data_file", str(empty)], "holds no messages"),
        (["--model_name_or_path", base_dir, "--data_file", str(columns)], "missing column(s) ['text']"),
        (["--model_name_or_path", str(bert), "--data_file", sms_file], "BertForMaskedLM, not a causal language model"),
        (["--model_name_or_path", classifier, "--data_file", sms_file],
         "GPTScratchForSequenceClassification, not a causal language model"),
        (["--model_name_or_path", base_dir, "--data_file", sms_file, "--mode", "head-only"], "--mode must be one of"),
        (["--model_name_or_path", str(tmp_path / "nomodel"), "--data_file", sms_file], "No model folder"),
        (["--model_name_or_path", base_dir, "--data_file", str(tmp_path / "none")], "No SMS data file"),
        (["--model_name_or_path", base_dir, "--data_file", sms_file, "--max_length", "1000"], "longer than the model's context"),
        (["--model_name_or_path", base_dir, "--data_file", sms_file, "--target_fpr", "1.5"],
         "--target_fpr must be between 0 and 1 (e.g. 0.005 / 0.5), got 1.5"),
        (["--model_name_or_path", base_dir, "--data_file", sms_file, "--decision_threshold", "0"],
         "--decision_threshold must be between 0 and 1"),
        (["--model_name_or_path", base_dir, "--data_file", sms_file, "--target_fpr", "0.01", "--decision_threshold",
          "0.5"], "not both"),
        (["--model_name_or_path", base_dir, "--data_file", sms_file, "--natural_test_fraction", "1"],
         "--natural_test_fraction must be between 0 and 1"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            recipe.main([*argv, "--output_dir", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("finetune_spam.py: error: ") and message in err[-1], err


def test_export_sms_text_entry_point(tmp_path, sms_file):
    """recipes/export_sms_text.py in its own process: the messages outside every evaluation split, one per line."""
    out = tmp_path / "sms.txt"
    script = os.path.join(REPO_ROOT, "recipes", "export_sms_text.py")
    done = subprocess.run([sys.executable, script, "--data_file", sms_file, "--output_file", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = set(out.read_text().splitlines())
    from hfgpt.data.spam import EVALUATION_SPLITS, spam_splits

    splits = spam_splits(load_spam_dataset(sms_file))
    held_out = set().union(*(splits[name]["text"] for name in EVALUATION_SPLITS))
    assert not lines & held_out and len(lines) == 90 - len(held_out) > 40
    assert set(splits["natural_train"]["text"]) - set(splits["natural_validation"]["text"]) <= lines | held_out
    assert f"Wrote {len(lines)} of 90 messages" in done.stdout

def test_export_bad_input_and_the_old_flag_are_one_line_and_exit_2(tmp_path, sms_file, capsys):
    path = os.path.join(REPO_ROOT, "recipes", "export_sms_text.py")
    spec = importlib.util.spec_from_file_location("export_sms_text", path)
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    out = str(tmp_path / "sms.txt")
    for main, argv, message in (
        (export.main, ["--output_file", out, "--natural_test_fraction", "0"],
         "export_sms_text.py: error: --natural_test_fraction must be between 0 and 1"),
        (_recipe().main, ["--export_pretraining_text", out],  # the old flag: one line naming the new entry point
         "finetune_spam.py: error: --export_pretraining_text moved to its own entry point: python "
         "recipes/export_sms_text.py --output_file FILE (same data flags)."),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["--data_file", sms_file, *argv])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)
    assert not os.path.exists(out)


def test_readme_table_script(trained):
    """scripts/spam_table.py: one row for the model and one for its SVM per run, from all_results.json."""
    runs = [trained["full"][0], trained["last-block"][0]]
    done = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "spam_table.py"), *runs],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.strip().splitlines()
    assert rows[0].startswith("| run | classifier | natural test: FPR on ham") and len(rows) == 2 + 4
    metrics = trained["full"][1]
    fp, ham = metrics["natural_test_false_positives"], metrics["natural_test_messages"] - metrics["natural_test_spam"]
    assert f"| {os.path.basename(runs[0])} (balanced, full) | hfgpt, P(spam) > " in rows[2]
    assert f"| {metrics['natural_test_fpr']:.2%} ({fp} of {ham}) |" in rows[2] and "TF-IDF + linear SVM" in rows[3]


# -------------------------------------------------------------------------------------- class weights, threshold
def test_class_weights_and_the_weighted_loss_by_hand():
    from hfgpt.training.finetune_spam import class_weights, weighted_loss_fn

    assert class_weights([0, 0, 0, 1]) == pytest.approx([4 / 6, 4 / 2])  # n / (2 * count): mean weight 1
    with pytest.raises(HfgptInputError, match=r"counts are \{'ham': 3, 'spam': 0\}"):
        class_weights([0, 0, 0])
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.25], [-1.0, 3.0], [0.0, 0.0], [1.0, 2.0]], requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0, 0])
    weights = [0.25, 3.0]
    by_hand = sum(weights[y] * -torch.log_softmax(logits[i], -1)[y] for i, y in enumerate(labels.tolist())) / 5
    loss = weighted_loss_fn(weights)({"logits": logits}, labels)
    torch.testing.assert_close(loss, by_hand)
    # under gradient accumulation the Trainer passes the number of messages in all the accumulated batches
    torch.testing.assert_close(weighted_loss_fn(weights)({"logits": logits}, labels, num_items_in_batch=10), by_hand / 2)
    unweighted = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(weighted_loss_fn([1.0, 1.0])({"logits": logits}, labels), unweighted)
    loss.backward()
    assert logits.grad[1, 1] < 0 and abs(logits.grad[1, 1]) > 10 * abs(logits.grad[3, 0])  # spam pulled harder


def test_saved_threshold_changes_pipeline_answer_on_a_borderline_message(tmp_path, base_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from hfgpt.evaluation.classification import log_odds, set_decision_threshold
    from hfgpt.training.finetune_spam import load_classifier_from_causal_lm

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = load_classifier_from_causal_lm(base_dir).eval()
    message = "Call now to claim your prize"
    with torch.no_grad():
        score = float(log_odds(model(**tokenizer(message, return_tensors="pt")).logits.numpy())[0])
    answers = {}
    for name, cut in (("below", score - 0.01), ("above", score + 0.01)):  # the rule: spam if log-odds > cut
        set_decision_threshold(model, cut, "test")
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
        config = AutoModelForSequenceClassification.from_pretrained(tmp_path / name).config
        assert config.decision_threshold == pytest.approx(1 / (1 + math.exp(-cut)))
        assert config.decision_logit_shift == pytest.approx(cut)
        result = pipeline("text-classification", model=str(tmp_path / name))(message)[0]
        answers[name] = result["label"]
        assert result["score"] == pytest.approx(1 / (1 + math.exp(-abs(score - cut))), abs=1e-4)
    assert answers == {"below": "spam", "above": "ham"}
