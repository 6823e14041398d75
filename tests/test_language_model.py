"""Bits per byte and the xz baseline (hfgpt.evaluation.language_model): hand-made cases with known answers."""

from __future__ import annotations

import math
import random

import datasets
import numpy as np
import pytest

from hfgpt.data import group_into_windows, token_stream
from hfgpt.tokenization import train_bpe_tokenizer
from hfgpt.evaluation.language_model import (
    bits_per_byte,
    last_documents,
    scored_tokens_and_bytes,
    token_byte_lengths,
    unigram_loss,
    xz_bits_per_byte,
)

DOCUMENTS = [
    "The return value of a function is what it gives back.",
    "Naïve café prices rose by 5 € in Zürich; 東京 stayed flat.",  # 2-, 3-byte characters
    "A third document, plain ASCII, with some more words in it.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer([DOCUMENTS * 20], vocab_size=300)


def test_bits_per_byte_arithmetic():
    # 10 tokens at ln 2 nats each are 10 bits; over 5 bytes of text that is 2 bits per byte
    assert bits_per_byte(math.log(2), tokens=10, n_bytes=5) == pytest.approx(2.0)
    # a loss of 4.184 nats/token at 3.5 bytes/token: 4.184 / ln 2 / 3.5
    assert bits_per_byte(4.184, 1000, 3500) == pytest.approx(1.7246, abs=1e-4)
    assert math.isnan(bits_per_byte(1.0, 0, 0))


def test_token_byte_lengths_add_up_to_the_text(tokenizer):
    lengths = token_byte_lengths(tokenizer)
    assert lengths.shape == (len(tokenizer),)
    assert lengths[tokenizer.eos_token_id] == 0  # the eos joining documents stands for no text
    for text in DOCUMENTS:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert int(lengths[ids].sum()) == len(text.encode("utf-8")), text
    stream = token_stream(datasets.Dataset.from_dict({"text": DOCUMENTS}), tokenizer)
    assert int(lengths[stream].sum()) == sum(len(t.encode("utf-8")) for t in DOCUMENTS)


def test_scored_tokens_skip_each_window_first_token(tokenizer):
    lengths = token_byte_lengths(tokenizer)
    stream = token_stream(datasets.Dataset.from_dict({"text": DOCUMENTS}), tokenizer)
    windows = group_into_windows(stream, max_length=8)  # side by side, as the recipe's validation windows
    n = len(windows)
    tokens, n_bytes = scored_tokens_and_bytes(windows, lengths)
    assert tokens == n * 7
    starts = np.arange(n) * 8
    scored = np.concatenate([stream[s + 1 : s + 8] for s in starts])
    assert n_bytes == int(lengths[scored].sum())
    # all the text but the first token of each window, the eos separators and the dropped tail
    dropped = np.concatenate([stream[starts], stream[n * 8 :]])
    assert n_bytes == sum(len(t.encode("utf-8")) for t in DOCUMENTS) - int(lengths[dropped].sum())
    # overlapping windows (stride < max_length) score tokens twice, and count their bytes twice
    overlapping = group_into_windows(stream, max_length=8, stride=4)
    assert scored_tokens_and_bytes(overlapping, lengths)[0] == len(overlapping) * 7


def test_unigram_bits_per_byte_uses_the_same_tokens(tokenizer):
    stream = token_stream(datasets.Dataset.from_dict({"text": DOCUMENTS * 5}), tokenizer)
    windows = group_into_windows(stream, max_length=16)
    loss = unigram_loss(windows, windows, len(tokenizer))
    tokens, n_bytes = scored_tokens_and_bytes(windows, token_byte_lengths(tokenizer))
    # a unigram model over byte-level tokens: between 0 and 8 bits per byte, and the same total bits either way
    bpb = bits_per_byte(loss, tokens, n_bytes)
    assert 0 < bpb < 8
    assert bpb * n_bytes == pytest.approx(loss * tokens / math.log(2))


def test_xz_baseline_repetitive_vs_random():
    rng = random.Random(0)
    train = [" ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(2000)) for _ in range(5)]
    seen = [train[2][1000:6000]]  # text the compressor has read already
    noise = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5000))]  # log2(26) = 4.7 bits/char
    repetitive, random_text = xz_bits_per_byte(train, seen), xz_bits_per_byte(train, noise)
    assert repetitive < 0.3, repetitive
    assert 4.0 < random_text < 6.0, random_text
    assert math.isnan(xz_bits_per_byte(train, [""]))


def test_last_documents_reads_the_tail():
    ds = datasets.Dataset.from_dict({"text": [f"{i:04d}" for i in range(2500)]})  # 4 bytes each
    assert last_documents(ds, "text", max_bytes=10) == ["2497", "2498", "2499"]
    assert last_documents(ds, "text", max_bytes=10**9) == ds["text"]
