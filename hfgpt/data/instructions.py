"""Instruction data (the book's chapter 7): Alpaca records, the book's split, its prompt, and its collator.

The book's prompt, ``format_input(entry) + "\n\n### Response:\n"``, is here the tokenizer's chat template
(:data:`ALPACA_CHAT_TEMPLATE`), so ``apply_chat_template`` and ``pipeline()`` give the training prompt. Prompt and
response are tokenized separately, so the prompt a user sends tokenizes to exactly the training prefix.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from ..errors import HfgptFileNotFoundError, HfgptInputError

logger = logging.getLogger("hfgpt.instructions")

INSTRUCTION_FIELDS = ("instruction", "input", "output")
PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
IGNORE_INDEX = -100

# Jinja: rendered by transformers' apply_chat_template (eos_token comes from the tokenizer's special tokens).
ALPACA_CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{- messages[0]['content'] -}}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{{- '" + PREAMBLE + "' -}}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- '\\n\\n### Instruction:\\n' + message['content'] -}}"
    "{%- if message.get('input') -%}{{- '\\n\\n### Input:\\n' + message['input'] -}}{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '\\n\\n### Response:\\n' -}}{% generation %}{{- message['content'] + eos_token -}}{% endgeneration %}"
    "{%- else -%}"
    "{{- raise_exception('The Alpaca template takes system, user and assistant messages, not ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '\\n\\n### Response:\\n' -}}{%- endif -%}"
)


def format_input(entry: Mapping) -> str:
    """The book's ``format_input``: preamble, ``### Instruction:`` and, when the input is not empty, ``### Input:``."""
    instruction_text = f"{PREAMBLE}\n\n### Instruction:\n{entry['instruction']}"
    input_text = f"\n\n### Input:\n{entry['input']}" if entry.get("input") else ""
    return instruction_text + input_text


def entry_to_messages(entry: Mapping, with_response: bool = True) -> list[dict]:
    """A record as chat messages: the user turn (instruction + ``input`` field), then the assistant's output."""
    user = {"role": "user", "content": entry["instruction"]}
    if entry.get("input"):
        user["input"] = entry["input"]
    assistant = [{"role": "assistant", "content": entry["output"]}] if with_response else []
    return [user, *assistant]


def add_chat_template(tokenizer):
    """Make the book's Alpaca prompt the tokenizer's chat template (in place); padding, when unset, is eos."""
    if tokenizer.eos_token is None:
        raise HfgptInputError(f"The tokenizer {tokenizer.name_or_path!r} has no eos token; the instruction format "
                              "ends each response with one (<|endoftext|>).")
    tokenizer.chat_template = ALPACA_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass
