"""Data sampling with a sliding window: the book's chapter 2 (``GPTDatasetV1`` + ``create_dataloader_v1``), as a
``datasets`` pipeline.

The book (section 2.6) tokenizes one text with tiktoken, then walks a Python loop over the token list and keeps, for
every ``stride``-th position ``i``, the input ``ids[i : i + max_length]`` and the target ``ids[i + 1 : i + max_length +
1]`` as two ``torch.tensor`` objects; ``create_dataloader_v1`` wraps that in a ``DataLoader`` (batch size, shuffle,
``drop_last``). Chapter 5 splits the text 90/10 by characters into training and validation text first.

What this module does instead, and what differs:

* **Any corpus, any fast tokenizer.** :func:`load_text_datasets` reads local txt / json / jsonl / csv / tsv / parquet
  files (several files, a directory or a glob), a Hub dataset, or the embedded default corpus
  (:mod:`hfgpt.data.corpus`), and returns a ``DatasetDict`` with ``"train"`` and ``"validation"``. Tokenization uses
  the Rust backend of a ``PreTrainedTokenizerFast`` in a batched ``Dataset.map`` (parallel across cores, cached on
  disk for file-backed datasets, with datasets' progress bar).
* **Documents are joined with ``<|endoftext|>``** (the tokenizer's eos id), as the book recommends in section 2.4
  for unrelated texts: the token stream is exactly ``tokenizer.encode("<|endoftext|>".join(documents))`` (for a
  byte-level BPE such as GPT-2's; no eos after the last document, none around empty ones).
* **Windows hold ``max_length`` tokens and ``labels == input_ids``**: Hugging Face causal-LM models shift the labels
  inside ``forward`` (position ``t`` is scored against token ``t + 1``), so there is no separate target tensor. A
  window therefore yields ``max_length - 1`` predictions where the book's yields ``max_length`` (it reads
  ``max_length + 1`` tokens); the window count differs by at most one, see :func:`group_into_windows`.
* **Vectorised**: the windows are cut from one numpy token stream with ``sliding_window_view`` and stored as an Arrow
  fixed-size-list column (int32 in Arrow; the datasets formatters and ``default_data_collator`` hand out int64
  tensors). This is two orders of magnitude faster than the book's Python loop, and the whole pipeline including
  tokenization runs several times faster than the book's (see ``bench/data_pipeline.py``).
* **Streaming**: an ``IterableDataset`` input gives an ``IterableDataset`` of the same windows, built on the fly from
  a token buffer that carries over document boundaries.
* **Batching, shuffling, ``drop_last``** are the ``Trainer``'s job (``per_device_train_batch_size``, its random
  sampler, ``dataloader_drop_last``), not this module's.
* **Bad input fails early** with a ``ValueError`` that says what is wrong (no text, fewer tokens than one window,
  ``stride <= 0``, ``max_length <= 1``, ``max_length`` above the model's ``n_positions``, unknown file format,
  missing text column), and a missing file raises ``FileNotFoundError`` naming it.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "WindowStats",
    "load_text_datasets",
    "token_stream",
    "window_starts",
    "num_windows",
    "group_into_windows",
    "tokenize_and_window",
    "build_pretraining_datasets",
]

PathLike = Union[str, os.PathLike]

# extension -> (datasets packaged builder, extra builder kwargs)
_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".txt": ("text", {}),
    ".text": ("text", {}),
    ".md": ("text", {}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".ndjson": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".parquet": ("parquet", {}),
    ".pq": ("parquet", {}),
}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
SUPPORTED_EXTENSIONS = tuple(_BUILDERS)

# Below this many documents, "auto" splits the character stream (validation = held-out tail, like the book).
_MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT = 10
# Below this much text (Arrow bytes), num_proc=None tokenizes in this process: the Rust tokenizer is already
# multi-threaded, and worker processes cost ~1 s to start and pickle.
_PARALLEL_MIN_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class WindowStats:
    """What a windowing step produced (returned by ``tokenize_and_window(..., return_stats=True)``)."""

    n_documents: int
    n_tokens: int
    n_windows: int
    max_length: int
    stride: int
    n_tail_tokens_dropped: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# ====================================================================================================================
# Loading


def _strip_compression(name: str) -> str:
    lower = name.lower()
    for ext in _COMPRESSION:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def _extension(path: str) -> str:
    return Path(_strip_compression(path)).suffix.lower()


def _resolve_files(spec: PathLike | Sequence[PathLike], what: str) -> list[str]:
    """Expand paths, directories and glob patterns into a sorted, de-duplicated list of existing files."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not items:
        raise ValueError(f"{what}: empty list of files")
    files: list[str] = []
    for item in items:
        item = os.path.expanduser(os.fspath(item))
        if _glob.has_magic(item):
            matches = sorted(p for p in _glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise FileNotFoundError(f"{what}: no file matches the pattern {item!r}")
            files.extend(matches)
        elif os.path.isdir(item):
            inside = sorted(
                os.path.join(item, name)
                for name in os.listdir(item)
                if os.path.isfile(os.path.join(item, name)) and _extension(name) in _BUILDERS
            )
            if not inside:
                raise FileNotFoundError(
                    f"{what}: directory {item!r} holds no file with a supported extension {list(SUPPORTED_EXTENSIONS)}"
                )
            files.extend(inside)
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"{what}: no such file: {item!r}")
    seen: set[str] = set()
    unique = []
    for f in files:
        key = os.path.abspath(f)
        if key not in seen:
            seen.add(key)
            unique.append(key)
    return unique


