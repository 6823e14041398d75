"""Baselines a trained model must beat, and bits per byte, the unit that compares them across tokenizers.

- Pretraining: a unigram model predicts every token by its frequency in the training data, ignoring context, so a GPT
  that learned anything from context sits well below its loss. A general-purpose compressor (xz) is the other
  yardstick: the bits it needs for the validation text once it has seen the training text.
- Bits per byte: a loss in nats per token depends on the tokenizer (a larger vocabulary has fewer, harder tokens);
  total nats / ln 2 / the UTF-8 bytes of the text those tokens stand for does not, so it compares models with
  different vocabularies, and a model with a compressor.
"""

from __future__ import annotations

import lzma
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

XZ_PRESET = 9 | lzma.PRESET_EXTREME  # xz -9e: a 64 MiB dictionary, the strongest standard setting
XZ_DICTIONARY_BYTES = 64 * 2**20  # what preset 9 can look back over: older training text cannot help it


def _token_arrays(windows, column: str):
    for start in range(0, len(windows), 4096):
        yield np.asarray(windows[start : start + 4096][column], dtype=np.int64)


def unigram_loss(train_windows, eval_windows, vocab_size: int, column: str = "input_ids") -> float:
    """Cross-entropy (nats/token) on ``eval_windows`` of the add-one-smoothed token frequencies of
    ``train_windows``, scored on the same positions as the causal-LM loss (every token but each window's first)."""
    counts = np.ones(vocab_size, dtype=np.float64)  # add-one smoothing: unseen tokens keep a small probability
    for block in _token_arrays(train_windows, column):
        counts += np.bincount(block.ravel(), minlength=vocab_size)[:vocab_size]
    log_probs = np.log(counts / counts.sum())
    total, n = 0.0, 0
    for block in _token_arrays(eval_windows, column):
        targets = block[:, 1:].ravel()
        total -= float(log_probs[targets].sum())
        n += targets.size
    return total / n if n else math.nan


def token_byte_lengths(tokenizer) -> np.ndarray:
    """The number of UTF-8 bytes of text each token id stands for (index = id; 0 for special tokens such as the
    eos that joins documents: they stand for no text).

    Exact for byte-level BPE (ours and GPT-2's: each character of a token string is one byte, by GPT-2's
    ``bytes_to_unicode``), where the lengths of a text's tokens add up to ``len(text.encode())``; for other tokenizers
    an approximation: the bytes of each token decoded alone (a decoder may drop a word-start space there)."""
    from tokenizers import decoders
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    byte_level = isinstance(backend.decoder, decoders.ByteLevel)
    byte_chars = set(bytes_to_unicode().values())
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    lengths = np.zeros(len(tokenizer), dtype=np.int64)
    for token, i in tokenizer.get_vocab().items():
        if i in special:
            continue
        if byte_level and all(ch in byte_chars for ch in token):
            lengths[i] = len(token)
        elif byte_level:  # an added (non-special) token is stored as plain text
            lengths[i] = len(token.encode("utf-8"))
        else:
            lengths[i] = len(tokenizer.convert_tokens_to_string([token]).encode("utf-8"))
    return lengths


def scored_tokens_and_bytes(windows, byte_lengths: np.ndarray, column: str = "input_ids") -> tuple[int, int]:
    """``(tokens, bytes)`` that the causal-LM loss on ``windows`` is an average over: every token of a window but its
    first (the labels the model shifts), and the UTF-8 bytes of those tokens (:func:`token_byte_lengths`).

    The pretraining recipe's validation windows do not overlap (stride = max_length), so each token is scored at most
    once; the first token of each window, and the tail after the last window, are not scored and their bytes not
    counted. Training windows with a stride < max_length score tokens more than once, and they are counted so."""
    tokens, n_bytes = 0, 0
    for block in _token_arrays(windows, column):
        targets = block[:, 1:]
        tokens += targets.size
        n_bytes += int(byte_lengths[targets].sum())
    return tokens, n_bytes


def bits_per_byte(nats_per_token: float, tokens: int, n_bytes: int) -> float:
    """A mean loss over ``tokens`` tokens in nats/token as bits per byte of the ``n_bytes`` of text they stand for:
    total nats / ln 2 / bytes."""
    if n_bytes <= 0:
        return math.nan
    return nats_per_token * tokens / math.log(2) / n_bytes


def _joined_bytes(texts) -> bytes:
    return "\n".join(text for text in texts if text).encode("utf-8")


def last_documents(dataset, column: str = "text", max_bytes: int = XZ_DICTIONARY_BYTES) -> list[str]:
    """The last documents of an in-memory ``datasets.Dataset`` that together reach ``max_bytes`` of UTF-8 text, in
    order: all that :func:`xz_bits_per_byte` can use of a training split, read without loading the rest."""
    kept, total, end = [], 0, len(dataset)
    while end > 0 and total < max_bytes:
        start = max(0, end - 1000)
        for text in reversed(dataset[start:end][column]):
            kept.append(text or "")
            total += len(kept[-1].encode("utf-8"))
            if total >= max_bytes:
                break
        end = start
    return kept[::-1]


def xz_bits_per_byte(train_texts, validation_texts, preset: int = XZ_PRESET) -> float:
    """The general-purpose compressor baseline: the extra bits xz (Python's ``lzma``, ``preset``; default ``-9e``)
    needs for the validation documents once it has read the training documents, per byte of validation text::

        (len(xz(train + val)) - len(xz(train))) * 8 / len(val)

    Documents are UTF-8, joined by newlines (train and val by one more). Only the last :data:`XZ_DICTIONARY_BYTES`
    of the training text are given: preset 9 cannot look further back, and a large corpus stays quick. The two
    compressions run in two threads (``lzma`` releases the GIL)."""
    train = _joined_bytes(train_texts)[-XZ_DICTIONARY_BYTES:]
    validation = _joined_bytes(validation_texts)
    if not validation:
        return math.nan
    with ThreadPoolExecutor(2) as pool:
        alone, both = pool.map(lambda data: len(lzma.compress(data, preset=preset)),
                               [train, train + b"\n" + validation])
    return (both - alone) * 8 / len(validation)
