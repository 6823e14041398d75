"""Preference tuning (the book's chapter-7 DPO bonus): preference records, the book's prompt and split, and the recipe
through TRL's DPOTrainer on tiny models (full, LoRA, a GPT-2 folder), output protection, resume and bad input."""

import importlib.util
import json
import math
import os

import pytest
from conftest import INSTRUCTION_RECORDS, REPO_ROOT, alpaca_tokenizer, book_prompt, save_tiny_checkpoint

from hfgpt.data.instructions import entry_to_messages
from hfgpt.data.preferences import PreferenceDataArguments, load_preference_records, to_dpo_dataset

pytest.importorskip("trl")

# The book's pairs in miniature: a polite chosen response and an impolite rejected one.
PREFERENCE_RECORDS = [{**r, "chosen": r["output"], "rejected": f"Figure it out yourself. {r['output'].lower()}"}
                      for r in INSTRUCTION_RECORDS] * 3  # 36 records: 30 train, 3 test, 3 validation


@pytest.fixture(scope="module")
def tokenizer():
    return alpaca_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-dpo"), tokenizer, n_positions=256)[0]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("preference-data") / "instruction-data-with-preference.json"
    path.write_text(json.dumps(PREFERENCE_RECORDS))
    return str(path)


# ---------------------------------------------------------------------------------------------------------- data
def test_records_prompt_and_split(tmp_path, tokenizer, data_file):
    from hfgpt.data.preferences import preference_splits

    splits, report = preference_splits(PreferenceDataArguments(data_file=data_file))
    assert [len(splits[name]) for name in ("train", "test", "validation")] == [30, 3, 3]
    assert report.total == report.kept == 36
    row = to_dpo_dataset(splits["train"][:1])[0]
    assert row["prompt"] == book_prompt(INSTRUCTION_RECORDS[0]) == tokenizer.apply_chat_template(
        entry_to_messages(INSTRUCTION_RECORDS[0], with_response=False), tokenize=False, add_generation_prompt=True)
    assert (row["chosen"], row["rejected"]) == (PREFERENCE_RECORDS[0]["chosen"], PREFERENCE_RECORDS[0]["rejected"])
    # prompt / chosen / rejected records: the prompt is the instruction
    other = tmp_path / "prompts.jsonl"
    other.write_text("\n".join(json.dumps({"prompt": "Say hi.", "chosen": "Hello!", "rejected": "No."})
                               for _ in range(3)))
    records, _ = load_preference_records(PreferenceDataArguments(data_file=str(other)))
    assert records[0] == {"instruction": "Say hi.", "input": "", "chosen": "Hello!", "rejected": "No."}