def _builder_for(files: list[str], what: str) -> tuple[str, dict[str, Any]]:
    found: dict[tuple[str, tuple], list[str]] = {}
    for f in files:
        ext = _extension(f)
        if ext not in _BUILDERS:
            raise ValueError(
                f"{what}: cannot tell the format of {f!r} from its extension {ext or '(none)'!r}; supported: "
                f"{', '.join(SUPPORTED_EXTENSIONS)} (optionally compressed: {', '.join(_COMPRESSION)})"
            )
        builder, kwargs = _BUILDERS[ext]
        found.setdefault((builder, tuple(sorted(kwargs.items()))), []).append(f)
    if len(found) > 1:
        listing = "; ".join(f"{b}{dict(k) or ''}: {fs}" for (b, k), fs in found.items())
        raise ValueError(f"{what}: the files mix formats ({listing}); load one format per split")
    (builder, kwargs), _ = next(iter(found.items()))
    return builder, dict(kwargs)


def _check_text_column(ds, text_column: str, where: str):
    """Keep only the text column, renamed to "text"; ValueError listing the columns if it is missing."""
    columns = ds.column_names
    if columns is None:  # streaming dataset whose features are unknown until read: checked when iterated
        return ds.rename_column(text_column, "text") if text_column != "text" else ds
    if text_column not in columns:
        raise ValueError(
            f"{where}: no text column {text_column!r}; the columns are {list(columns)} (pass text_column=)"
        )
    features = getattr(ds, "features", None)
    if features is not None:
        feature = features[text_column]
        dtype = getattr(feature, "dtype", None)
        if dtype not in ("string", "large_string"):
            raise ValueError(
                f"{where}: column {text_column!r} holds {feature}, not text; the columns are {list(columns)}"
            )
    ds = ds.select_columns([text_column])
    if text_column != "text":
        ds = ds.rename_column(text_column, "text")
    return ds


def _load_files(files, what, text_column, streaming, cache_dir, txt_sample_by, load_kwargs):
    import datasets

    builder, kwargs = _builder_for(files, what)
    if builder == "text":
        kwargs.update(sample_by=txt_sample_by, keep_linebreaks=True)
        text_column = "text"  # the text builder has exactly one column, "text"
    ds = datasets.load_dataset(
        builder,
        data_files={"train": files},
        split="train",
        streaming=streaming,
        cache_dir=cache_dir,
        **kwargs,
        **load_kwargs,
    )
    shown = files if len(files) <= 3 else files[:3] + [f"... ({len(files)} files)"]
    return _check_text_column(ds, text_column, f"{what} {shown}")


def _unit_hash(seed: int, index: int) -> float:
    """splitmix64 of (seed, index) mapped to [0, 1): a reproducible coin per document for streaming splits."""
    mask = (1 << 64) - 1
    x = (seed * 0x9E3779B97F4A7C15 + index + 1) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    x ^= x >> 31
    return x / 2.0**64


def _in_validation(_example, index, seed, fraction):
    return _unit_hash(seed, index) < fraction


def _in_train(_example, index, seed, fraction):
    return _unit_hash(seed, index) >= fraction


