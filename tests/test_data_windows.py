"""Chapter 2 sliding windows (GPTDatasetV1) as a datasets step: hfgpt.data.windows."""

import json
import logging

import datasets
import numpy as np
import pytest
import torch

from hfgpt.data import (
    build_pretraining_datasets,
    check_window_args,
    default_corpus,
    group_into_windows,
    load_text_datasets,
    token_stream,
    tokenize_and_window,
)
from hfgpt.data import windows as windows_module
from hfgpt.errors import HfgptInputError
from hfgpt.tokenization import train_bpe_tokenizer

EOT = "<|endoftext|>"


pytestmark = pytest.mark.usefixtures("isolated_datasets")


@pytest.fixture(scope="module")
def docs():
    """Real English documents (pydoc topics), small."""
    return default_corpus(max_chars=60_000)


@pytest.fixture(scope="module")
def tokenizer(docs):
    return train_bpe_tokenizer(docs, vocab_size=500, min_frequency=0)


class BookGPTDatasetV1:
    """Listing 2.5 of the book (tokenizer.encode instead of tiktoken's, lists instead of tensors)."""

    def __init__(self, txt, tokenizer, max_length, stride, token_ids=None):
        self.input_ids = []
        self.target_ids = []
        if token_ids is None:
            token_ids = tokenizer.encode(txt)
        token_ids = list(token_ids)
        assert len(token_ids) > max_length, "Number of tokenized inputs must at least be equal to max_length+1"
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(token_ids[i : i + max_length])
            self.target_ids.append(token_ids[i + 1 : i + max_length + 1])

    def __len__(self):
        return len(self.input_ids)


def text_ds(texts):
    return datasets.Dataset.from_dict({"text": list(texts)})


def rows(dataset, column="input_ids"):
    return [list(map(int, r[column])) for r in dataset]


def n_windows(n_tokens, max_length, stride):
    return (n_tokens - max_length) // stride + 1


# --------------------------------------------------------------------------------------------------------------------
# Window semantics


@pytest.mark.parametrize("max_length,stride", [(8, 8), (8, 4), (8, 1), (16, 5), (8, 12), (32, 32)])
def test_windows_match_book_gptdatasetv1(docs, tokenizer, max_length, stride):
    texts = docs[:6]
    book = BookGPTDatasetV1(EOT.join(texts), tokenizer, max_length, stride)
    ours = tokenize_and_window(text_ds(texts), tokenizer, max_length, stride)
    stream = tokenizer.encode(EOT.join(texts))
    n = len(stream)
    extra = int((n - max_length) % stride == 0)
    assert len(ours) == len(book) + extra == n_windows(n, max_length, stride)
    ours_inputs = rows(ours)
    assert ours_inputs[: len(book)] == book.input_ids  # same windows, same first tokens
    for k, target in enumerate(book.target_ids):  # the book's targets = our window shifted by one
        assert target[:-1] == ours_inputs[k][1:]
    assert rows(ours, "labels") == ours_inputs  # the model shifts the labels itself