# ------------------------------------------------------------------------------------------------------ recipe
def _recipe():
    spec = importlib.util.spec_from_file_location("preference_recipe",
                                                  os.path.join(REPO_ROOT, "recipes", "finetune_preferences.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(model_dir, data_file, out, *extra):
    return _recipe().main(["--model_name_or_path", model_dir, "--data_file", data_file, "--output_dir", str(out),
                           "--max_steps", "4", "--learning_rate", "5e-3", "--per_device_train_batch_size", "4",
                           "--eval_steps", "2", "--logging_steps", "1", "--sample_prompts", "2",
                           "--max_new_tokens", "4", *extra])


def _check_run(metrics, out):
    for when in ("before", "after"):
        for name in ("rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "loss"):
            assert math.isfinite(metrics[f"{when}_{name}"]), (when, name)
    # the policy starts as the reference: DPO's loss is ln 2 (bf16 autocast on the CPU leaves ~1e-4 of noise)
    assert abs(metrics["before_loss"] - math.log(2)) < 1e-3 and abs(metrics["before_rewards/margins"]) < 1e-3
    assert metrics["after_rewards/margins"] > 0  # the tiny model learns the pairs
    saved = json.loads((out / "all_results.json").read_text())
    assert saved["after_rewards/accuracies"] == metrics["after_rewards/accuracies"]
    assert (out / "preference_curve.png").stat().st_size > 1000
    samples = json.loads((out / "preference-samples.json").read_text())
    assert len(samples) == 2 and all(isinstance(s["response_before"], str) and isinstance(s["response_after"], str)
                                     for s in samples)
    assert samples[0]["chosen"] == PREFERENCE_RECORDS[33]["chosen"]  # the first validation pair


def test_recipe_full_protects_the_output_and_resumes(tmp_path, model_dir, data_file, capsys):
    out = tmp_path / "full"
    metrics = _run(model_dir, data_file, out, "--save_strategy", "steps", "--save_steps", "2")
    _check_run(metrics, out)
    assert (out / "model.safetensors").is_file() and (out / "checkpoint-4").is_dir()
    with pytest.raises(SystemExit) as exit_info:  # a second run refuses the folder
        _run(model_dir, data_file, out)
    assert exit_info.value.code == 2 and "already holds a run" in capsys.readouterr().err.strip().splitlines()[-1]
    resumed = _run(model_dir, data_file, out, "--max_steps", "6", "--resume_from_checkpoint", "last",
                   "--save_strategy", "steps", "--save_steps", "2")
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and resumed["after_rewards/margins"] > 0
    assert [e["step"] for e in state["log_history"] if "loss" in e][:4] == [1, 2, 3, 4]  # from the first run


def test_recipe_lora_exports_merged_weights(tmp_path, model_dir, data_file):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from hfgpt import GPTScratchForCausalLM

    out = tmp_path / "lora"
    metrics = _run(model_dir, data_file, out, "--mode", "lora", "--lora_r", "4", "--learning_rate", "2e-2")
    _check_run(metrics, out)
    assert (out / "adapter_model.safetensors").is_file() and not (out / "ref").exists()  # no TRL reference copy
    adapter = PeftModel.from_pretrained(GPTScratchForCausalLM.from_pretrained(model_dir), out).eval()
    merged = AutoModelForCausalLM.from_pretrained(metrics["merged_dir"]).eval()
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapter(ids).logits, atol=1e-5, rtol=1e-5)


def test_recipe_on_a_gpt2_folder(tmp_path, tokenizer, data_file):
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=64, n_layer=2, n_head=2, bos_token_id=eos,
                        eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "gpt2-dpo"
    _check_run(_run(str(folder), data_file, out), out)
    # the judge scores the sample responses before and after (here a callable; the flags name a model or a URL)
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_preferences import ARGUMENT_TYPES, finetune_preferences

    args = HfArgumentParser(ARGUMENT_TYPES).parse_args_into_dataclasses(args=[
        "--model_name_or_path", str(folder), "--data_file", data_file, "--output_dir", str(tmp_path / "judged"),
        "--max_steps", "1", "--eval_strategy", "no", "--sample_prompts", "2", "--max_new_tokens", "2"])
    metrics = finetune_preferences(*args, judge=lambda prompt: "Score: 75")
    assert metrics["before_judge_mean_score"] == metrics["after_judge_mean_score"] == 75
    samples = json.loads((tmp_path / "judged" / "preference-samples.json").read_text())
    assert [(s["score_before"], s["score_after"]) for s in samples] == [(75, 75), (75, 75)]


def test_bad_input_is_one_line_and_exit_2_before_any_model_loads(tmp_path, model_dir, data_file, capsys,
                                                                  monkeypatch):
    import hfgpt.training.finetune_preferences as module

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(module, "load_chat_model", no_model)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([PREFERENCE_RECORDS[0], {"instruction": "Be nice.", "rejected": "No."}]))
    cases = [
        (["--data_file", str(bad)], ["Record 1 has no 'chosen' field"]),
        (["--data_file", str(tmp_path / "none.json")], ["No instruction data file"]),
        ([], ["Could not download https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
              "04_preference-tuning-with-dpo/instruction-data-with-preference.json", "pass --data_file"]),
        (["--data_file", data_file, "--dataset_name", "x/y"], ["not both"]),
        (["--data_file", data_file, "--mode", "half"], ["--mode must be one of"]),
        (["--data_file", data_file, "--sample_prompts", "-1"], ["--sample_prompts"]),
        (["--data_file", data_file, "--max_length", "100000"], ["longer than the model's context"]),
        (["--data_file", data_file, "--model_name_or_path", str(tmp_path / "none")], ["No model folder"]),
    ]
    for argv, messages in cases:
        with pytest.raises(SystemExit) as exit_info:
            _recipe().main(["--model_name_or_path", model_dir, *argv, "--output_dir", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("finetune_preferences.py: error: "), err
        assert all(message in err[-1] for message in messages), err
