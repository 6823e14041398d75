"""Instruction fine-tuning (chapter 7): records, the book's split, the Alpaca chat template, the masking collator,
training in both modes, response generation to JSON, and bad input."""

import importlib.util
import json
import math
import os

import pytest
import torch
from conftest import REPO_ROOT

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM
from hfgpt.data.instructions import (
    ALPACA_CHAT_TEMPLATE,
    InstructionCollator,
    InstructionDataset,
    RecordReport,
    add_chat_template,
    clean_records,
    entry_to_messages,
    format_input,
    format_prompt,
    load_instruction_records,
    split_records,
    tokenize_records,
)
from hfgpt.tokenization import ENDOFTEXT, train_bpe_tokenizer

RECORDS = [
    {"instruction": "Convert the active sentence to passive.", "input": "The chef cooks the meal.",
     "output": "The meal is cooked by the chef."},
    {"instruction": "What is the capital of France?", "input": "", "output": "The capital of France is Paris."},
    {"instruction": "Give a synonym for 'fast'.", "input": "", "output": "A synonym for 'fast' is 'quick'."},
    {"instruction": "Correct the spelling.", "input": "freind", "output": "The correct spelling is 'friend'."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "2 + 3 = 5."},
    {"instruction": "Name a primary color.", "input": "", "output": "Red is a primary color."},
    {"instruction": "Translate to French.", "input": "Thank you", "output": "Merci."},
    {"instruction": "Classify the animal.", "input": "dolphin", "output": "A dolphin is a mammal."},
    {"instruction": "What is the opposite of 'hot'?", "input": "", "output": "The opposite of 'hot' is 'cold'."},
    {"instruction": "Rewrite in the past tense.", "input": "She walks home.", "output": "She walked home."},
    {"instruction": "Name the largest planet.", "input": "", "output": "Jupiter is the largest planet."},
    {"instruction": "Make the word plural.", "input": "mouse", "output": "mice"},
]


def _corpus():
    from pydoc_data.topics import topics

    text = [topics[name] for name in sorted(topics)[:20]]
    return text + [format_prompt(r) + r["output"] for r in RECORDS] * 3