class RecordDataArguments:
    """Where the records come from and how they are split: the flags the instruction and preference recipes share."""

    data_file: str | None = field(default=None, metadata={"help": "A local JSON array or JSON Lines file of records."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id, e.g. tatsu-lab/alpaca."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    dataset_split: str = field(default="train", metadata={"help": "The Hub dataset's split to read."})
    split_seed: int | None = field(default=None, metadata={"help": "Shuffle with this seed before splitting; default: file order (the book)."})
    train_fraction: float = field(default=0.85, metadata={"help": "Training share (the book: 0.85)."})
    test_fraction: float = field(default=0.10, metadata={"help": "Test share (0.10); validation gets the rest (0.05)."})


@dataclass
class RecordReport:
    """What :func:`clean_records` and :func:`tokenize_records` dropped, to be reported to the user."""

    total: int = 0
    kept: int = 0
    empty_instruction: int = 0
    empty_output: int = 0
    too_long: dict = field(default_factory=dict)  # split name -> count

    def as_dict(self) -> dict:
        return {"records_total": self.total, "records_kept": self.kept,
                "skipped_empty_instruction": self.empty_instruction, "skipped_empty_output": self.empty_output,
                **{f"skipped_too_long_{split}": n for split, n in self.too_long.items()}}


def read_local_records(path: str) -> list:
    """A JSON array of records, or JSON Lines (one record per line)."""
    if not os.path.isfile(path):
        raise HfgptFileNotFoundError(f"No instruction data file at {path!r}.")
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise HfgptInputError(f"{path!r} is not valid JSON: {err}.") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSON Lines, or broken: read line by line below
    if isinstance(whole, dict) and set(INSTRUCTION_FIELDS) & set(whole):
        return [whole]  # one record (JSON Lines of one line, or pretty-printed)
    if isinstance(whole, dict):  # e.g. {"data": [...]}
        raise HfgptInputError(f"{path!r} holds one JSON object with the keys {sorted(whole)[:8]}, not records: "
                              'expected a JSON array [{"instruction": ..., "input": ..., "output": ...}, ...] or '
                              "JSON Lines (one such object per line).")
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise HfgptInputError(f"{path!r} line {number} is not valid JSON: {err}.") from None
    if not records:
        raise HfgptInputError(f"{path!r} is empty: expected a JSON array of records or JSON Lines.")
    return records


def load_instruction_records(data_file: str | None = None, dataset_name: str | None = None,
                             dataset_config_name: str | None = None, split: str = "train") -> list[dict]:
    """Instruction records, in file order, from a local JSON array / JSON Lines file or a Hub dataset id."""
    if (data_file is None) == (dataset_name is None):
        raise HfgptInputError("Give exactly one of --data_file (a local JSON/JSONL file) or --dataset_name (a Hub id).")
    if data_file is not None:
        return read_local_records(os.path.expanduser(data_file))
    from datasets import load_dataset

    dataset = load_dataset(dataset_name, dataset_config_name, split=split)
    missing = [name for name in ("instruction", "output") if name not in dataset.column_names]
    if missing:
        raise HfgptInputError(f"The dataset {dataset_name!r} lacks the column(s) {missing}; "
                              f"it has {dataset.column_names}.")
    columns = [name for name in INSTRUCTION_FIELDS if name in dataset.column_names]
    return dataset.select_columns(columns).to_list()


def clean_records(records: Sequence, report: RecordReport | None = None, source: str | None = None,
                  responses: Sequence[str] = ("output",)) -> tuple[list[dict], RecordReport]:
    """``(records, report)``: a record that is not an object, lacks a field or holds a non-string is an error
    (naming ``source``); a missing ``input`` is ``""``; an empty instruction or response is skipped and counted."""
    report = report or RecordReport()
    where = f" in {source!r}" if source else ""
    if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
        raise HfgptInputError(f"Instruction data{where} must be a list of records, got {type(records).__name__}.")
    report.total = len(records)
    kept = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise HfgptInputError(f"Record {index}{where} is a {type(record).__name__}, not an object with "
                                  f"'instruction', 'input' and 'output'.")
        needed = ("instruction", *responses)
        missing = [name for name in needed if record.get(name) is None]
        if missing:
            raise HfgptInputError(f"Record {index} has no {missing[0]!r} field{where} (its fields: {sorted(record)}); "
                                  f"each record needs {', '.join(map(repr, needed[:-1]))} and {needed[-1]!r} "
                                  "('input' may be empty).")
        entry = {"instruction": record["instruction"], "input": record.get("input") or "",
                 **{name: record[name] for name in responses}}
        for name, value in entry.items():
            if not isinstance(value, str):
                raise HfgptInputError(f"Record {index}: {name!r} must be a string, got {type(value).__name__}"
                                      f"{where}.")
        if not entry["instruction"].strip():
            report.empty_instruction += 1
        elif not all(entry[name].strip() for name in responses):
            report.empty_output += 1
        else:
            kept.append(entry)
    report.kept = len(kept)
    if report.empty_instruction or report.empty_output:
        logger.warning("Skipped %d record(s) with an empty instruction and %d with an empty output (of %d).",
                       report.empty_instruction, report.empty_output, report.total)
    if not kept:
        raise HfgptInputError(f"None of the {report.total} instruction records{where} is usable "
                              "(empty data or empty fields).")
    return kept, report


def split_records(records: Sequence, train_fraction: float = 0.85, test_fraction: float = 0.10,
                  seed: int | None = None) -> dict[str, list]:
    """The book's split in file order: 85% train, 10% test, the rest validation (``int()`` of each); ``seed``
    shuffles."""
    if not (0 < train_fraction < 1 and 0 <= test_fraction < 1 and train_fraction + test_fraction < 1):
        raise HfgptInputError(f"Fractions must satisfy 0 < train ({train_fraction}), 0 <= test ({test_fraction}) "
                              "and train + test < 1 (validation gets the rest).")
    records = list(records)
    if seed is not None:
        random.Random(seed).shuffle(records)
    train_end = int(len(records) * train_fraction)
    test_end = train_end + int(len(records) * test_fraction)
    splits = {"train": records[:train_end], "test": records[train_end:test_end], "validation": records[test_end:]}
    if not splits["train"] or not splits["validation"]:
        raise HfgptInputError(f"{len(records)} records give {len(splits['train'])} training and "
                              f"{len(splits['validation'])} validation examples; at least one of each is needed.")
    return splits


def tokenize_records(records: Sequence[Mapping], tokenizer, max_length: int | None = None,
                     report: RecordReport | None = None, split: str = "train") -> list[dict]:
    """``[{"input_ids": prompt + response + [eos], "prompt_length": n}, ...]`` through the chat template. Longer
    examples are skipped and counted, not truncated (a cut response would teach the model to stop without its
    end-of-text)."""
    template = tokenizer.chat_template or ALPACA_CHAT_TEMPLATE
    prompts = [tokenizer.apply_chat_template(entry_to_messages(entry, with_response=False), chat_template=template,
                                             tokenize=False, add_generation_prompt=True) for entry in records]
    responses = [entry["output"] for entry in records]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if records else []
    response_ids = tokenizer(responses, add_special_tokens=False)["input_ids"] if records else []
    items, too_long = [], 0
    for prompt, response in zip(prompt_ids, response_ids):
        ids = prompt + response + [tokenizer.eos_token_id]
        if max_length is not None and len(ids) > max_length:
            too_long += 1
            continue
        items.append({"input_ids": ids, "prompt_length": len(prompt)})
    if report is not None:
        report.too_long[split] = too_long
    if too_long:
        logger.warning("Skipped %d of %d %s example(s) longer than %d tokens.", too_long, len(records), split,
                       max_length)
    return items


class InstructionDataset(torch.utils.data.Dataset):
    """The book's ``InstructionDataset``: pre-tokenized examples; ``mask_prompt`` (not None) overrides the collator."""

    def __init__(self, items: list[dict], mask_prompt: bool | None = None):
        self.items = items if mask_prompt is None else [{**item, "mask_prompt": mask_prompt} for item in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


@dataclass
class InstructionCollator:
    """The book's ``custom_collate_fn``, minus the shift (a Hugging Face model shifts labels itself): right-padding,
    ``-100`` labels on padding, each example's own ``<|endoftext|>`` kept as a label; ``mask_prompt=True`` (exercise
    7.2) masks the prompt too. ``padding_free=True`` packs the batch into one row (``DataCollatorWithFlattening``):
    ``position_ids`` restart at 0 for each example, which gives each its own causal attention."""

    pad_token_id: int
    allowed_max_length: int | None = None
    mask_prompt: bool = False
    ignore_index: int = IGNORE_INDEX
    padding_free: bool = False

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        ids = [torch.tensor(item["input_ids"][:self.allowed_max_length], dtype=torch.long) for item in batch]
        labels = [example_ids.clone() for example_ids in ids]
        for item, example_labels in zip(batch, labels):
            if item.get("mask_prompt", self.mask_prompt):
                example_labels[:item["prompt_length"]] = self.ignore_index
        if self.padding_free:
            from transformers import DataCollatorWithFlattening

            return DataCollatorWithFlattening(separator_id=self.ignore_index)(
                [{"input_ids": i.tolist(), "labels": l.tolist()} for i, l in zip(ids, labels)])
        labels = pad_sequence(labels, batch_first=True, padding_value=self.ignore_index)
        return {"input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
                "attention_mask": pad_sequence([torch.ones_like(i) for i in ids], batch_first=True),
                "labels": labels}


__all__ = ["ALPACA_CHAT_TEMPLATE", "IGNORE_INDEX", "INSTRUCTION_FIELDS", "PREAMBLE", "InstructionCollator",
           "InstructionDataset", "RecordDataArguments", "RecordReport", "add_chat_template", "clean_records",
           "entry_to_messages", "format_input", "load_instruction_records", "read_local_records", "split_records",
           "tokenize_records"]
