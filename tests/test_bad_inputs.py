"""The bad-input table (issue 13): every entry point refuses corrupt or mismatched input with one clear line.

Each row runs one entry point in-process on tiny inputs made once per module: the three recipes through
``run_recipe`` (exit status 2 and exactly one ``<recipe>.py: error:`` line, no traceback), ``hfgpt convert`` and
``hfgpt push`` through ``hfgpt.cli.main`` (status 2, one line), and the public Python functions (the exception type).
Every row checks that the message names the offending value (a path, a flag value, a number) and that nothing was
written: the output folder does not exist afterwards, or holds exactly what it held before, and the inputs are
unchanged. The demo's API has its own table in ``tests/test_demo.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

import pytest
import torch
from conftest import INSTRUCTION_RECORDS, alpaca_tokenizer, pydoc_topics, save_tiny_checkpoint, sms_messages

from hfgpt import GPTScratchConfig, GPTScratchForSequenceClassification
from hfgpt.cli import main as hfgpt_cli
from hfgpt.errors import HfgptInputError
from hfgpt.training.recipe_cli import run_recipe


def _book_state_dict(**sizes) -> dict:
    """The book's GPTModel state dict (vocab 100, context 32, 2 blocks, 64 wide), from our model's exact inverse."""
    from hfgpt import GPTScratchForCausalLM
    from hfgpt.convert import to_book_state_dict

    config = dict(vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=4, tie_word_embeddings=False)
    return to_book_state_dict(GPTScratchForCausalLM(GPTScratchConfig(**{**config, **sizes})))


def _truncate(path) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Every input of the table, by name (paths as strings): good ones and the broken variants."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from hfgpt.tokenization import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("bad-inputs")
    p = {"root": str(root)}
    tokenizer = alpaca_tokenizer()  # 600 tokens
    p["good"] = save_tiny_checkpoint(root / "good", tokenizer, n_positions=256)[0]
    for name in ("cut", "noweights"):
        shutil.copytree(p["good"], root / name)
        p[name] = str(root / name)
    _truncate(root / "cut" / "model.safetensors")
    os.remove(root / "noweights" / "model.safetensors")
    big = train_bpe_tokenizer(pydoc_topics(30), vocab_size=900)
    big.save_pretrained(root / "bigtok")
    p["bigtok"], p["big_size"] = str(root / "bigtok"), len(big)
    (root / "unknown").mkdir()
    (root / "unknown" / "config.json").write_text(json.dumps({"model_type": "llamazilla", "hidden_size": 8}))
    p["unknown"] = str(root / "unknown")
    (root / "badjson").mkdir()
    (root / "badjson" / "config.json").write_text('{"model_type": "gpt_scratch",\n "n_layer": 2,,\n}')
    p["badjson"] = str(root / "badjson")
    (root / "empty").mkdir()
    p["empty"] = str(root / "empty")
    classifier = GPTScratchForSequenceClassification.from_pretrained(p["good"], num_labels=2)
    classifier.save_pretrained(root / "classifier")
    p["classifier"] = str(root / "classifier")

    # checkpoints of another size (n_embd 32) for --resume_from_checkpoint, and a truncated one of the right size
    for name, sizes in (("other-size", dict(n_embd=32)), ("cut-checkpoint", {})):
        folder = root / name / "checkpoint-2"
        save_tiny_checkpoint(folder, tokenizer, n_positions=128, **sizes)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
        p[name] = str(folder)
    _truncate(root / "cut-checkpoint" / "checkpoint-2" / "model.safetensors")

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    gpt2.save_pretrained(root / "gpt2")
    shutil.copytree(root / "gpt2", root / "gpt2-cut")
    _truncate(root / "gpt2-cut" / "model.safetensors")
    GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                               activation_function="relu")).save_pretrained(root / "gpt2-relu")
    p.update(gpt2=str(root / "gpt2"), gpt2_cut=str(root / "gpt2-cut"), gpt2_relu=str(root / "gpt2-relu"))
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    p["adapter"] = str(root / "adapter")

    # the book's .pth files: not a state dict, in five ways
    book = _book_state_dict()
    files = {
        "pth_list": [1, 2, 3],
        "pth_tensor": torch.zeros(3),
        "pth_strings": {"tok_emb.weight": "not a tensor", "pos_emb.weight": torch.zeros(2)},
        "pth_shapes": {**book, "pos_emb.weight": torch.zeros(32, 48)},
        "pth_gpt2": gpt2.state_dict(),
        "pth_cut": book,
    }
    for name, obj in files.items():
        torch.save(obj, root / f"{name}.pth")
        p[name] = str(root / f"{name}.pth")
    _truncate(p["pth_cut"])
    (root / "text.pth").write_text("this is not a torch file\n")
    p["pth_text"] = str(root / "text.pth")

    # text, SMS and instruction files
    writes = {
        "corpus.txt": "\n\n".join(pydoc_topics(10)),
        "sms": "".join(f"{label}\t{text}\n" for label, text in sms_messages()),
        "sms_notab": "ham\tfine\nspam this line has no tab\n",
        "sms_ham_only": "".join(f"ham\tmessage number {i}\n" for i in range(30)),
        "data.json": json.dumps(INSTRUCTION_RECORDS * 2),
        "records_object.json": json.dumps({"data": INSTRUCTION_RECORDS}, indent=2),
        "records_strings.json": json.dumps(["Translate to French: Thank you", "Merci"]),
        "records_no_instruction.json": json.dumps([*INSTRUCTION_RECORDS, {"input": "", "output": "an answer"}]),
        "records_invalid.json": '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]',
        "records_bad_line.jsonl": '{"instruction": "a", "output": "b"}\n{"instruction": "c", output: "d"}\n',
        "records_number.json": json.dumps([{"instruction": "Add 2 and 3.", "input": "", "output": 5}]),
        "records_empty_outputs.json": json.dumps([{"instruction": "a", "output": " "}, {"instruction": "b", "output": ""}]),
        "text_invalid.json": '[{"text": "a"},\n{"text": }]',
        "text_bad_line.jsonl": '{"text": "one"}\n{"text": "two"\n',
    }
    for name, text in writes.items():
        (root / name).write_text(text)
        p[name.replace(".", "_")] = str(root / name)
    return p


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class Case:
    id: str
    entry: str  # pretrain, finetune_spam, finetune_instructions, convert, push, or python
    argv: list = field(default_factory=list)  # "{name}" is replaced by inputs[name], "{out}" by the output folder
    message: tuple = ()  # substrings of the one error line (formatted the same way)
    error: type = HfgptInputError  # python rows: the exception type
    call: object = None  # python rows: call(inputs) raises
    prefill: str | None = None  # an input folder copied into {out} first (its listing must not change)


PRETRAIN = ["--train_file", "{corpus_txt}", "--preset", "tiny", "--max_length", "32", "--max_steps", "1"]
SPAM = ["--data_file", "{sms}", "--max_steps", "1"]
INSTRUCTIONS = ["--data_file", "{data_json}", "--max_steps", "1"]


def _python(name, call, message, error=HfgptInputError):
    return Case(name, "python", call=call, message=message, error=error)


def _book(name):
    from hfgpt.convert import from_book_checkpoint

    return lambda p: from_book_checkpoint(p[name] if isinstance(name, str) else name, config={"n_heads": 4})


def _from_gpt2(name):
    from hfgpt.convert import from_hf_gpt2

    return lambda p: from_hf_gpt2(p[name])


def _base_model(name):
    from hfgpt.training.common import load_base_model

    return lambda p: load_base_model(p[name])


def _text_files(name):
    from hfgpt.data import load_text_datasets

    return lambda p: load_text_datasets(train_files=[p[name]])


def _records(name):
    from hfgpt.data.instructions import load_instruction_records

    return lambda p: load_instruction_records(p[name])


def _bpe(texts=None, **kwargs):
    from hfgpt.tokenization import train_bpe_tokenizer

    return lambda p: train_bpe_tokenizer(pydoc_topics(2) if texts is None else texts, **kwargs)


TRUNCATED = ("Cannot read the weights in", "truncated or corrupt")
CASES = [
    # ---- recipes/pretrain.py
    Case("pretrain-truncated-safetensors", "pretrain", PRETRAIN + ["--model_name_or_path", "{cut}"],
         (*TRUNCATED, "{cut}/model.safetensors")),
    Case("pretrain-unknown-model-type", "pretrain", PRETRAIN + ["--model_name_or_path", "{unknown}"],
         ("{unknown}/config.json", "model_type 'llamazilla'", "(--model_name_or_path)")),
    Case("pretrain-config-json-invalid", "pretrain", PRETRAIN + ["--model_name_or_path", "{badjson}"],
         ("{badjson}/config.json", "line 2 column 15")),
    Case("pretrain-checkpoint-without-weights", "pretrain", PRETRAIN + ["--model_name_or_path", "{noweights}"],
         ("{noweights}", "holds no weights")),
    Case("pretrain-classifier-as-base", "pretrain", PRETRAIN + ["--model_name_or_path", "{classifier}"],
         ("{classifier}", "GPTScratchForSequenceClassification, not a causal language model")),
    Case("pretrain-resume-checkpoint-of-another-size", "pretrain",
         PRETRAIN + ["--resume_from_checkpoint", "{other-size}"],
         ("{other-size}", "another size", "n_embd=32 (this run: 64)")),
    Case("pretrain-resume-last-picks-another-size", "pretrain", PRETRAIN + ["--resume_from_checkpoint", "last"],
         ("{out}/checkpoint-2", "n_embd=32 (this run: 64)"), prefill="other-size"),
    Case("pretrain-resume-truncated-checkpoint", "pretrain",
         PRETRAIN + ["--resume_from_checkpoint", "{cut-checkpoint}", "--config_overrides", "n_positions=128"],
         (*TRUNCATED, "{cut-checkpoint}/model.safetensors")),
    Case("pretrain-resume-from-a-file", "pretrain", PRETRAIN + ["--resume_from_checkpoint", "{corpus_txt}"],
         ("no checkpoint folder at", "{corpus_txt}")),
    Case("pretrain-tokenizer-larger-than-model", "pretrain",
         PRETRAIN + ["--model_name_or_path", "{good}", "--tokenizer_name", "{bigtok}"],
         ("{bigtok}", "{big_size} tokens", "{good}", "only 600 (vocab_size)")),
    Case("pretrain-vocab-override-below-tokenizer", "pretrain",
         PRETRAIN + ["--tokenizer_name", "{good}", "--config_overrides", "vocab_size=300"],
         ("{good}", "600 tokens", "only 300 (vocab_size)")),
    Case("pretrain-config-overrides-with-checkpoint", "pretrain",
         PRETRAIN + ["--model_name_or_path", "{good}", "--config_overrides", "n_layer=8"],
         ("--config_overrides 'n_layer=8'", "{good}", "keeps its own sizes")),
    Case("pretrain-heads-do-not-divide-width", "pretrain", PRETRAIN + ["--config_overrides", "n_head=3"],
         ("n_embd (64) must be divisible by n_head (3)",)),
    Case("pretrain-train-file-invalid-json", "pretrain", PRETRAIN + ["--train_file", "{text_invalid_json}"],
         ("{text_invalid_json}", "cannot read", "as json")),
    Case("pretrain-train-file-jsonl-broken-line", "pretrain", PRETRAIN + ["--train_file", "{text_bad_line_jsonl}"],
         ("{text_bad_line_jsonl}", "cannot read")),
    Case("pretrain-tokenizer-folder-without-files", "pretrain", PRETRAIN + ["--tokenizer_name", "{empty}"],
         ("{empty}", "has no tokenizer files")),
    Case("pretrain-max-length-1", "pretrain", PRETRAIN + ["--max_length", "1"],
         ("--max_length must be at least 2 tokens, got 1",)),
    Case("pretrain-validation-fraction-1", "pretrain", PRETRAIN + ["--validation_fraction", "1.0"],
         ("validation_fraction must lie between 0 and 1, got 1.0",)),
    Case("pretrain-streaming-without-max-steps", "pretrain", PRETRAIN + ["--streaming", "--max_steps", "-1"],
         ("--streaming needs --max_steps",)),
    # ---- recipes/finetune_spam.py
    Case("spam-truncated-safetensors", "finetune_spam", SPAM + ["--model_name_or_path", "{cut}"],
         (*TRUNCATED, "{cut}/model.safetensors")),
    Case("spam-unknown-model-type", "finetune_spam", SPAM + ["--model_name_or_path", "{unknown}"],
         ("{unknown}/config.json", "'llamazilla'")),
    Case("spam-checkpoint-without-weights", "finetune_spam", SPAM + ["--model_name_or_path", "{noweights}"],
         ("{noweights}", "holds no weights")),
    Case("spam-tokenizer-larger-than-model", "finetune_spam",
         SPAM + ["--model_name_or_path", "{good}", "--tokenizer_name", "{bigtok}"],
         ("{bigtok}", "{big_size} tokens", "only 600 (vocab_size)")),
    Case("spam-unsupported-gpt2-variant", "finetune_spam", SPAM + ["--model_name_or_path", "{gpt2_relu}"],
         ("activation_function='relu'",)),
    Case("spam-no-model", "finetune_spam", SPAM, ("--model_name_or_path is required",)),
    Case("spam-max-length-0", "finetune_spam", SPAM + ["--model_name_or_path", "{good}", "--max_length", "0"],
         ("--max_length must be a positive number of tokens, got 0",)),
    Case("spam-target-fpr-out-of-range", "finetune_spam",
         SPAM + ["--model_name_or_path", "{good}", "--target_fpr", "1.5"], ("--target_fpr must be between 0 and 1", "1.5")),
    Case("spam-natural-test-fraction-0", "finetune_spam",
         SPAM + ["--model_name_or_path", "{good}", "--natural_test_fraction", "0"],
         ("--natural_test_fraction must be between 0 and 1", "got 0.0")),
    Case("spam-line-without-tab", "finetune_spam", SPAM + ["--model_name_or_path", "{good}", "--data_file",
                                                           "{sms_notab}"], ("{sms_notab}:2", "'spam this line")),
    Case("spam-one-class-only", "finetune_spam", SPAM + ["--model_name_or_path", "{good}", "--data_file",
                                                         "{sms_ham_only}"], ("Cannot balance", "'spam': 0")),
    Case("spam-no-room-for-a-test-split", "finetune_spam",
         SPAM + ["--model_name_or_path", "{good}", "--train_fraction", "0.9", "--validation_fraction", "0.1"],
         ("train 0.9, validation 0.1",)),
    Case("spam-data-file-and-dataset-name", "finetune_spam",
         SPAM + ["--model_name_or_path", "{good}", "--dataset_name", "ucirvine/sms_spam"], ("not both",)),
    # ---- recipes/finetune_instructions.py
    Case("instructions-truncated-safetensors", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{cut}"], (*TRUNCATED, "{cut}/model.safetensors")),
    Case("instructions-unknown-model-type", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{unknown}"], ("{unknown}/config.json", "'llamazilla'")),
    Case("instructions-tokenizer-larger-than-model", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--tokenizer_name", "{bigtok}"],
         ("{bigtok}", "{big_size} tokens", "{good}", "only 600 (vocab_size)")),
    Case("instructions-records-object-at-top-level", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_object_json}"],
         ("{records_object_json}", "one JSON object with the keys ['data']", "expected a JSON array")),
    Case("instructions-records-list-of-strings", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_strings_json}"],
         ("Record 0", "{records_strings_json}", "is a str, not an object")),
    Case("instructions-records-missing-instruction", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_no_instruction_json}"],
         ("Record 12 has no 'instruction' field", "{records_no_instruction_json}")),
    Case("instructions-records-invalid-json", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_invalid_json}"],
         ("{records_invalid_json}", "is not valid JSON", "line 3")),
    Case("instructions-records-jsonl-broken-line", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_bad_line_jsonl}"],
         ("{records_bad_line_jsonl}", "line 2 is not valid JSON")),
    Case("instructions-records-output-not-a-string", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_number_json}"],
         ("Record 0: 'output' must be a string, got int", "{records_number_json}")),
    Case("instructions-records-all-empty", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--data_file", "{records_empty_outputs_json}"],
         ("None of the 2 instruction records", "{records_empty_outputs_json}")),
    Case("instructions-mode-typo", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--mode", "adapter"], ("got 'adapter'",)),
    Case("instructions-max-length-1", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--max_length", "1"],
         ("--max_length must be at least 2 tokens, got 1",)),
    Case("instructions-max-new-tokens-0", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--max_new_tokens", "0"], ("--max_new_tokens",)),
    Case("instructions-fractions-leave-no-validation", "finetune_instructions",
         INSTRUCTIONS + ["--model_name_or_path", "{good}", "--train_fraction", "0.95", "--test_fraction", "0.1"],
         ("train (0.95)", "test (0.1)")),
    # ---- hfgpt convert
    Case("convert-to-gpt2-truncated-safetensors", "convert", ["--to", "gpt2", "{cut}", "{out}"],
         (*TRUNCATED, "{cut}/model.safetensors")),
    Case("convert-to-gpt2-unknown-model-type", "convert", ["--to", "gpt2", "{unknown}", "{out}"],
         ("{unknown}/config.json", "'llamazilla'")),
    Case("convert-from-gpt2-unknown-model-type", "convert", ["--from", "gpt2", "{unknown}", "{out}"],
         ("{unknown}/config.json", "'llamazilla'")),
    Case("convert-from-gpt2-truncated-safetensors", "convert", ["--from", "gpt2", "{gpt2_cut}", "{out}"],
         (*TRUNCATED, "{gpt2_cut}/model.safetensors")),
    Case("convert-from-gpt2-config-json-invalid", "convert", ["--from", "gpt2", "{badjson}", "{out}"],
         ("{badjson}/config.json", "line 2 column 15")),
    Case("convert-from-gpt2-given-an-hfgpt-folder", "convert", ["--from", "gpt2", "{good}", "{out}"],
         ("{good}", "holds a 'gpt_scratch' model, not a GPT-2")),
    Case("convert-from-book-a-list", "convert", ["--from", "book", "{pth_list}", "{out}", "--n-head", "4"],
         ("{pth_list}", "holds a list")),
    Case("convert-from-book-a-tensor", "convert", ["--from", "book", "{pth_tensor}", "{out}", "--n-head", "4"],
         ("{pth_tensor}", "holds a Tensor")),
    Case("convert-from-book-values-not-tensors", "convert",
         ["--from", "book", "{pth_strings}", "{out}", "--n-head", "4"],
         ("{pth_strings}", "'tok_emb.weight' is a str")),
    Case("convert-from-book-not-a-torch-file", "convert", ["--from", "book", "{pth_text}", "{out}", "--n-head", "4"],
         ("{pth_text}", "not a PyTorch checkpoint")),
    Case("convert-from-book-truncated-pth", "convert", ["--from", "book", "{pth_cut}", "{out}", "--n-head", "4"],
         ("{pth_cut}", "not a PyTorch checkpoint")),
    Case("convert-from-book-wrong-shapes", "convert", ["--from", "book", "{pth_shapes}", "{out}", "--n-head", "4"],
         ("{pth_shapes}", "pos_emb.weight (32, 48) (expected (32, 64))")),
    Case("convert-from-book-a-gpt2-state-dict", "convert", ["--from", "book", "{pth_gpt2}", "{out}"],
         ("{pth_gpt2}", "no tok_emb.weight", "transformer.h.0")),
    Case("convert-pad-vocab-multiple-0", "convert", ["--from", "gpt2", "{gpt2}", "{out}", "--pad-vocab-multiple", "0"],
         ("--pad-vocab-multiple must be a positive integer, got 0",)),
    # ---- hfgpt push
    Case("push-truncated-safetensors", "push", ["{cut}", "me/model", "--dry-run", "--out", "{out}"],
         (*TRUNCATED, "{cut}/model.safetensors")),
    Case("push-unknown-model-type", "push", ["{unknown}", "me/model", "--dry-run", "--out", "{out}"],
         ("{unknown}/config.json", "'llamazilla'")),
    Case("push-checkpoint-without-weights", "push", ["{noweights}", "me/model", "--dry-run", "--out", "{out}"],
         ("{noweights}", "holds no weights")),
    Case("push-a-gpt2-folder", "push", ["{gpt2}", "me/model", "--dry-run", "--out", "{out}"],
         ("{gpt2}", "holds a 'gpt2' model", "hfgpt convert --from gpt2")),
    Case("push-adapter-without-base-model", "push", ["{adapter}", "me/adapter", "--dry-run", "--out", "{out}"],
         ("{adapter}", "names no base_model_name_or_path")),
    # ---- the public Python functions
    _python("from_book_checkpoint-a-tensor", _book(torch.zeros(3)), ("the state dict holds a Tensor",)),
    _python("from_book_checkpoint-values-not-tensors", _book("pth_strings"), ("{pth_strings}", "is a str")),
    _python("from_book_checkpoint-wrong-shapes", _book("pth_shapes"), ("{pth_shapes}", "pos_emb.weight (32, 48)")),
    _python("from_book_checkpoint-truncated-pth", _book("pth_cut"), ("{pth_cut}", "not a PyTorch checkpoint")),
    _python("from_hf_gpt2-unknown-model-type", _from_gpt2("unknown"), ("{unknown}/config.json", "'llamazilla'")),
    _python("from_hf_gpt2-config-json-invalid", _from_gpt2("badjson"), ("{badjson}/config.json",)),
    _python("from_hf_gpt2-an-hfgpt-folder", _from_gpt2("good"), ("{good}", "'gpt_scratch'")),
    _python("load_base_model-truncated-safetensors", _base_model("cut"), (*TRUNCATED, "{cut}/model.safetensors")),
    _python("load_base_model-unknown-model-type", _base_model("unknown"), ("{unknown}/config.json", "'llamazilla'")),
    _python("load_base_model-without-weights", _base_model("noweights"), ("{noweights}", "holds no weights")),
    _python("load_text_datasets-invalid-json", _text_files("text_invalid_json"), ("{text_invalid_json}", "as json")),
    _python("load_text_datasets-jsonl-broken-line", _text_files("text_bad_line_jsonl"), ("{text_bad_line_jsonl}",)),
    _python("load_instruction_records-object-at-top-level", _records("records_object_json"),
            ("{records_object_json}", "['data']")),
    _python("train_bpe_tokenizer-no-special-tokens", _bpe(special_tokens=()), ("special_tokens must name at least",)),
    _python("train_bpe_tokenizer-only-empty-texts", _bpe(texts=["", ""], vocab_size=300), ("no text to train",)),
    _python("GPTScratchConfig-from_preset-typo-field", lambda p: GPTScratchConfig.from_preset("tiny", n_layers=2),
            ("Preset 'tiny'", "unknown GPTScratchConfig fields: ['n_layers']"), ValueError),
    _python("GPTScratchConfig-pad-vocab-multiple-0", lambda p: GPTScratchConfig(pad_vocab_size_multiple=0),
            ("pad_vocab_size_multiple", "got 0"), ValueError),
    _python("GPTScratchConfig-pad-token-outside-vocab",
            lambda p: GPTScratchConfig.from_preset("mini", vocab_size=300, pad_token_id=300),
            ("pad_token_id (300)", "vocab_size=300"), ValueError),
]


def _recipe(entry):
    import importlib

    module = importlib.import_module(f"hfgpt.training.{entry}")
    return module.ARGUMENT_TYPES, getattr(module, entry)


def _listing(folder) -> dict:
    """Every file under ``folder`` with its size and modification time (a rewrite changes the time)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    if case.prefill:
        shutil.copytree(os.path.dirname(inputs[case.prefill]), out)
    values = {**inputs, "out": str(out)}
    argv = [arg.format(**values) for arg in case.argv]
    expected = [part.format(**values) for part in case.message]
    before, inputs_before = _listing(out) if out.exists() else None, _listing(inputs["root"])
    capsys.readouterr()

    if case.entry == "python":
        with pytest.raises(case.error) as raised:
            case.call(inputs)
        message = str(raised.value)
    elif case.entry in ("convert", "push"):
        assert hfgpt_cli([case.entry, *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"hfgpt {case.entry}: error: "), err
        message = err
    else:
        with pytest.raises(SystemExit) as exited:
            run_recipe(*_recipe(case.entry), argv=[*argv, "--output_dir", str(out)], prog=f"{case.entry}.py")
        assert exited.value.code == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith(f"{case.entry}.py: error: ")]
        assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
        message = lines[0]

    assert "\n" not in message.strip() and all(part in message for part in expected), (expected, message)
    assert (_listing(out) if out.exists() else None) == before  # nothing written, trained or saved
    assert _listing(inputs["root"]) == inputs_before  # and the inputs untouched


def test_the_table_covers_every_entry_point_with_at_least_40_cases():
    entries = {case.entry for case in CASES}
    assert entries == {"pretrain", "finetune_spam", "finetune_instructions", "convert", "push", "python"}
    assert len({case.id for case in CASES}) == len(CASES) >= 40