@pytest.mark.parametrize("n", [40, 41, 42, 43, 44])
def test_window_count_off_by_one_is_exactly_documented(n):
    max_length, stride = 8, 4
    stream = np.arange(n)
    ours = group_into_windows(stream, max_length, stride)
    book = BookGPTDatasetV1(None, None, max_length, stride, token_ids=stream)
    assert len(ours) == (n - max_length) // stride + 1
    assert len(book) == -(-(n - max_length) // stride)
    assert len(ours) - len(book) == int((n - max_length) % stride == 0)
    assert [w[0] for w in rows(ours)] == list(range(0, n - max_length + 1, stride))  # the window starts


def test_overlap_and_no_overlap():
    stream = np.arange(1000) % 317
    w = np.array(rows(group_into_windows(stream, 16, 6)))
    assert (w[:-1, 6:] == w[1:, :10]).all()  # neighbours share max_length - stride tokens
    assert (w[:, 0] == stream[np.arange(len(w)) * 6]).all()
    w = np.array(rows(group_into_windows(stream, 16)))  # stride defaults to max_length
    assert len(w) == 1000 // 16
    assert (w.reshape(-1) == stream[: len(w) * 16]).all()  # consecutive, no overlap, no gap
    w = np.array(rows(group_into_windows(stream, 10, 25)))  # stride > max_length skips tokens
    assert (w[:, 0] == np.arange(len(w)) * 25 % 317).all()


def test_eos_joins_documents(docs, tokenizer):
    texts = [docs[0][:500], "", docs[1][:300], docs[2][:700]]
    stream = token_stream(text_ds(texts), tokenizer)
    expected = tokenizer(EOT.join(t for t in texts if t), add_special_tokens=False)["input_ids"]
    assert stream.tolist() == expected
    assert stream.dtype == np.int32
    assert (stream == tokenizer.eos_token_id).sum() == 2  # between the 3 non-empty documents, not after the last


def test_labels_equal_input_ids_and_collate_to_int64(docs, tokenizer):
    from transformers import default_data_collator

    ds = tokenize_and_window(text_ds(docs[:3]), tokenizer, 16, 8)
    assert ds.column_names == ["input_ids", "labels"]
    batch = default_data_collator([ds[0], ds[1], ds[2]])  # what the Trainer does with the default format
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.int64
    assert batch["input_ids"].shape == (3, 16)
    assert (batch["input_ids"] == batch["labels"]).all()
    torch_rows = ds.with_format("torch")[:4]
    assert torch_rows["labels"].dtype == torch.int64 and torch_rows["labels"].shape == (4, 16)


def test_raw_tokenizers_object_and_backend_truncation_is_ignored(docs, tokenizer):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    raw.enable_truncation(max_length=5)  # would cut every document to 5 tokens if it leaked into the pipeline
    ours = token_stream(text_ds(docs[:2]), raw)
    assert ours.tolist() == tokenizer.encode(EOT.join(docs[:2]))
    assert raw.truncation is not None  # the caller's tokenizer is left as it was


# --------------------------------------------------------------------------------------------------------------------
# Streaming


@pytest.mark.parametrize("max_length,stride,batch_size", [(32, 32, 1000), (32, 7, 2), (8, 20, 1), (64, 1, 3)])
def test_streaming_windows_equal_non_streaming(docs, tokenizer, max_length, stride, batch_size, monkeypatch):
    monkeypatch.setattr(windows_module, "STREAM_BATCH_SIZE", batch_size)  # windows cross the batches' edges
    ds = text_ds([docs[0][:3000], "", docs[1][:1500], docs[2][:40], docs[3][:2500]])
    expected = rows(tokenize_and_window(ds, tokenizer, max_length, stride))
    streamed = tokenize_and_window(ds.to_iterable_dataset(), tokenizer, max_length, stride)
    assert isinstance(streamed, datasets.IterableDataset)
    got = [list(map(int, r["input_ids"])) for r in streamed]
    assert got == expected
    assert [list(map(int, r["labels"])) for r in streamed] == expected  # re-iterable: the buffer restarts


def test_streaming_from_files_equals_non_streaming(tmp_path, docs, tokenizer):
    for i in range(3):
        with open(tmp_path / f"part{i}.jsonl", "w") as fh:
            for doc in docs[i * 4 : i * 4 + 4]:
                fh.write(json.dumps({"text": doc}) + "\n")
    files = dict(train_files=str(tmp_path / "part[01].jsonl"), validation_files=str(tmp_path / "part2.jsonl"))
    eager = build_pretraining_datasets(load_text_datasets(**files), tokenizer, 32, 16)
    lazy = build_pretraining_datasets(load_text_datasets(**files, streaming=True), tokenizer, 32, 16)
    assert isinstance(lazy, datasets.IterableDatasetDict)
    for split in ("train", "validation"):
        assert [list(map(int, r["input_ids"])) for r in lazy[split]] == rows(eager[split])


def test_streamed_default_corpus_equals_in_memory(tokenizer):
    eager = build_pretraining_datasets(load_text_datasets(default_corpus_max_chars=50_000), tokenizer, 32)
    lazy = build_pretraining_datasets(load_text_datasets(default_corpus_max_chars=50_000, streaming=True), tokenizer, 32)
    for split in ("train", "validation"):
        assert [list(map(int, r["input_ids"])) for r in lazy[split]] == rows(eager[split])


# --------------------------------------------------------------------------------------------------------------------
# build_pretraining_datasets


def test_train_stride_and_validation_without_overlap(tmp_path, tokenizer, docs):
    (tmp_path / "the-story.txt").write_text("\n\n".join(docs[:3]))  # one file, one document: like the-verdict.txt
    raw = load_text_datasets(str(tmp_path / "the-story.txt"), validation_fraction=0.1)
    out = build_pretraining_datasets(raw, tokenizer, 16, 4)
    assert isinstance(out, datasets.DatasetDict) and set(out) == {"train", "validation"}
    assert len(out["train"]) == n_windows(len(token_stream(raw["train"], tokenizer)), 16, 4)
    assert len(out["validation"]) == n_windows(len(token_stream(raw["validation"], tokenizer)), 16, 16)


def test_tokenizer_binds_late_and_text_column_is_passed_on(tmp_path, docs):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"body": d}) + "\n" for d in docs[:12]))
    raw = load_text_datasets(str(path), text_column="body", validation_fraction=0.25)
    tokenizer = train_bpe_tokenizer(raw["train"]["body"], vocab_size=400)  # trained between the two calls
    out = build_pretraining_datasets(raw, tokenizer, 16, text_column="body")
    assert rows(out["validation"])[0] == tokenizer.encode(raw["validation"][0]["body"])[:16]


