"""Token windows for pretraining: the book's chapter 2 ``GPTDatasetV1``, as a ``datasets`` step.

Documents are tokenized in a batched ``Dataset.map`` and joined with the eos token; ``labels == input_ids`` because
Hugging Face models shift the labels in ``forward``, so a window scores ``max_length - 1`` predictions (the book's
reads ``max_length + 1`` tokens). A streamed split gives the same windows from a token buffer.
"""

from __future__ import annotations

import logging

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import HfgptInputError
from .text import check_text_column

logger = logging.getLogger(__name__)
STREAM_BATCH_SIZE = 1000  # documents tokenized at a time when streaming


def _is_count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_window_args(max_length, stride=None) -> tuple[int, int]:
    """``(max_length, stride)`` as ints, ``stride=None`` meaning ``max_length`` (windows side by side)."""
    if not _is_count(max_length) or max_length < 2:
        raise HfgptInputError(f"--max_length must be at least 2 tokens, got {max_length!r}: the model shifts the "
                              "labels by one position, so one token has nothing to predict")
    stride = max_length if stride is None else stride
    if not _is_count(stride) or stride < 1:
        raise HfgptInputError(f"--stride must be a positive number of tokens between window starts, got {stride!r}")
    return int(max_length), int(stride)


def _backend(tokenizer):
    """The Rust tokenizer behind ``tokenizer`` (a copy when it truncates or pads) and its eos id."""
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise HfgptInputError(f"a fast tokenizer is needed (PreTrainedTokenizerFast or tokenizers.Tokenizer), "
                              f"got {type(tokenizer)}")
    eos = backend.token_to_id("<|endoftext|>") if backend is tokenizer else tokenizer.eos_token_id
    if eos is None:
        raise HfgptInputError("the tokenizer has no eos token to join documents with: set tokenizer.eos_token")
    if backend.truncation is not None or backend.padding is not None:
        backend = Tokenizer.from_str(backend.to_str())  # the caller's tokenizer stays as it is
        backend.no_truncation()
        backend.no_padding()
    return backend, eos


def _encode(batch, backend, column):
    texts = [text or "" for text in batch[column]]
    return {"input_ids": [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]}


def token_stream(dataset, tokenizer, *, text_column: str = "text", num_proc: int | None = None) -> np.ndarray:
    """All documents' tokens joined with eos in one int32 array: the book's ``tokenizer.encode``."""
    backend, eos = _backend(tokenizer)
    check_text_column(dataset, text_column, "the dataset")
    if len(dataset) == 0:
        raise HfgptInputError("no text: the dataset has no rows")
    tokenized = dataset.map(
        _encode,
        batched=True,
        fn_kwargs={"backend": backend, "column": text_column},
        remove_columns=dataset.column_names,
        features=datasets.Features({"input_ids": datasets.List(datasets.Value("int32"))}),
        num_proc=num_proc,
        desc="Tokenizing",
    )
    ids = tokenized.data.column("input_ids").combine_chunks()
    values = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    if values.size == 0:
        raise HfgptInputError(f"no text: all {len(dataset)} documents are empty")
    lengths = pc.list_value_length(ids).to_numpy(zero_copy_only=False)
    ends = np.cumsum(lengths[lengths > 0])[:-1]  # where each non-empty document but the last ends
    return np.insert(values, ends, np.int32(eos))


def _check_enough(n_tokens: int, max_length: int, where: str) -> None:
    if n_tokens < max_length:
        raise HfgptInputError(f"{where} has {n_tokens} tokens, fewer than max_length={max_length}: not even one "
                              "window; use more text (or a larger validation_fraction) or a smaller max_length")


def _features(max_length: int) -> datasets.Features:
    window = datasets.List(datasets.Value("int32"), length=max_length)
    return datasets.Features({"input_ids": window, "labels": window})


