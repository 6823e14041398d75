"""Spam classification (chapter 6, appendix E): the SMS data pipeline, the three training modes through the real
Trainer, the saved folders through AutoModelForSequenceClassification / pipeline() / PeftModel, the merged LoRA
export, and bad input."""

import importlib.util
import json
import os

import pytest
import torch
from conftest import HAM, REPO_ROOT, SPAM

from hfgpt import GPTScratchForCausalLM
from hfgpt.data.spam import load_spam_dataset


def _args(base, sms, out, *extra):
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_spam import ARGUMENT_TYPES

    parser = HfArgumentParser(ARGUMENT_TYPES)
    return parser.parse_args_into_dataclasses(args=[
        "--model_name_or_path", base, "--data_file", sms, "--output_dir", str(out), "--max_steps", "4",
        "--learning_rate", "3e-3", "--eval_strategy", "no", "--logging_steps", "2", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, base_dir, sms_file):
    """Each mode trained once for 4 steps: {mode: (output folder, metrics)}."""
    from hfgpt.training.finetune_spam import finetune_spam

    runs = {}
    for mode in ("full", "last-block", "lora"):
        out = tmp_path_factory.mktemp(f"spam-{mode}")
        runs[mode] = (str(out), finetune_spam(*_args(base_dir, sms_file, out, "--mode", mode, "--lora_r", "4")))
    return runs


# ------------------------------------------------------------------------------------------------------ training
def test_every_mode_trains_and_reports(trained):
    for mode, (out, metrics) in trained.items():
        assert metrics["mode"] == mode and metrics["train_global_step"] == 4 if "train_global_step" in metrics else True
        assert (metrics["train_messages"], metrics["validation_messages"], metrics["test_messages"]) == (42, 6, 12)
        for key in ("test_accuracy", "test_precision", "test_recall", "test_f1", "train_accuracy",
                    "validation_accuracy", "before_accuracy"):
            assert 0.0 <= metrics[key] <= 1.0, (mode, key)
        saved = json.loads(open(os.path.join(out, "test_results.json")).read())
        assert saved["test_accuracy"] == metrics["test_accuracy"]
        with open(os.path.join(out, "confusion_matrix.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


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

    from hfgpt.data.spam import balance, split_dataset
    from hfgpt.training.finetune_spam import load_spam_classifier

    out, metrics = trained["full"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model).__name__ == "GPTScratchForSequenceClassification"
    assert model.config.id2label == {0: "ham", 1: "spam"}
    classifier = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(out))
    test = split_dataset(balance(load_spam_dataset(sms_file)))["test"]
    predicted = [r["label"] for r in classifier(list(test["text"]))]
    assert set(predicted) <= {"ham", "spam"}
    accuracy = sum(p == ["ham", "spam"][y] for p, y in zip(predicted, test["label"])) / len(test)
    assert accuracy == pytest.approx(metrics["test_accuracy"])  # the saved model is the one that was scored
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
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            recipe.main([*argv, "--output_dir", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("finetune_spam.py: error: ") and message in err[-1], err


def test_recipe_exports_pretraining_text(tmp_path, sms_file):
    out = tmp_path / "sms.txt"
    _recipe().main(["--data_file", sms_file, "--export_pretraining_text", str(out), "--output_dir", str(tmp_path / "o")])
    assert len(out.read_text().splitlines()) == 90 - 6 - 12
