"""Instruction data (chapter 7): the Alpaca chat template, the book's split, reading local records, bad records,
tokenizing, and the masking collator."""

import json

import pytest
import torch
from conftest import INSTRUCTION_RECORDS, alpaca_corpus, alpaca_tokenizer, book_prompt

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
    load_instruction_records,
    split_records,
    tokenize_records,
)
from hfgpt.errors import HfgptInputError
from hfgpt.tokenization import ENDOFTEXT, train_bpe_tokenizer

@pytest.fixture(scope="module")
def tokenizer():
    return alpaca_tokenizer()


# ------------------------------------------------------------------------------------------------------ template
def test_chat_template_renders_the_books_format(tokenizer):
    for entry in (INSTRUCTION_RECORDS[0], INSTRUCTION_RECORDS[1]):  # with and without an input
        text = tokenizer.apply_chat_template(entry_to_messages(entry), tokenize=False)
        book = format_input(entry) + f"\n\n### Response:\n{entry['output']}" + ENDOFTEXT
        assert text == book
        prompt = tokenizer.apply_chat_template(entry_to_messages(entry, with_response=False), tokenize=False,
                                               add_generation_prompt=True)
        assert prompt == book_prompt(entry)
    assert "### Input:" not in format_input(INSTRUCTION_RECORDS[1])
    assert format_input(INSTRUCTION_RECORDS[0]).startswith("Below is an instruction that describes a task. Write a response "
                                               "that appropriately completes the request.\n\n### Instruction:\n")
    system = [{"role": "system", "content": "Answer briefly."}, *entry_to_messages(INSTRUCTION_RECORDS[1], with_response=False)]
    assert tokenizer.apply_chat_template(system, tokenize=False, add_generation_prompt=True) == \
        "Answer briefly.\n\n### Instruction:\nWhat is the capital of France?\n\n### Response:\n"
    with pytest.raises(Exception, match="not tool"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_chat_template_survives_save_and_assistant_mask(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.chat_template == ALPACA_CHAT_TEMPLATE
    out = reloaded.apply_chat_template(entry_to_messages(INSTRUCTION_RECORDS[0]), return_dict=True,
                                       return_assistant_tokens_mask=True)
    answer = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert reloaded.decode(answer) == INSTRUCTION_RECORDS[0]["output"] + ENDOFTEXT


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
    with pytest.raises(HfgptInputError, match="Fractions"):
        split_records(records, train_fraction=0.95, test_fraction=0.1)


def test_local_json_and_jsonl(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps(INSTRUCTION_RECORDS))
    lines = tmp_path / "a.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in INSTRUCTION_RECORDS) + "\n")
    assert load_instruction_records(str(array)) == load_instruction_records(str(lines)) == INSTRUCTION_RECORDS


def test_bad_records(tmp_path):
    with pytest.raises(HfgptInputError, match=r"Record 1 has no 'output' field"):
        clean_records([INSTRUCTION_RECORDS[0], {"instruction": "x", "input": ""}])
    with pytest.raises(HfgptInputError, match=r"Record 0: 'output' must be a string"):
        clean_records([{"instruction": "x", "output": 3}])
    with pytest.raises(HfgptInputError, match="Record 0 is a str"):
        clean_records(["just text"])
    kept, report = clean_records([*INSTRUCTION_RECORDS[:3], {"instruction": "x", "output": "  "},
                                  {"instruction": "", "output": "y"}, {"instruction": "z", "output": "w"}])
    assert len(kept) == 4 and kept[-1] == {"instruction": "z", "input": "", "output": "w"}  # input defaults to ""
    assert (report.total, report.kept, report.empty_output, report.empty_instruction) == (6, 4, 1, 1)
    with pytest.raises(HfgptInputError, match="None of the 1"):
        clean_records([{"instruction": "x", "output": ""}])
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"instruction\": ")
    with pytest.raises(HfgptInputError, match="not valid JSON"):
        load_instruction_records(str(bad))
    with pytest.raises(FileNotFoundError):
        load_instruction_records(str(tmp_path / "missing.json"))
    bad.write_text('{"instruction": "x", "output": "y"}\nnot json\n')
    with pytest.raises(HfgptInputError, match="line 2 is not valid JSON"):
        load_instruction_records(str(bad))
    bad.write_text("\n  \n")
    with pytest.raises(HfgptInputError, match="is empty"):
        load_instruction_records(str(bad))
    with pytest.raises(HfgptInputError, match="must be a list of records, got dict"):
        clean_records({"instruction": "x", "output": "y"})
    with pytest.raises(HfgptInputError, match="exactly one of --data_file"):
        load_instruction_records()
    records = [dict(INSTRUCTION_RECORDS[0], input=None)]
    assert clean_records(records)[0][0]["input"] == "" and records[0]["input"] is None  # the argument is not changed


# ------------------------------------------------------------------------------------------- tokenize + collate
def test_tokenize_records_and_skip_too_long(tokenizer):
    report = RecordReport()
    items = tokenize_records(INSTRUCTION_RECORDS[:2], tokenizer, report=report)
    for entry, item in zip(INSTRUCTION_RECORDS, items):
        prompt = tokenizer(book_prompt(entry), add_special_tokens=False).input_ids
        response = tokenizer(entry["output"], add_special_tokens=False).input_ids
        assert item == {"input_ids": prompt + response + [tokenizer.eos_token_id], "prompt_length": len(prompt)}
    shortest = min(len(item["input_ids"]) for item in items)
    assert len(tokenize_records(INSTRUCTION_RECORDS[:2], tokenizer, max_length=shortest, report=report, split="x")) == 1
    assert report.as_dict()["skipped_too_long_x"] == 1


def test_tokenize_records_leaves_a_tokenizer_without_template_alone(tokenizer):
    plain = train_bpe_tokenizer(alpaca_corpus(), vocab_size=600, model_max_length=256)
    assert plain.chat_template is None
    assert tokenize_records(INSTRUCTION_RECORDS[:3], plain) == tokenize_records(INSTRUCTION_RECORDS[:3], tokenizer)  # the Alpaca template
    assert plain.chat_template is None


def test_add_chat_template_needs_an_eos_token(tokenizer):
    from transformers import PreTrainedTokenizerFast

    no_eos = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    with pytest.raises(HfgptInputError, match="has no eos token"):
        add_chat_template(no_eos)
    assert no_eos.chat_template is None


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