def _split(ds, fraction: float, seed: int, split_by: str):
    """Split a map-style text dataset into (train, validation)."""
    import datasets

    n = len(ds)
    if n == 0:
        raise ValueError("no text: the training data has no rows")
    if split_by == "auto":
        split_by = "documents" if n >= _MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT else "tail"
    if split_by == "documents":
        n_val = max(1, int(round(n * fraction)))
        if n_val >= n:
            raise ValueError(f"cannot hold out {n_val} of {n} documents for validation; use split_by='tail'")
        order = np.random.default_rng(seed).permutation(n)
        val_idx = np.sort(order[:n_val])
        train_idx = np.sort(order[n_val:])
        return ds.select(train_idx), ds.select(val_idx)
    if split_by != "tail":
        raise ValueError(f"split_by must be 'auto', 'documents' or 'tail', got {split_by!r}")
    # The book (chapter 5): split_idx = int(train_ratio * len(text_data)); validation is the held-out tail.
    texts = [t or "" for t in ds["text"]]
    total = sum(len(t) for t in texts)
    if total == 0:
        raise ValueError("no text: every document is empty")
    cut = int((1.0 - fraction) * total)
    train_texts, val_texts, pos = [], [], 0
    for text in texts:
        end = pos + len(text)
        if end <= cut:
            train_texts.append(text)
        elif pos >= cut:
            val_texts.append(text)
        else:
            train_texts.append(text[: cut - pos])
            val_texts.append(text[cut - pos :])
        pos = end
    return datasets.Dataset.from_dict({"text": train_texts}), datasets.Dataset.from_dict({"text": val_texts})


