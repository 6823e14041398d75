"""hfgpt.training.common and hfgpt.training.recipe_cli: loading a base model for a head, the training modes, the
checks every recipe shares, and the typed error (bad input: one line, exit 2; a bug: its traceback, exit 1)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, tiny_config

from hfgpt import GPTScratchForCausalLM, GPTScratchForSequenceClassification
from hfgpt.errors import HfgptInputError
from hfgpt.training.common import (
    check_context,
    check_mode,
    load_base_model,
    set_trainable,
)


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("causal")
    GPTScratchForCausalLM(tiny_config(drop_rate=0.1)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("gpt2")
    config = GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return str(folder)


def test_load_base_model_for_both_heads_from_hfgpt_and_gpt2(causal_dir, gpt2_dir):
    ids = torch.tensor([[3, 14, 15, 92]])
    for folder in (causal_dir, gpt2_dir):
        causal = load_base_model(folder, drop_rate=0.0).eval()
        assert type(causal) is GPTScratchForCausalLM and causal.config.drop_rate == 0.0
        classifier = load_base_model(folder, GPTScratchForSequenceClassification, num_labels=3).eval()
        assert classifier.config.num_labels == 3 and classifier.score.out_features == 3
        with torch.no_grad():  # the same body under both heads
            torch.testing.assert_close(classifier.model(ids).last_hidden_state, causal.model(ids).last_hidden_state)
    assert load_base_model(causal_dir).config.drop_rate == 0.1  # drop_rate=None keeps the checkpoint's


def test_load_base_model_refuses_what_is_not_a_causal_lm(tmp_path, causal_dir):
    classifier_dir = tmp_path / "classifier"
    load_base_model(causal_dir, GPTScratchForSequenceClassification, num_labels=2).save_pretrained(classifier_dir)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    for folder, message in ((classifier_dir, "GPTScratchForSequenceClassification, not a causal language model"),
                            (bert, "BertForMaskedLM, not a causal language model"),
                            (tmp_path / "nothing", "No model folder")):
        with pytest.raises(HfgptInputError, match=message):
            load_base_model(str(folder))


def test_last_block_mode_on_a_causal_lm_trains_the_last_block_norm_and_head():
    model = set_trainable(GPTScratchForCausalLM(tiny_config()), "last-block")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith(("model.trf_blocks.1.", "model.final_norm.", "lm_head.",
                                              "model.embeddings.tok_emb.")) for name in trainable)
    assert "model.trf_blocks.1.att.qkv.weight" in trainable and "model.trf_blocks.0.att.qkv.weight" not in trainable
    full = set_trainable(GPTScratchForCausalLM(tiny_config()), "full")
    assert all(p.requires_grad for p in full.parameters())
    with pytest.raises(HfgptInputError, match="--mode must be one of full, last-block, lora; got 'head'"):
        check_mode("head")


def test_shared_checks_raise_the_typed_error(tmp_path):
    with pytest.raises(HfgptInputError, match=r"--max_length 65 is longer than the model's context \(n_positions=64\)"):
        check_context(65, tiny_config())
    check_context(64, tiny_config())
    assert issubclass(HfgptInputError, ValueError)


# A real recipe process, with one internal function replaced: the bad-input path and the bug path.
INJECT = """
import runpy, sys
import hfgpt.training.pretrain as pretrain
def broken(*args, **kwargs):
    raise {error}
pretrain.prepare_tokenizer = broken
sys.argv = ["recipes/pretrain.py", *{argv!r}]
runpy.run_path("recipes/pretrain.py", run_name="__main__")
"""


@pytest.mark.parametrize("error, code", [
    ("pretrain.HfgptInputError('the corpus is in Klingon')", 2),
    ("ValueError('an internal bug in the data pipeline')", 1),
])
def test_recipe_prints_bad_input_as_one_line_and_keeps_the_traceback_of_a_bug(tmp_path, error, code):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Some text to read. " * 200)
    argv = ["--train_file", str(corpus), "--preset", "tiny", "--max_length", "16", "--output_dir",
            str(tmp_path / "out"), "--max_steps", "1"]
    done = subprocess.run([sys.executable, "-c", INJECT.format(error=error, argv=argv)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == code, done.stderr[-3000:]
    if code == 2:
        assert done.stderr.strip().splitlines()[-1] == "pretrain.py: error: the corpus is in Klingon"
        assert "Traceback" not in done.stderr
    else:
        assert "Traceback" in done.stderr and "ValueError: an internal bug in the data pipeline" in done.stderr
        assert "pretrain.py: error:" not in done.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