@pytest.fixture(scope="module")
def tokenizer():
    return add_chat_template(train_bpe_tokenizer(_corpus(), vocab_size=600, model_max_length=256))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny hfgpt checkpoint (2 layers, 64 wide, context 256) with its tokenizer, as recipes/pretrain.py saves."""
    folder = tmp_path_factory.mktemp("tiny-instruct")
    torch.manual_seed(0)
    config = GPTScratchConfig.from_preset("tiny", vocab_size=len(tokenizer), n_positions=256, drop_rate=0.0,
                                          bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                                          pad_token_id=tokenizer.eos_token_id)
    GPTScratchForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "instruction-data.json"
    path.write_text(json.dumps(RECORDS * 2))  # 24 records: 20 train, 2 test, 2 validation
    return str(path)


# ------------------------------------------------------------------------------------------------------ template
def test_chat_template_renders_the_books_format(tokenizer):
    for entry in (RECORDS[0], RECORDS[1]):  # with and without an input
        text = tokenizer.apply_chat_template(entry_to_messages(entry), tokenize=False)
        book = format_input(entry) + f"\n\n### Response:\n{entry['output']}" + ENDOFTEXT
        assert text == book
        prompt = tokenizer.apply_chat_template(entry_to_messages(entry, with_response=False), tokenize=False,
                                               add_generation_prompt=True)
        assert prompt == format_prompt(entry) == format_input(entry) + "\n\n### Response:\n"
    assert "### Input:" not in format_input(RECORDS[1])
    assert format_input(RECORDS[0]).startswith("Below is an instruction that describes a task. Write a response "
                                               "that appropriately completes the request.\n\n### Instruction:\n")
    system = [{"role": "system", "content": "Answer briefly."}, *entry_to_messages(RECORDS[1], with_response=False)]
    assert tokenizer.apply_chat_template(system, tokenize=False, add_generation_prompt=True) == \
        "Answer briefly.\n\n### Instruction:\nWhat is the capital of France?\n\n### Response:\n"
    with pytest.raises(Exception, match="not tool"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_chat_template_survives_save_and_assistant_mask(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.chat_template == ALPACA_CHAT_TEMPLATE
    out = reloaded.apply_chat_template(entry_to_messages(RECORDS[0]), return_dict=True,
                                       return_assistant_tokens_mask=True)
    answer = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert reloaded.decode(answer) == RECORDS[0]["output"] + ENDOFTEXT


def test_pipeline_with_chat_messages_uses_the_training_prompt(model_dir, tokenizer):
    from transformers import AutoModelForCausalLM, pipeline

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    messages = entry_to_messages(RECORDS[0], with_response=False)
    reply = generator(messages, max_new_tokens=6, do_sample=False)[0]["generated_text"][-1]
    ids = tokenizer(format_prompt(RECORDS[0]), return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    assert reply["role"] == "assistant"
    assert reply["content"] == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------ records, split
def test_book_split_in_file_order_and_seeded_shuffle():
    records = [{"instruction": f"i{n}", "input": "", "output": f"o{n}"} for n in range(1100)]
    splits = split_records(records)
    assert [len(splits[k]) for k in ("train", "test", "validation")] == [935, 110, 55]  # the book's numbers
    assert splits["train"][0]["instruction"] == "i0" and splits["test"][0]["instruction"] == "i935"
    assert splits["validation"][0]["instruction"] == "i1045"
    shuffled = split_records(records, seed=123)
    assert shuffled == split_records(records, seed=123) and shuffled["train"] != splits["train"]
    assert sorted(r["instruction"] for s in shuffled.values() for r in s) == sorted(r["instruction"] for r in records)
    with pytest.raises(ValueError, match="Fractions"):
        split_records(records, train_fraction=0.95, test_fraction=0.1)


def test_local_json_and_jsonl(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps(RECORDS))
    lines = tmp_path / "a.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    assert load_instruction_records(str(array)) == load_instruction_records(str(lines)) == RECORDS


def test_bad_records(tmp_path):
    with pytest.raises(ValueError, match=r"Record 1 has no 'output' field"):
        clean_records([RECORDS[0], {"instruction": "x", "input": ""}])
    with pytest.raises(ValueError, match=r"Record 0: 'output' must be a string"):
        clean_records([{"instruction": "x", "output": 3}])
    with pytest.raises(ValueError, match="Record 0 is a str"):
        clean_records(["just text"])
    kept, report = clean_records([*RECORDS[:3], {"instruction": "x", "output": "  "},
                                  {"instruction": "", "output": "y"}, {"instruction": "z", "output": "w"}])
    assert len(kept) == 4 and kept[-1] == {"instruction": "z", "input": "", "output": "w"}  # input defaults to ""
    assert (report.total, report.kept, report.empty_output, report.empty_instruction) == (6, 4, 1, 1)
    with pytest.raises(ValueError, match="None of the 1"):
        clean_records([{"instruction": "x", "output": ""}])
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"instruction\": ")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_instruction_records(str(bad))
    with pytest.raises(FileNotFoundError):
        load_instruction_records(str(tmp_path / "missing.json"))


# ------------------------------------------------------------------------------------------- tokenize + collate
def test_tokenize_records_and_skip_too_long(tokenizer):
    report = RecordReport()
    items = tokenize_records(RECORDS[:2], tokenizer, report=report)
    for entry, item in zip(RECORDS, items):
        prompt = tokenizer(format_prompt(entry), add_special_tokens=False).input_ids
        response = tokenizer(entry["output"], add_special_tokens=False).input_ids
        assert item == {"input_ids": prompt + response + [tokenizer.eos_token_id], "prompt_length": len(prompt)}
    shortest = min(len(item["input_ids"]) for item in items)
    assert len(tokenize_records(RECORDS[:2], tokenizer, max_length=shortest, report=report, split="x")) == 1
    assert report.as_dict()["skipped_too_long_x"] == 1


def test_collator_masks_token_by_token():
    pad = 0  # <|endoftext|> is also the padding token, as in the book
    batch = [{"input_ids": [5, 6, 7, 8, 9, 0], "prompt_length": 3},  # prompt 5 6 7, response 8 9, eos 0
             {"input_ids": [5, 6, 10, 0], "prompt_length": 2}]
    out = InstructionCollator(pad)(batch)
    assert out["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0], [5, 6, 10, 0, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    # the example's own end-of-text stays a label (the book's first padding token); the padding after it does not
    assert out["labels"].tolist() == [[5, 6, 7, 8, 9, 0], [5, 6, 10, 0, -100, -100]]
    masked = InstructionCollator(pad, mask_prompt=True)(batch)
    assert masked["labels"].tolist() == [[-100, -100, -100, 8, 9, 0], [-100, -100, 10, 0, -100, -100]]
    assert torch.equal(masked["input_ids"], out["input_ids"])
    capped = InstructionCollator(pad, allowed_max_length=4)(batch)
    assert capped["input_ids"].tolist() == [[5, 6, 7, 8], [5, 6, 10, 0]]
    assert capped["labels"].tolist() == [[5, 6, 7, 8], [5, 6, 10, 0]]
    override = InstructionCollator(pad)(InstructionDataset(batch, mask_prompt=True).items)  # eval: responses only
    assert override["labels"].tolist() == masked["labels"].tolist()


def test_collator_loss_equals_the_books_shifted_targets():
    """Our labels through the model's internal shift give the book's (inputs, targets) loss."""
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(GPTScratchConfig.from_preset("tiny", vocab_size=32, n_positions=16, drop_rate=0.0))
    batch = [{"input_ids": [5, 6, 7, 8, 9, 0], "prompt_length": 3}, {"input_ids": [5, 6, 10, 0], "prompt_length": 2}]
    ours = model(**InstructionCollator(0)(batch)).loss
    # the book: item + [pad] padded, inputs = [:-1], targets = [1:], padding after the first pad -> -100
    inputs = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 10, 0, 0]])
    targets = torch.tensor([[6, 7, 8, 9, 0], [6, 10, 0, -100, -100]])
    logits = model(inputs).logits
    book = torch.nn.functional.cross_entropy(logits[0:1].flatten(0, 1), targets[0:1].flatten())
    book_all = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert torch.allclose(ours, book_all, atol=1e-5) and not torch.allclose(ours, book)


# ------------------------------------------------------------------------------------------------ generation
def test_batched_generation_matches_one_by_one(model_dir, tokenizer):
    from hfgpt.training.finetune_instructions import generate_responses

    model = GPTScratchForCausalLM.from_pretrained(model_dir).eval()
    tokenizer.padding_side = "right"
    entries = RECORDS[:3]
    batched, skipped = generate_responses(model, tokenizer, entries, max_new_tokens=6, batch_size=3)
    single = [generate_responses(model, tokenizer, [e], max_new_tokens=6)[0][0] for e in entries]
    assert skipped == 0 and batched == single
    assert [r["instruction"] for r in batched] == [e["instruction"] for e in entries]
    assert all(isinstance(r["model_response"], str) for r in batched)
    assert tokenizer.padding_side == "right"  # restored after left-padding


# ---------------------------------------------------------------------------------------------------- training
def _args(tmp_path, model_dir, data_file, *extra):
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_instructions import (
        InstructionDataArguments,
        InstructionModelArguments,
        InstructionTrainingArguments,
        JudgeArguments,
    )

    parser = HfArgumentParser((InstructionModelArguments, InstructionDataArguments, JudgeArguments,
                               InstructionTrainingArguments))
    return parser.parse_args_into_dataclasses(args=[
        "--model_name_or_path", model_dir, "--data_file", data_file, "--output_dir", str(tmp_path / "out"),
        "--max_steps", "4", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4",
        "--max_new_tokens", "5", "--eval_strategy", "no", "--logging_steps", "2", *extra])


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_finetune_a_few_steps_and_write_responses(tmp_path, model_dir, data_file, mode):
    from hfgpt.training.finetune_instructions import RESPONSES_FILE, finetune_instructions

    extra = ["--use_lora", "--lora_r", "4"] if mode == "lora" else ["--mask_prompt"]
    metrics = finetune_instructions(*_args(tmp_path, model_dir, data_file, *extra))
    out = tmp_path / "out"
    assert (metrics["train_examples"], metrics["validation_examples"], metrics["test_examples"]) == (20, 2, 2)
    assert metrics["train_global_step"] == 4 if "train_global_step" in metrics else True
    for key in ("before_response_loss", "after_response_loss", "before_full_loss", "after_full_loss"):
        assert math.isfinite(metrics[key])
    assert metrics["after_response_loss"] < metrics["before_response_loss"]
    assert metrics["after_response_perplexity"] == pytest.approx(math.exp(metrics["after_response_loss"]))
    responses = json.loads((out / RESPONSES_FILE).read_text())
    assert [r["instruction"] for r in responses] == [r["instruction"] for r in (RECORDS * 2)[20:22]]
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

    lengths = sorted(len(i["input_ids"]) for i in tokenize_records(RECORDS, tokenizer))
    metrics = finetune_instructions(*_args(tmp_path, model_dir, data_file, "--max_length", str(lengths[6]),
                                           "--max_steps", "1"))
    assert metrics["skipped_too_long_train"] > 0 and metrics["train_examples"] == 20 - metrics["skipped_too_long_train"]
    with pytest.raises(ValueError, match="longer than the model's context"):
        finetune_instructions(*_args(tmp_path, model_dir, data_file, "--max_length", "100000"))
    with pytest.raises(ValueError, match="Every train example is longer than"):
        finetune_instructions(*_args(tmp_path, model_dir, data_file, "--max_length", str(lengths[0] - 1)))


def _recipe():
    spec = importlib.util.spec_from_file_location("finetune_recipe",
                                                  os.path.join(REPO_ROOT, "recipes", "finetune_instructions.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_bad_input_is_one_line_and_exit_2(tmp_path, model_dir, data_file, capsys):
    recipe = _recipe()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([RECORDS[0], {"instruction": "no output here"}]))
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