def load_text_datasets(
    train_files: PathLike | Sequence[PathLike] | None = None,
    validation_files: PathLike | Sequence[PathLike] | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    *,
    text_column: str = "text",
    streaming: bool = False,
    validation_fraction: float = 0.1,
    validation_split_percentage: float | None = None,
    seed: int = 123,
    split_by: str = "auto",
    txt_sample_by: str = "document",
    cache_dir: PathLike | None = None,
    default_corpus_max_chars: int | None = None,
    **load_kwargs: Any,
):
    """Load raw text as a ``DatasetDict`` with ``"train"`` and ``"validation"`` splits and one column, ``"text"``.

    Sources, in order of precedence:

    * ``train_files`` (+ optional ``validation_files``): a path, a directory, a glob pattern (``"data/*.jsonl"``,
      ``"**"`` allowed) or a list of those. The ``datasets`` builder follows the extension: ``.txt/.text/.md`` ->
      ``text`` (one document per file with ``txt_sample_by="document"``, the book's setting; ``"paragraph"`` or
      ``"line"`` make each paragraph / line a document), ``.json/.jsonl/.ndjson`` -> ``json``, ``.csv`` -> ``csv``,
      ``.tsv`` -> ``csv`` with tabs, ``.parquet/.pq`` -> ``parquet``; ``.gz/.bz2/.xz/.zst`` compression is allowed.
    * ``dataset_name`` (+ ``dataset_config_name``): ``datasets.load_dataset(dataset_name, dataset_config_name)`` from
      the Hub (or a local dataset script/folder); its ``"validation"`` split is used if it has one.
    * nothing: the embedded default corpus (:func:`hfgpt.data.corpus.default_corpus`, capped at
      ``default_corpus_max_chars``).

    ``text_column`` names the column holding the documents; it is renamed to ``"text"`` and the others are dropped.

    Without a validation split, ``validation_fraction`` (or ``validation_split_percentage``, as in transformers'
    ``run_clm.py``) of the training data is held out, according to ``split_by``:

    * ``"documents"``: a seeded random choice of ``round(n * fraction)`` documents (same seed, same split); both
      splits keep the original document order.
    * ``"tail"``: the last ``fraction`` of the characters, as the book's chapter 5 does with one text
      (``split_idx = int(0.9 * len(text))``); the document at the cut is split in two. No randomness.
    * ``"auto"`` (default): ``"documents"`` with at least 10 documents, else ``"tail"`` (e.g. a single
      ``the-verdict.txt``).

    ``streaming=True`` returns an ``IterableDatasetDict`` read lazily. Without a validation split, a streamed source's
    documents go to validation by a seeded hash of their index (about ``fraction`` of them; reproducible), since a
    stream has no length; a ``"tail"`` split needs ``streaming=False``. The default corpus is split first, then
    streamed, so its splits are the same in both modes.

    ``cache_dir`` is passed to ``datasets.load_dataset``; other keyword arguments (``revision=``, ``token=``, ...)
    too. Raises ``FileNotFoundError`` naming a missing file / unmatched pattern, ``ValueError`` for an unknown
    extension (listing the supported ones) or a missing text column (listing the columns).
    """
    import datasets

    if validation_split_percentage is not None:
        validation_fraction = float(validation_split_percentage) / 100.0
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if split_by not in ("auto", "documents", "tail"):
        raise ValueError(f"split_by must be 'auto', 'documents' or 'tail', got {split_by!r}")
    if txt_sample_by not in ("document", "paragraph", "line"):
        raise ValueError(f"txt_sample_by must be 'document', 'paragraph' or 'line', got {txt_sample_by!r}")
    if train_files is not None and dataset_name is not None:
        raise ValueError("give either train_files or dataset_name, not both")
    if validation_files is not None and train_files is None and dataset_name is None:
        raise ValueError("validation_files needs train_files (or dataset_name) too")
    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None

    train = validation = None
    in_memory_source = False
    if train_files is not None:
        files = _resolve_files(train_files, "train_files")
        train = _load_files(files, "train_files", text_column, streaming, cache_dir, txt_sample_by, load_kwargs)
    elif dataset_name is not None:
        loaded = datasets.load_dataset(
            dataset_name, dataset_config_name, streaming=streaming, cache_dir=cache_dir, **load_kwargs
        )
        if not isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            loaded = {"train": loaded}
        if "train" not in loaded:
            raise ValueError(f"dataset {dataset_name!r} has no 'train' split; its splits are {list(loaded)}")
        train = _check_text_column(loaded["train"], text_column, f"dataset {dataset_name!r} split 'train'")
        if validation_files is None and "validation" in loaded:
            where = f"dataset {dataset_name!r} split 'validation'"
            validation = _check_text_column(loaded["validation"], text_column, where)
    else:
        from .corpus import default_corpus_dataset

        train = default_corpus_dataset(max_chars=default_corpus_max_chars)
        in_memory_source = True

    if validation_files is not None:
        files = _resolve_files(validation_files, "validation_files")
        validation = _load_files(
            files, "validation_files", text_column, streaming, cache_dir, txt_sample_by, load_kwargs
        )

    if validation is None:
        if isinstance(train, datasets.IterableDataset):
            if split_by == "tail":
                raise ValueError(
                    "split_by='tail' needs the whole corpus: "
                    "use streaming=False, split_by='documents' or validation_files"
                )
            kwargs = {"seed": seed, "fraction": validation_fraction}
            train, validation = (
                train.filter(_in_train, with_indices=True, fn_kwargs=kwargs),
                train.filter(_in_validation, with_indices=True, fn_kwargs=kwargs),
            )
        else:
            train, validation = _split(train, validation_fraction, seed, split_by)

    if streaming and in_memory_source:
        train, validation = train.to_iterable_dataset(), validation.to_iterable_dataset()
    if streaming:
        return datasets.IterableDatasetDict({"train": train, "validation": validation})
    return datasets.DatasetDict({"train": train, "validation": validation})


# ====================================================================================================================
# Tokenization


def _backend_and_eos(tokenizer, eos_token_id: int | None, append_eos: bool):
    """The Rust ``tokenizers.Tokenizer`` behind a fast tokenizer (truncation/padding off) and the eos id."""
    from tokenizers import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        backend = tokenizer
        default_eos = tokenizer.token_to_id("<|endoftext|>")
    else:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            raise TypeError(
                f"a fast tokenizer is needed (transformers PreTrainedTokenizerFast or tokenizers.Tokenizer); "
                f"got {type(tokenizer).__name__}"
            )
        default_eos = getattr(tokenizer, "eos_token_id", None)
    if backend.truncation is not None or backend.padding is not None:
        # Don't mutate the caller's tokenizer: work on a copy without truncation and padding.
        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    eos = default_eos if eos_token_id is None else int(eos_token_id)
    if append_eos and eos is None:
        raise ValueError(
            "the tokenizer has no eos token to join documents with; set tokenizer.eos_token (e.g. '<|endoftext|>'), "
            "pass eos_token_id=, or append_eos=False"
        )
    return backend, eos


