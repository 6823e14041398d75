"""TRL's SFT, DPO, GRPO and reward trainers (and peft's LoRA) on a saved hfgpt folder, with hfgpt imported and as a
remote-code folder in a process where ``import hfgpt`` fails. The trainers themselves are in tests/trl_probe.py."""

import json
import math
import os

import pytest
import trl_probe
from conftest import REPO_ROOT, pydoc_topics, run_without_hfgpt, save_tiny_checkpoint
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt.tokenization import train_bpe_tokenizer

# Dropout on (the book's 0.1): DPO's first loss is ln 2 only if the trainer's disable_dropout reaches every dropout.
DROP_RATE = 0.1
REMOTE_MODULE = "transformers_modules."  # where transformers puts a folder's own code


@pytest.fixture(scope="module")
def tokenizer():
    texts = [p + c + r for p, c, r in zip(trl_probe.PROMPTS, trl_probe.CHOSEN, trl_probe.REJECTED)]
    return train_bpe_tokenizer(pydoc_topics(10) + texts * 5, vocab_size=400, model_max_length=64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("trl-base"), tokenizer, drop_rate=DROP_RATE)[0]


@pytest.fixture(scope="module")
def in_process(folder, tmp_path_factory):
    """Each trainer run here, hfgpt imported (model objects, or paths resolved by hfgpt's Auto classes); a trainer
    that fails raises in its own test."""
    out = tmp_path_factory.mktemp("trl-in-process")

    def run(name: str) -> dict:
        result = trl_probe.RUNS[name](folder, str(out / name), remote=False)
        assert result["model_module"] == "hfgpt.modeling_gpt_scratch", result["model_module"]
        return result

    return run


@pytest.fixture(scope="module")
def remote(folder, tmp_path_factory):
    """All four trainers in one fresh interpreter where ``import hfgpt`` fails (paths, ``trust_remote_code=True``)."""
    out = tmp_path_factory.mktemp("trl-remote")
    result_path = out / "results.json"
    tests_dir = os.path.join(REPO_ROOT, "tests")
    script = (f"sys.path.insert(0, {tests_dir!r})\nimport trl_probe\n"
              f"trl_probe.main({folder!r}, {str(out)!r}, {str(result_path)!r})\n")
    run_without_hfgpt(script, cwd=out, timeout=600)
    return json.loads(result_path.read_text())


def remote_run(remote: dict, name: str) -> dict:
    result = remote[name]
    assert "error" not in result, f"{name} without hfgpt failed:\n{result.get('error')}"
    assert result["model_module"].startswith(REMOTE_MODULE), result["model_module"]
    return result


def test_sft_with_lora_on_all_linear_layers(in_process, remote):
    for result in (in_process("sft"), remote_run(remote, "sft")):
        losses = result["losses"]
        assert len(losses) == 3 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
        # "all-linear" finds the four layers of every block (peft has no default for model_type gpt_scratch)
        assert result["lora_modules"] == ["fc_in", "fc_out", "out_proj", "qkv"]
        assert result["adapter_changed_logits"]
        # AutoPeftModelForCausalLM reloads the saved adapter (task_type="CAUSAL_LM") onto the folder's model
        assert result["reloaded_max_difference"] < 1e-5


def assert_dpo_starts_at_ln2(result: dict) -> None:
    """Policy = reference at step 1, so with dropout switched off the loss is -log sigmoid(0) = ln 2."""
    first = result["log_history"][0]
    assert abs(first["loss"] - math.log(2)) < 1e-4, (first["loss"], first["rewards/chosen"])
    assert first["rewards/chosen"] == 0 and first["rewards/rejected"] == 0, first


def test_dpo_first_loss_is_ln2_and_training_separates_the_pairs(in_process, remote):
    local = in_process("dpo")
    assert local["model_class"] == "GPTScratchForCausalLM"
    assert local["ref_model_module"] == "hfgpt.modeling_gpt_scratch"  # rebuilt from the model object's path
    remote_result = remote_run(remote, "dpo")
    assert remote_result["ref_model_module"].startswith(REMOTE_MODULE)  # DPOConfig(trust_remote_code=True)
    for result in (local, remote_result):
        assert_dpo_starts_at_ln2(result)
        last = result["log_history"][len(result["losses"]) - 1]
        assert last["rewards/margins"] > 0 and result["losses"][-1] < math.log(2), last


def test_dpo_check_holds_for_gpt2_of_the_same_size(tmp_path, tokenizer):
    """The control: transformers' GPT-2 with the same dropout and TRL's defaults starts at ln 2 exactly."""
    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=64, n_layer=2, n_head=2,
                        resid_pdrop=DROP_RATE, embd_pdrop=DROP_RATE, attn_pdrop=DROP_RATE,
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    assert_dpo_starts_at_ln2(trl_probe.run_dpo(str(tmp_path / "gpt2"), str(tmp_path / "out"), remote=False))


def test_grpo_with_continuous_batching_generation(in_process, remote):
    for result in (in_process("grpo"), remote_run(remote, "grpo")):
        # each of the 2 steps: 4 completions (2 prompts x 2 generations), each 1 to max_completion_length tokens
        lengths = result["completion_lengths"]
        assert len(lengths) == 8 and all(0 < n <= 8 for n in lengths), lengths
        assert len(result["losses"]) == 2 and all(math.isfinite(x) for x in result["losses"])


def test_reward_model_on_the_sequence_classification_head(in_process, remote):
    for result in (in_process("reward"), remote_run(remote, "reward")):
        assert result["model_class"] == "GPTScratchForSequenceClassification" and result["score_out_features"] == 1
        losses = result["losses"]
        assert losses[-1] < losses[0] and result["log_history"][len(losses) - 1]["accuracy"] == 1, losses
