"""Raw text for pretraining, as ``"train"`` and ``"validation"`` splits: the book's chapter 5 data step.

The book trains on the first 90 % of one text file. Here the text comes from local files (a txt file is one document),
a Hub dataset or the default corpus (:mod:`.corpus`); without validation data, ``validation_fraction`` of the
documents is held out (the book's character cut when there are few documents).
"""

from __future__ import annotations

import os
import random

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets.data_files import resolve_pattern
from datasets.exceptions import DatasetGenerationError
from datasets.load import infer_module_for_data_files_list

from ..errors import HfgptDownloadError, HfgptInputError
from .corpus import default_corpus

MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT = 10
_TEXT_FORMATS = ("text", "json", "csv", "parquet", "arrow")
_EXTENSIONS = ".txt, .json, .jsonl, .csv, .tsv, .parquet, .arrow (also compressed, e.g. .txt.gz)"


def download_once(url: str, local_copy: str, extract: bool = False, cache_dir: str | None = None) -> str:
    """``url`` fetched (and unpacked) once into the datasets cache; offline, one line naming ``--data_file``."""
    manager = datasets.DownloadManager(download_config=datasets.DownloadConfig(cache_dir=cache_dir))
    try:
        return manager.download_and_extract(url) if extract else manager.download(url)
    except ConnectionError as err:  # offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or no network
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise HfgptDownloadError(f"Could not download {url} ({reason}); pass --data_file with a local {local_copy}.")\
            from None


def check_text_column(ds, column: str, where: str) -> None:
    """HfgptInputError unless ``ds`` has the column (a streamed split whose columns are unknown yet passes)."""
    if ds.column_names is not None and column not in ds.column_names:
        raise HfgptInputError(f"{where}: no text column {column!r}; the columns are {ds.column_names} "
                              "(pass text_column=)")


def _text_only(ds, column: str, where: str):
    check_text_column(ds, column, where)
    if ds.features is not None and getattr(ds.features[column], "dtype", None) not in ("string", "large_string"):
        raise HfgptInputError(f"{where}: column {column!r} holds {ds.features[column]}, not text; "
                              f"the columns are {ds.column_names} (pass text_column=)")
    if isinstance(ds, datasets.Dataset) and not pc.sum(pc.utf8_length(ds.data.column(column))).as_py():
        raise HfgptInputError(f"no text in {where}: its {len(ds)} documents are empty")
    return ds.select_columns([column])


def _load_files(patterns, what: str, text_column: str, streaming: bool):
    files = []
    for pattern in [patterns] if isinstance(patterns, (str, os.PathLike)) else patterns:
        pattern = os.path.expanduser(os.fspath(pattern))
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        try:
            files += resolve_pattern(pattern, base_path=os.getcwd())
        except FileNotFoundError:
            raise HfgptInputError(f"No file matches {pattern!r} ({what}): check the path or the glob") from None
    files = list(dict.fromkeys(files))
    if not files:
        raise HfgptInputError(f"{what}: the list of files is empty")
    formats = {file: infer_module_for_data_files_list([file]) for file in files}
    for file, (module, _) in formats.items():
        if module not in _TEXT_FORMATS:
            raise HfgptInputError(f"{what}: cannot tell the format of {file!r} from its extension "
                                  f"{os.path.splitext(file)[1]!r}; supported: {_EXTENSIONS}")
    module, kwargs = formats[files[0]]
    if any(found != (module, kwargs) for found in formats.values()):
        raise HfgptInputError(f"{what}: the files mix formats ({formats}); load one format per split")
    if module == "text":
        kwargs = {**kwargs, "sample_by": "document"}
    shown = files if len(files) <= 3 else files[:3] + ["..."]
    try:
        ds = datasets.load_dataset(module, data_files=files, split="train", streaming=streaming, **kwargs)
    except DatasetGenerationError as error:  # the builder could not parse a file (e.g. invalid JSON)
        cause = " ".join(str(error.__cause__ or error).split())[:300]
        raise HfgptInputError(f"{what}: cannot read {shown} as {module}: {cause}") from error
    if module == "text" and text_column != "text":
        ds = ds.rename_column("text", text_column)
    return _text_only(ds, text_column, f"{what} {shown}")


def _split(ds, column: str, fraction: float, seed: int):
    """(train, validation) of an in-memory split: whole documents, or the book's character cut for few of them."""
    n = len(ds)
    if n >= MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT:
        n_validation = max(1, round(n * fraction))
        if n_validation >= n:
            raise HfgptInputError(f"validation_fraction={fraction} holds out all {n} documents: use a smaller one")
        order = np.random.default_rng(seed).permutation(n)
        return ds.select(np.sort(order[n_validation:])), ds.select(np.sort(order[:n_validation]))
    texts = [text or "" for text in ds[column]]
    cut = int((1 - fraction) * sum(map(len, texts)))  # the book: split_idx = int(train_ratio * len(text_data))
    train, validation, position = [], [], 0
    for text in texts:
        train.append(text[: max(0, cut - position)])
        validation.append(text[max(0, cut - position) :])
        position += len(text)
    return tuple(datasets.Dataset.from_dict({column: [t for t in part if t]}) for part in (train, validation))


def _held_out(_example, index: int, seed: int, fraction: float, validation: bool) -> bool:
    """A seeded coin per streamed document: the same split in every process, without counting the documents."""
    return (random.Random(f"{seed}:{index}").random() < fraction) == validation


def load_text_datasets(train_files=None, validation_files=None, dataset_name=None, dataset_config_name=None,
                       text_column="text", streaming=False, validation_fraction=0.05, seed=42,
                       default_corpus_max_chars=None):
    """``"train"`` and ``"validation"`` splits of raw text: from files, else ``dataset_name``, else the default
    corpus."""
    if validation_files is None and not 0 < validation_fraction < 1:
        raise HfgptInputError(f"validation_fraction must lie between 0 and 1, got {validation_fraction!r}")
    validation = None
    if train_files is not None:
        train = _load_files(train_files, "train_files", text_column, streaming)
    elif dataset_name is not None:
        loaded = datasets.load_dataset(dataset_name, dataset_config_name, streaming=streaming)
        if "train" not in loaded:
            raise HfgptInputError(f"dataset {dataset_name!r} has no 'train' split; its splits are {list(loaded)}")
        train = _text_only(loaded["train"], text_column, f"dataset {dataset_name!r} split 'train'")
        if validation_files is None and "validation" in loaded:
            validation = _text_only(loaded["validation"], text_column, f"dataset {dataset_name!r} split 'validation'")
    else:
        train = datasets.Dataset.from_dict({text_column: default_corpus(default_corpus_max_chars)})
    if validation_files is not None:
        validation = _load_files(validation_files, "validation_files", text_column, streaming)
    if validation is None and isinstance(train, datasets.IterableDataset):
        coin = dict(seed=seed, fraction=validation_fraction)
        validation = train.filter(_held_out, with_indices=True, fn_kwargs={**coin, "validation": True})
        train = train.filter(_held_out, with_indices=True, fn_kwargs={**coin, "validation": False})
    elif validation is None:
        train, validation = _split(train, text_column, validation_fraction, seed)
    splits = {"train": train, "validation": validation}
    if streaming:  # the default corpus is in memory: streamed, it gives the same documents
        splits = {name: ds.to_iterable_dataset() if isinstance(ds, datasets.Dataset) else ds
                  for name, ds in splits.items()}
    return datasets.IterableDatasetDict(splits) if streaming else datasets.DatasetDict(splits)