class _Encoder:
    """Batched map function (picklable for num_proc > 1): text -> token ids, no special tokens added."""

    def __init__(self, backend, column: str = "text"):
        self.backend = backend
        self.column = column

    def encode(self, texts: list) -> list[list[int]]:
        texts = [t if t is not None else "" for t in texts]
        encode = getattr(self.backend, "encode_batch_fast", None) or self.backend.encode_batch  # fast: no offsets
        return [e.ids for e in encode(texts, add_special_tokens=False)]

    def __call__(self, batch: dict) -> dict:
        return {"input_ids": self.encode(batch[self.column])}


def _fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def _tokenizer_digest(backend) -> str:
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()[:16]


def _auto_num_proc(dataset, num_proc: int | None) -> int | None:
    n = len(dataset)
    if num_proc is not None:
        num_proc = max(1, min(int(num_proc), n))
        return num_proc if num_proc > 1 else None
    cpus = os.cpu_count() or 1
    try:
        nbytes = dataset.data.nbytes
    except AttributeError:
        return None
    if cpus > 1 and nbytes >= _PARALLEL_MIN_BYTES and n >= 2 * cpus:
        return min(cpus, 8)
    return None


def _join_documents(values: np.ndarray, lengths: np.ndarray, eos: int | None) -> np.ndarray:
    """Concatenated ids + per-document lengths -> one stream with ``eos`` between non-empty documents."""
    if eos is None:
        return values
    lengths = lengths[lengths > 0]
    if len(lengths) <= 1:
        return values
    boundaries = np.cumsum(lengths)[:-1]
    return np.insert(values, boundaries, np.asarray(eos, dtype=values.dtype))


def token_stream(
    dataset,
    tokenizer,
    *,
    text_column: str = "text",
    append_eos: bool = True,
    eos_token_id: int | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
) -> np.ndarray:
    """Tokenize every document of a map-style dataset and concatenate them into one int32 numpy array.

    Uses a batched ``Dataset.map`` over the Rust tokenizer (no special tokens added per document); with
    ``append_eos`` the documents are joined by the eos id (between documents, none after the last, none around empty
    documents). ``num_proc=None`` picks worker processes only for corpora over 64 MB on a multi-core machine.
    """
    stream, _ = _token_stream(dataset, tokenizer, text_column, append_eos, eos_token_id, num_proc, batch_size)
    return stream


def _token_stream(dataset, tokenizer, text_column, append_eos, eos_token_id, num_proc, batch_size):
    import datasets
    import pyarrow.compute as pc

    if text_column not in dataset.column_names:
        raise ValueError(f"no text column {text_column!r}; the columns are {dataset.column_names}")
    if len(dataset) == 0:
        raise ValueError("no text: the dataset has no rows")
    backend, eos = _backend_and_eos(tokenizer, eos_token_id, append_eos)
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))})
    tokenized = dataset.map(
        _Encoder(backend, text_column),
        batched=True,
        batch_size=batch_size,
        remove_columns=dataset.column_names,
        features=features,
        num_proc=_auto_num_proc(dataset, num_proc),
        new_fingerprint=_fingerprint(
            "hfgpt-tokenize-v1", dataset._fingerprint, _tokenizer_digest(backend), text_column
        ),
        desc="Tokenizing",
    )
    if tokenized._indices is not None:
        tokenized = tokenized.flatten_indices()
    column = tokenized.data.column("input_ids")
    chunks = [c for c in column.chunks if len(c)]
    if chunks:
        values = np.concatenate([c.flatten().to_numpy(zero_copy_only=False) for c in chunks])
        values = values.astype(np.int32, copy=False)
        lengths = np.concatenate([pc.list_value_length(c).to_numpy(zero_copy_only=False) for c in chunks])
    else:
        values, lengths = np.zeros(0, np.int32), np.zeros(0, np.int64)
    if values.size == 0:
        raise ValueError(f"no text: all {len(dataset)} documents are empty")
    return _join_documents(values, lengths, eos if append_eos else None), int((lengths > 0).sum())


# ====================================================================================================================
# Windowing