def test_build_pretraining_datasets_logs_counts(tokenizer, caplog):
    raw = load_text_datasets(default_corpus_max_chars=100_000)
    with caplog.at_level(logging.INFO, logger="hfgpt.data.windows"):
        out = build_pretraining_datasets(raw, tokenizer, 64, 32)
    assert f"the train split: {len(raw['train']):,} documents" in caplog.text
    assert f"-> {len(out['train']):,} windows of 64 tokens (stride 32" in caplog.text
    assert f"-> {len(out['validation']):,} windows of 64 tokens (stride 64" in caplog.text


# --------------------------------------------------------------------------------------------------------------------
# Bad input


def test_check_window_args():
    assert check_window_args(16) == (16, 16)
    assert check_window_args(np.int64(16), 4) == (16, 4)
    for max_length in (1, 0, True, 8.0, "8"):
        with pytest.raises(HfgptInputError, match=f"max_length must be at least 2 tokens, got {max_length!r}"):
            check_window_args(max_length)
    for stride in (0, -4, False, 2.5):
        with pytest.raises(HfgptInputError, match=f"stride must be a positive number.*got {stride!r}"):
            check_window_args(16, stride)


def test_bad_window_arguments(tokenizer, docs):
    ds = text_ds(docs[:2])
    with pytest.raises(HfgptInputError, match="stride must be a positive number.*got 0"):
        tokenize_and_window(ds, tokenizer, 16, 0)
    with pytest.raises(HfgptInputError, match="stride must be a positive number.*got -4"):
        group_into_windows(np.arange(100), 16, -4)
    with pytest.raises(HfgptInputError, match="max_length must be at least 2 tokens, got 1"):
        tokenize_and_window(ds, tokenizer, 1)
    with pytest.raises(HfgptInputError, match="max_length must be at least 2 tokens, got 0"):
        group_into_windows(np.arange(100), 0)
    with pytest.raises(HfgptInputError, match="stride must be a positive number.*got 0"):
        build_pretraining_datasets({"train": ds, "validation": ds}, tokenizer, 16, 0)
    with pytest.raises(HfgptInputError, match="pass one split"):
        tokenize_and_window(datasets.DatasetDict({"train": ds}), tokenizer, 16)
    with pytest.raises(HfgptInputError, match="a fast tokenizer is needed"):
        tokenize_and_window(ds, object(), 16)
    with pytest.raises(HfgptInputError, match=r"no text column 'body'; the columns are \['text'\]"):
        tokenize_and_window(ds, tokenizer, 16, text_column="body")


def test_no_text_and_too_few_tokens(tokenizer):
    with pytest.raises(HfgptInputError, match="no text"):
        tokenize_and_window(text_ds([]), tokenizer, 8)
    with pytest.raises(HfgptInputError, match="no text: all 3 documents are empty"):
        tokenize_and_window(text_ds(["", "", ""]), tokenizer, 8)
    with pytest.raises(HfgptInputError, match="no text"):
        group_into_windows(np.zeros(0, dtype=np.int32), 8)
    n = len(tokenizer.encode("A short text."))
    with pytest.raises(HfgptInputError, match=f"has {n} tokens, fewer than max_length=256"):
        tokenize_and_window(text_ds(["A short text."]), tokenizer, 256)
    with pytest.raises(HfgptInputError, match=f"has {n} tokens, fewer than max_length=256"):
        list(tokenize_and_window(text_ds(["A short text."]).to_iterable_dataset(), tokenizer, 256))
    with pytest.raises(HfgptInputError, match="no text"):
        list(tokenize_and_window(text_ds(["", ""]).to_iterable_dataset(), tokenizer, 8))


def test_validation_split_too_short_names_the_split(tmp_path, tokenizer):
    (tmp_path / "t.txt").write_text("word " * 300)  # ~300 tokens: 10% tail ~ 30 tokens < 64
    raw = load_text_datasets(str(tmp_path / "t.txt"), validation_fraction=0.1)
    with pytest.raises(HfgptInputError, match=r"the validation split has \d+ tokens, fewer than max_length=64"):
        build_pretraining_datasets(raw, tokenizer, 64)
    streamed = datasets.IterableDatasetDict({split: ds.to_iterable_dataset() for split, ds in raw.items()})
    with pytest.raises(HfgptInputError, match=r"the validation split has \d+ tokens, fewer than max_length=64"):
        list(build_pretraining_datasets(streamed, tokenizer, 64)["validation"])


def test_no_eos_token_is_a_clear_error(docs):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(docs[:2], trainers.BpeTrainer(vocab_size=300, show_progress=False))
    with pytest.raises(HfgptInputError, match="no eos token"):
        tokenize_and_window(text_ds(docs[:2]), PreTrainedTokenizerFast(tokenizer_object=tok), 8)