def group_into_windows(token_ids, max_length: int, stride: int | None = None) -> datasets.Dataset:
    """Windows of ``max_length`` tokens every ``stride`` tokens, as ``input_ids`` and equal ``labels``: window ``k`` is
    the book's ``input_ids[k]``; there is one more than the book's when ``(N - L) % S == 0``; the tail is dropped."""
    max_length, stride = check_window_args(max_length, stride)
    stream = np.asarray(token_ids, dtype=np.int32)
    if stream.size == 0:
        raise HfgptInputError("no text: the token stream is empty")
    _check_enough(stream.size, max_length, "the token stream")
    windows = np.ascontiguousarray(sliding_window_view(stream, max_length)[::stride])
    column = pa.FixedSizeListArray.from_arrays(pa.array(windows.reshape(-1)), max_length)
    return datasets.Dataset.from_dict({"input_ids": column, "labels": column}, features=_features(max_length))


def _stream_windows(source, backend, eos, text_column, max_length, stride, where):
    """The windows of ``group_into_windows(token_stream(source))``, from a buffer of the tokens still needed."""
    buffer = np.zeros(0, np.int32)
    start = -1  # stream position of buffer[0]: every document is read as eos + its tokens, the first eos sits at -1
    next_start = end = 0
    for batch in source.iter(batch_size=STREAM_BATCH_SIZE):
        if text_column not in batch:
            raise HfgptInputError(f"{where}: no text column {text_column!r}; the columns are {list(batch)}")
        documents = [[eos, *ids] for ids in _encode(batch, backend, text_column)["input_ids"] if ids]
        if not documents:
            continue
        buffer = np.concatenate([buffer, *(np.asarray(ids, np.int32) for ids in documents)])
        end = start + buffer.size
        while next_start + max_length <= end:
            window = buffer[next_start - start : next_start - start + max_length]
            yield {"input_ids": window, "labels": window}
            next_start += stride
        keep_from = min(next_start, end) - start  # no later window needs the tokens before next_start
        buffer, start = buffer[keep_from:], start + keep_from
    if end == 0:
        raise HfgptInputError(f"no text: the documents of {where} are empty")
    _check_enough(end, max_length, where)


def _tokenize_and_window(dataset, tokenizer, max_length, stride, text_column, num_proc, where):
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise HfgptInputError(f"pass one split (e.g. dataset['train']), not the splits {list(dataset)}: "
                              "build_pretraining_datasets windows every split")
    max_length, stride = check_window_args(max_length, stride)
    if isinstance(dataset, datasets.IterableDataset):
        backend, eos = _backend(tokenizer)
        logger.info("%s: streamed windows of %d tokens, stride %d", where, max_length, stride)
        return datasets.IterableDataset.from_generator(
            _stream_windows,
            features=_features(max_length),
            gen_kwargs=dict(source=dataset, backend=backend, eos=eos, text_column=text_column,
                            max_length=max_length, stride=stride, where=where),
        )
    stream = token_stream(dataset, tokenizer, text_column=text_column, num_proc=num_proc)
    _check_enough(stream.size, max_length, where)
    windows = group_into_windows(stream, max_length, stride)
    dropped = stream.size - (len(windows) - 1) * stride - max_length
    logger.info(f"{where}: {len(dataset):,} documents, {stream.size:,} tokens -> {len(windows):,} windows of "
                f"{max_length} tokens (stride {stride}; {dropped} tail tokens dropped)")
    return windows


def tokenize_and_window(dataset, tokenizer, max_length: int, stride: int | None = None, *, text_column: str = "text",
                        num_proc: int | None = None):
    """:func:`token_stream` then :func:`group_into_windows` for one split (or, lazily, a streamed split)."""
    return _tokenize_and_window(dataset, tokenizer, max_length, stride, text_column, num_proc, "the dataset")


def build_pretraining_datasets(raw, tokenizer, max_length: int, stride: int | None = None, *, text_column: str = "text",
                               num_proc: int | None = None):
    """Windows of ``raw["train"]`` every ``stride`` tokens and of ``raw["validation"]`` every ``max_length`` (no token
    scored twice): the book's two ``create_dataloader_v1`` calls of chapter 5, minus the ``DataLoader``."""
    out = {}
    for split, step in (("train", stride), ("validation", max_length)):
        out[split] = _tokenize_and_window(raw[split], tokenizer, max_length, step, text_column, num_proc,
                                          f"the {split} split")
    streamed = isinstance(out["train"], datasets.IterableDataset)
    return datasets.IterableDatasetDict(out) if streamed else datasets.DatasetDict(out)