def _check_window_args(max_length: int, stride: int | None, n_positions: int | None) -> tuple[int, int]:
    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(max_length) or max_length <= 1:
        raise ValueError(
            f"max_length must be an integer >= 2, got {max_length!r}: a window of one token leaves nothing to predict "
            "(the model shifts the labels by one position)"
        )
    if n_positions is not None and max_length > n_positions:
        raise ValueError(
            f"max_length={max_length} exceeds the model's context length n_positions={n_positions}; "
            f"use max_length <= {n_positions}"
        )
    if stride is None:
        stride = max_length
    if not is_int(stride) or stride <= 0:
        raise ValueError(f"stride must be a positive integer (tokens between window starts), got {stride!r}")
    return int(max_length), int(stride)


def num_windows(n_tokens: int, max_length: int, stride: int | None = None) -> int:
    """How many windows :func:`group_into_windows` cuts from ``n_tokens`` tokens: ``(n - L) // S + 1`` (0 if n < L)."""
    max_length, stride = _check_window_args(max_length, stride, None)
    return 0 if n_tokens < max_length else (n_tokens - max_length) // stride + 1


def window_starts(n_tokens: int, max_length: int, stride: int | None = None) -> np.ndarray:
    """Start offsets ``0, S, 2S, ...`` of every full window of ``max_length`` tokens inside ``n_tokens`` tokens."""
    step = max_length if stride is None else stride
    return np.arange(num_windows(n_tokens, max_length, stride), dtype=np.int64) * step


def _window_features(max_length: int, dtype: str):
    import datasets

    seq = datasets.List(datasets.Value(dtype), length=max_length)
    return datasets.Features({"input_ids": seq, "labels": seq})


def _too_short(n_tokens: int, max_length: int) -> ValueError:
    return ValueError(
        f"the token stream has {n_tokens} tokens, fewer than max_length={max_length}: not even one window; "
        f"use more text or a smaller max_length"
    )


def group_into_windows(
    token_ids: Sequence[int] | np.ndarray,
    max_length: int,
    stride: int | None = None,
    *,
    n_positions: int | None = None,
    dtype: str = "int32",
):
    """Cut a token stream into windows of ``max_length`` tokens, one every ``stride`` tokens (vectorised).

    Returns an in-memory ``datasets.Dataset`` with columns ``input_ids`` and ``labels`` (identical: the model shifts
    the labels itself), each a fixed-size list of ``max_length`` ids stored as ``dtype`` (int32 by default; the
    datasets formatters and ``transformers.default_data_collator`` turn them into int64 tensors, which the loss needs).

    ``stride`` defaults to ``max_length`` (consecutive windows, no overlap); ``stride < max_length`` makes neighbouring
    windows share ``max_length - stride`` tokens; ``stride > max_length`` skips tokens between windows. Tokens after
    the last full window are dropped (no padding).

    Window count, with ``N`` tokens, ``L = max_length``, ``S = stride``:

    * here: starts ``i = 0, S, 2S, ...`` with ``i + L <= N``: ``(N - L) // S + 1`` windows (``N >= L``);
    * the book's ``GPTDatasetV1``: ``range(0, N - L, S)``, i.e. ``i + L + 1 <= N`` because its window reads ``L + 1``
      tokens (``L`` inputs + the shifted target): ``ceil((N - L) / S) = (N - L - 1) // S + 1`` windows (``N > L``).

    The counts are equal unless ``(N - L)`` is a multiple of ``S``; then this pipeline has one window more (the one
    that ends exactly at the last token, for which the book has no next-token target). Window ``k`` holds the same
    tokens ``ids[k*S : k*S + L]`` as the book's ``input_ids[k]``; the book's ``target_ids[k]`` is that shifted by one,
    so per window the book scores ``L`` predictions and this pipeline ``L - 1`` (the pair that crosses into the next
    window is not scored when ``S == L``).
    """
    import datasets
    import pyarrow as pa
    from numpy.lib.stride_tricks import sliding_window_view

    max_length, stride = _check_window_args(max_length, stride, n_positions)
    stream = np.asarray(token_ids)
    if stream.ndim != 1:
        raise ValueError(f"token_ids must be one flat sequence, got shape {stream.shape}")
    if stream.size == 0:
        raise ValueError("no text: the token stream is empty")
    if stream.size < max_length:
        raise _too_short(stream.size, max_length)
    np_dtype = np.dtype(dtype)
    stream = stream.astype(np_dtype, copy=False)
    windows = np.ascontiguousarray(sliding_window_view(stream, max_length)[::stride])
    values = pa.array(windows.reshape(-1), type=pa.from_numpy_dtype(np_dtype))
    column = pa.FixedSizeListArray.from_arrays(values, max_length)
    return datasets.Dataset.from_dict(
        {"input_ids": column, "labels": column}, features=_window_features(max_length, np_dtype.name)
    )


