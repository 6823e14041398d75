"""Instruction fine-tuning (chapter 7): records, the book's split, the Alpaca chat template, the masking collator,
training in both modes, response generation to JSON, and bad input."""

import importlib.util
import json
import math
import os

import pytest
import torch
from conftest import INSTRUCTION_RECORDS, REPO_ROOT, alpaca_tokenizer, book_prompt, save_tiny_checkpoint

from hfgpt import GPTScratchForCausalLM
from hfgpt.data.instructions import ALPACA_CHAT_TEMPLATE, entry_to_messages, tokenize_records

@pytest.fixture(scope="module")
def tokenizer():
    return alpaca_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny hfgpt checkpoint (2 layers, 64 wide, context 256) with its tokenizer, as recipes/pretrain.py saves."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-instruct"), tokenizer, n_positions=256)[0]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "instruction-data.json"
    path.write_text(json.dumps(INSTRUCTION_RECORDS * 2))  # 24 records: 20 train, 2 test, 2 validation
    return str(path)


# ------------------------------------------------------------------------------------------------------ template
def test_pipeline_with_chat_messages_uses_the_training_prompt(model_dir, tokenizer):
    from transformers import AutoModelForCausalLM, pipeline

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    messages = entry_to_messages(INSTRUCTION_RECORDS[0], with_response=False)
    reply = generator(messages, max_new_tokens=6, do_sample=False)[0]["generated_text"][-1]
    ids = tokenizer(book_prompt(INSTRUCTION_RECORDS[0]), return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    assert reply["role"] == "assistant"
    assert reply["content"] == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------ generation
def test_batched_generation_matches_one_by_one(model_dir, tokenizer):
    from hfgpt.evaluation.generation import generate_responses

    model = GPTScratchForCausalLM.from_pretrained(model_dir).eval()
    tokenizer.padding_side = "right"
    entries = INSTRUCTION_RECORDS[:3]
    batched, skipped = generate_responses(model, tokenizer, entries, max_new_tokens=6, batch_size=3)
    single = [generate_responses(model, tokenizer, [e], max_new_tokens=6)[0][0] for e in entries]
    assert skipped == 0 and batched == single
    assert [r["instruction"] for r in batched] == [e["instruction"] for e in entries]
    assert all(isinstance(r["model_response"], str) for r in batched)
    assert tokenizer.padding_side == "right"  # restored after left-padding


# ---------------------------------------------------------------------------------------------------- training
def _args(tmp_path, model_dir, data_file, *extra):
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_instructions import ARGUMENT_TYPES

    parser = HfArgumentParser(ARGUMENT_TYPES)
    return parser.parse_args_into_dataclasses(args=[
        "--model_name_or_path", model_dir, "--data_file", data_file, "--output_dir", str(tmp_path / "out"),
        "--max_steps", "4", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4",
        "--max_new_tokens", "5", "--eval_strategy", "no", "--logging_steps", "2", *extra])


@pytest.mark.parametrize("mode", ["full", "lora", "full-padding-free"])
def test_finetune_a_few_steps_and_write_responses(tmp_path, model_dir, data_file, mode):
    from hfgpt.training.finetune_instructions import RESPONSES_FILE, finetune_instructions

    extra = {"full": ["--mask_prompt"], "lora": ["--mode", "lora", "--lora_r", "4"],
             "full-padding-free": ["--padding_free"]}[mode]
    metrics = finetune_instructions(*_args(tmp_path, model_dir, data_file, *extra))
    out = tmp_path / "out"
    assert (metrics["train_examples"], metrics["validation_examples"], metrics["test_examples"]) == (20, 2, 2)
    assert metrics["train_global_step"] == 4 if "train_global_step" in metrics else True
    for key in ("before_response_loss", "after_response_loss", "before_full_loss", "after_full_loss"):
        assert math.isfinite(metrics[key])
    assert metrics["after_response_loss"] < metrics["before_response_loss"]
    assert metrics["after_response_perplexity"] == pytest.approx(math.exp(metrics["after_response_loss"]))
    responses = json.loads((out / RESPONSES_FILE).read_text())
    assert [r["instruction"] for r in responses] == [r["instruction"] for r in (INSTRUCTION_RECORDS * 2)[20:22]]
    assert all(set(r) == {"instruction", "input", "output", "model_response"} for r in responses)
    assert json.loads((out / "all_results.json").read_text())["after_response_loss"] == metrics["after_response_loss"]
    if mode == "lora":
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").is_file()
        adapter = PeftModel.from_pretrained(GPTScratchForCausalLM.from_pretrained(model_dir), out).eval()
        merged = AutoModelForCausalLM.from_pretrained(metrics["merged_dir"]).eval()
        ids = torch.tensor([[5, 17, 42, 99, 3]])
        with torch.no_grad():
            torch.testing.assert_close(merged(ids).logits, adapter(ids).logits, atol=1e-5, rtol=1e-5)
    else:
        from transformers import AutoTokenizer

        assert (out / "model.safetensors").is_file()
        assert AutoTokenizer.from_pretrained(out).chat_template == ALPACA_CHAT_TEMPLATE


def test_finetune_skips_too_long_and_reports(tmp_path, model_dir, data_file, tokenizer):
    from hfgpt.training.finetune_instructions import finetune_instructions

    lengths = sorted(len(i["input_ids"]) for i in tokenize_records(INSTRUCTION_RECORDS, tokenizer))
    metrics = finetune_instructions(*_args(tmp_path, model_dir, data_file, "--max_length", str(lengths[6]),
                                           "--max_steps", "1"))
    assert metrics["skipped_too_long_train"] > 0 and metrics["train_examples"] == 20 - metrics["skipped_too_long_train"]
    with pytest.raises(ValueError, match="longer than the model's context"):
        finetune_instructions(*_args(tmp_path, model_dir, data_file, "--max_length", "100000", "--overwrite_output_dir"))
    with pytest.raises(ValueError, match="Every train example is longer than"):
        finetune_instructions(*_args(tmp_path, model_dir, data_file, "--max_length", str(lengths[0] - 1),
                                     "--overwrite_output_dir"))


def _recipe():
    spec = importlib.util.spec_from_file_location("finetune_recipe",
                                                  os.path.join(REPO_ROOT, "recipes", "finetune_instructions.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_bad_input_is_one_line_and_exit_2(tmp_path, model_dir, data_file, capsys):
    recipe = _recipe()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([INSTRUCTION_RECORDS[0], {"instruction": "no output here"}]))
    cases = [
        (["--model_name_or_path", model_dir, "--data_file", str(bad)], "Record 1 has no 'output' field"),
        (["--model_name_or_path", model_dir, "--data_file", str(tmp_path / "none.json")], "No instruction data file"),
        (["--model_name_or_path", str(tmp_path / "nomodel"), "--data_file", data_file], "No model folder"),
        (["--model_name_or_path", model_dir], "exactly one of --data_file"),
        (["--model_name_or_path", model_dir, "--data_file", data_file, "--judge_url", "http://127.0.0.1:9/v1"],
         "--judge_url needs --judge_model_name"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            recipe.main([*argv, "--output_dir", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("finetune_instructions.py: error: ") and message in err[-1], err
