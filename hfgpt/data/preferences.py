"""Preference data (the book's chapter-7 bonus, DPO): each record pairs a ``chosen`` and a ``rejected`` response.

A record is ``{"instruction", "input", "chosen", "rejected"}`` (the book's ``instruction-data-with-preference.json``)
or ``{"prompt", "chosen", "rejected"}``; the Alpaca prompt comes before each response, as in the book. Records are
checked and split (85 / 10 / 5, file order) by the instruction data's :func:`clean_records` and :func:`split_records`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import HfgptInputError
from .instructions import RecordDataArguments, RecordReport, clean_records, format_input, read_local_records
from .instructions import split_records
from .text import download_once

BOOK_PREFERENCES_URL = ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
                        "04_preference-tuning-with-dpo/instruction-data-with-preference.json")
RESPONSES = ("chosen", "rejected")
RESPONSE_HEADER = "\n\n### Response:\n"  # the book's; the Alpaca chat template's generation prompt


@dataclass
class PreferenceDataArguments(RecordDataArguments):
    """The records' flags (with neither ``--data_file`` nor ``--dataset_name``: the book's file) and the samples'."""

    sample_prompts: int = field(default=3, metadata={"help": "Validation prompts answered before and after training."})
    max_new_tokens: int = field(default=256, metadata={"help": "Length limit of those sample responses (the book: 256)."})

    def check(self) -> None:
        """The flags' own checks, before anything is read or loaded (the fractions: :func:`split_records`)."""
        if self.data_file is not None and self.dataset_name is not None:
            raise HfgptInputError("Give --data_file or --dataset_name, not both.")
        if self.sample_prompts < 0 or self.max_new_tokens < 1:
            raise HfgptInputError("--sample_prompts must be 0 or more and --max_new_tokens positive.")


def download_book_preferences(cache_dir: str | None = None) -> str:
    """The path of the book's ``instruction-data-with-preference.json``, fetched once into the datasets cache."""
    return download_once(BOOK_PREFERENCES_URL, "copy of instruction-data-with-preference.json", cache_dir=cache_dir)


def load_preference_records(data_args: PreferenceDataArguments) -> tuple[list[dict], RecordReport]:
    """Checked records (instruction, input, chosen, rejected) from the file, the Hub dataset or the book's file."""
    if data_args.dataset_name is not None:
        from datasets import load_dataset

        records = load_dataset(data_args.dataset_name, data_args.dataset_config_name,
                               split=data_args.dataset_split).to_list()
    else:
        records = read_local_records(os.path.expanduser(data_args.data_file or download_book_preferences()))
    if isinstance(records, Sequence):  # prompt / chosen / rejected: the prompt is the instruction
        records = [{"instruction": r["prompt"], **r} if isinstance(r, Mapping) and "instruction" not in r
                   and "prompt" in r else r for r in records]
    return clean_records(records, source=data_args.data_file or data_args.dataset_name or "the book's file",
                         responses=RESPONSES)


def preference_splits(data_args: PreferenceDataArguments) -> tuple[dict[str, list[dict]], RecordReport]:
    """The book's split of the checked records: ``({"train", "test", "validation"}, report)``."""
    records, report = load_preference_records(data_args)
    splits = split_records(records, data_args.train_fraction, data_args.test_fraction, data_args.split_seed)
    return splits, report


def to_dpo_dataset(records: Sequence[Mapping]):
    """TRL's standard preference format: ``prompt`` (the book's Alpaca prompt), ``chosen``, ``rejected``."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": format_input(r) + RESPONSE_HEADER, "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in records])


__all__ = ["BOOK_PREFERENCES_URL", "PreferenceDataArguments", "download_book_preferences", "load_preference_records",
           "preference_splits", "to_dpo_dataset"]