def _stream_windows(source, backend, eos, text_column, max_length, stride, batch_size, dtype):
    """Generator behind the streaming path: the same windows as ``group_into_windows(token_stream(...))``.

    ``buffer`` holds the tokens of absolute positions ``[buffer_start, total)`` that a future window may still need
    (fewer than ``max_length`` between batches), so memory stays flat whatever the corpus size.
    """
    encoder = _Encoder(backend, text_column)
    buffer = np.zeros(0, dtype=dtype)
    buffer_start = 0  # absolute position of buffer[0] in the token stream
    next_start = 0  # absolute position where the next window starts
    total = 0  # tokens seen so far
    first = True
    for batch in source.iter(batch_size=batch_size):
        if text_column not in batch:
            raise ValueError(f"no text column {text_column!r}; the columns are {list(batch)}")
        pieces = [buffer]
        for ids in encoder.encode(batch[text_column]):
            if not ids:
                continue
            if eos is not None and not first:
                pieces.append(np.asarray([eos], dtype=dtype))
            pieces.append(np.asarray(ids, dtype=dtype))
            first = False
        if len(pieces) == 1:
            continue
        buffer = np.concatenate(pieces)
        total = buffer_start + buffer.size
        while next_start + max_length <= total:
            offset = next_start - buffer_start
            window = buffer[offset : offset + max_length].copy()
            yield {"input_ids": window, "labels": window}
            next_start += stride
        if next_start >= total:  # stride > max_length can jump past the tokens seen so far
            buffer, buffer_start = buffer[:0], total
        else:
            buffer, buffer_start = buffer[next_start - buffer_start :].copy(), next_start
    return total


def tokenize_and_window(
    dataset,
    tokenizer,
    max_length: int,
    stride: int | None = None,
    *,
    text_column: str = "text",
    num_proc: int | None = None,
    append_eos: bool = True,
    eos_token_id: int | None = None,
    n_positions: int | None = None,
    batch_size: int = 1000,
    dtype: str = "int32",
    return_stats: bool = False,
):
    """Tokenize a text dataset and cut the token stream into training windows (the book's ``GPTDatasetV1``).

    ``dataset``: a ``datasets.Dataset`` (or ``IterableDataset``) with a ``text_column``; ``tokenizer``: a fast
    tokenizer (``PreTrainedTokenizerFast``) or a ``tokenizers.Tokenizer``. Documents are tokenized without special
    tokens and joined by ``eos_token_id`` (default: the tokenizer's eos, ``<|endoftext|>``) when ``append_eos``; the
    stream is cut into windows of ``max_length`` tokens every ``stride`` tokens (default ``max_length``). See
    :func:`group_into_windows` for the exact window semantics and how the count compares with the book's.

    Returns a ``Dataset`` with ``input_ids`` and ``labels`` (equal), or for an ``IterableDataset`` input an
    ``IterableDataset`` yielding the same windows, built on the fly with a token buffer that carries over document
    boundaries. ``return_stats=True`` also returns a :class:`WindowStats` (``None`` when streaming).

    Raises ``ValueError`` before any work is wasted: ``max_length <= 1``, ``stride <= 0``, ``max_length >
    n_positions`` (when given), no text, or fewer tokens than one window (streaming: once the stream ends).
    """
    import datasets

    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise TypeError(
            f"pass one split (e.g. dataset['train']), not a dict of splits {list(dataset)}; "
            "build_pretraining_datasets windows every split"
        )
    max_length, stride = _check_window_args(max_length, stride, n_positions)
    if isinstance(dataset, datasets.IterableDataset):
        backend, eos = _backend_and_eos(tokenizer, eos_token_id, append_eos)
        windows = datasets.IterableDataset.from_generator(
            _checked_windows,
            features=_window_features(max_length, np.dtype(dtype).name),
            gen_kwargs=dict(
                source=dataset,
                backend=backend,
                eos=eos if append_eos else None,
                text_column=text_column,
                max_length=max_length,
                stride=stride,
                batch_size=batch_size,
                dtype=np.dtype(dtype).name,
            ),
        )
        return (windows, None) if return_stats else windows

    stream, n_docs = _token_stream(dataset, tokenizer, text_column, append_eos, eos_token_id, num_proc, batch_size)
    if stream.size < max_length:
        raise _too_short(stream.size, max_length)
    windows = group_into_windows(stream, max_length, stride, dtype=dtype)
    if not return_stats:
        return windows
    n = len(windows)
    stats = WindowStats(
        n_documents=n_docs,
        n_tokens=int(stream.size),
        n_windows=n,
        max_length=max_length,
        stride=stride,
        n_tail_tokens_dropped=int(stream.size - ((n - 1) * stride + max_length)),
    )
    return windows, stats


def _checked_windows(source, backend, eos, text_column, max_length, stride, batch_size, dtype):
    total = yield from _stream_windows(
        source, backend, eos, text_column, max_length, stride, batch_size, np.dtype(dtype)
    )
    if total == 0:
        raise ValueError("no text: the streamed documents are empty")
    if total < max_length:
        raise _too_short(total, max_length)


# ====================================================================================================================
# Convenience


def build_pretraining_datasets(
    tokenizer,
    max_length: int,
    stride: int | None = None,
    *,
    train_files: PathLike | Sequence[PathLike] | None = None,
    validation_files: PathLike | Sequence[PathLike] | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    text_column: str = "text",
    streaming: bool = False,
    validation_fraction: float = 0.1,
    validation_split_percentage: float | None = None,
    seed: int = 123,
    split_by: str = "auto",
    n_positions: int | None = None,
    num_proc: int | None = None,
    append_eos: bool = True,
    cache_dir: PathLike | None = None,
    default_corpus_max_chars: int | None = None,
    verbose: bool = True,
    return_stats: bool = False,
    **load_kwargs: Any,
):
    """Load text (:func:`load_text_datasets`) and window both splits (:func:`tokenize_and_window`).

    The book's ``create_dataloader_v1(train_data, max_length, stride)`` + ``create_dataloader_v1(val_data, ...,
    stride=max_length)`` of chapter 5, minus the ``DataLoader`` (the ``Trainer`` batches and shuffles): training
    windows use ``stride`` (default ``max_length``), validation windows always ``stride = max_length`` so that no
    validation token is counted twice. Logs (and with ``verbose`` prints) each split's documents, tokens and windows.

    Returns a ``DatasetDict`` (``IterableDatasetDict`` when streaming) of ``input_ids``/``labels`` windows, and with
    ``return_stats=True`` also ``{"train": WindowStats, "validation": WindowStats}`` (``None`` values when streaming).
    A split too short for one window raises ``ValueError`` naming the split.
    """
    import datasets

    max_length, stride = _check_window_args(max_length, stride, n_positions)
    raw = load_text_datasets(
        train_files,
        validation_files,
        dataset_name,
        dataset_config_name,
        text_column=text_column,
        streaming=streaming,
        validation_fraction=validation_fraction,
        validation_split_percentage=validation_split_percentage,
        seed=seed,
        split_by=split_by,
        cache_dir=cache_dir,
        default_corpus_max_chars=default_corpus_max_chars,
        **load_kwargs,
    )
    out, stats = {}, {}
    for split, split_stride in (("train", stride), ("validation", max_length)):
        try:
            out[split], stats[split] = tokenize_and_window(
                raw[split],
                tokenizer,
                max_length,
                split_stride,
                num_proc=num_proc,
                append_eos=append_eos,
                return_stats=True,
            )
        except ValueError as err:
            hint = ""
            if split == "validation":
                hint = " (use a larger validation_fraction, validation_files or a smaller max_length)"
            raise ValueError(f"{split} split: {err}{hint}") from err
        s = stats[split]
        if s is None:
            message = (
                f"{split}: streaming windows of {max_length} tokens, stride {split_stride} "
                "(counts unknown until read)"
            )
        else:
            message = (
                f"{split}: {s.n_documents:,} documents, {s.n_tokens:,} tokens -> {s.n_windows:,} windows of "
                f"{max_length} tokens (stride {split_stride}; {s.n_tail_tokens_dropped} tail tokens dropped)"
            )
        logger.info(message)
        if verbose:
            print(message)
    result = datasets.IterableDatasetDict(out) if streaming else datasets.DatasetDict(out)
    return (result, stats) if return_stats else result
