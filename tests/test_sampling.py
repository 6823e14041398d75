"""Chapter 2 data sampling (GPTDatasetV1) as a datasets pipeline: hfgpt.data.sampling and hfgpt.data.corpus."""

import json
import os
import time

import datasets
import numpy as np
import pytest

from hfgpt.data import corpus as corpus_module
from hfgpt.data import (
    build_pretraining_datasets,
    default_corpus,
    default_corpus_dataset,
    group_into_windows,
    load_text_datasets,
    num_windows,
    token_stream,
    tokenize_and_window,
    window_starts,
)

EOT = "<|endoftext|>"


@pytest.fixture(autouse=True, scope="module")
def _quiet_progress_bars():
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    yield
    if was_enabled:
        datasets.enable_progress_bars()


# --------------------------------------------------------------------------------------------------------------------
# Fixtures and the book's reference implementation


@pytest.fixture(scope="module")
def docs():
    """Real English documents (pydoc topics), small."""
    return default_corpus(max_chars=60_000)


@pytest.fixture(scope="module")
def tokenizer(docs):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=[EOT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, pad_token=EOT)


@pytest.fixture
def hf_cache(tmp_path):
    return str(tmp_path / "hf-datasets-cache")


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
    assert len(ours) == len(book) + extra == num_windows(n, max_length, stride)
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
    assert list(window_starts(n, max_length, stride)) == list(range(0, n - max_length + 1, stride))


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
    plain = token_stream(text_ds(texts), tokenizer, append_eos=False)
    assert plain.tolist() == sum((tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts), [])


def test_labels_equal_input_ids_and_collate_to_int64(docs, tokenizer):
    from transformers import default_data_collator

    ds = tokenize_and_window(text_ds(docs[:3]), tokenizer, 16, 8)
    assert ds.column_names == ["input_ids", "labels"]
    batch = default_data_collator([ds[0], ds[1], ds[2]])  # what the Trainer does with the default format
    assert batch["input_ids"].dtype == batch["labels"].dtype == __import__("torch").int64
    assert batch["input_ids"].shape == (3, 16)
    assert (batch["input_ids"] == batch["labels"]).all()
    torch_rows = ds.with_format("torch")[:4]
    assert torch_rows["labels"].dtype == __import__("torch").int64 and torch_rows["labels"].shape == (4, 16)


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
def test_streaming_windows_equal_non_streaming(docs, tokenizer, max_length, stride, batch_size):
    ds = text_ds([docs[0][:3000], "", docs[1][:1500], docs[2][:40], docs[3][:2500]])
    expected = rows(tokenize_and_window(ds, tokenizer, max_length, stride))
    streamed = tokenize_and_window(ds.to_iterable_dataset(), tokenizer, max_length, stride, batch_size=batch_size)
    assert isinstance(streamed, datasets.IterableDataset)
    got = [list(map(int, r["input_ids"])) for r in streamed]
    assert got == expected
    assert [list(map(int, r["labels"])) for r in streamed] == expected  # re-iterable: the buffer restarts


def test_streaming_from_files_equals_non_streaming(tmp_path, docs, tokenizer, hf_cache):
    for i in range(3):
        with open(tmp_path / f"part{i}.jsonl", "w") as fh:
            for doc in docs[i * 4 : i * 4 + 4]:
                fh.write(json.dumps({"text": doc}) + "\n")
    kwargs = dict(
        train_files=str(tmp_path / "part[01].jsonl"), validation_files=str(tmp_path / "part2.jsonl"), cache_dir=hf_cache
    )
    eager = build_pretraining_datasets(tokenizer, 32, 16, verbose=False, **kwargs)
    lazy = build_pretraining_datasets(tokenizer, 32, 16, streaming=True, verbose=False, **kwargs)
    assert isinstance(lazy, datasets.IterableDatasetDict)
    for split in ("train", "validation"):
        assert [list(map(int, r["input_ids"])) for r in lazy[split]] == rows(eager[split])


def test_streaming_split_is_reproducible(tmp_path, docs, hf_cache):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"document {i}: {d[:50]}"}) + "\n" for i, d in enumerate(docs[:40])))

    def split(seed):
        dd = load_text_datasets(str(path), streaming=True, seed=seed, validation_fraction=0.25, cache_dir=hf_cache)
        return [r["text"] for r in dd["train"]], [r["text"] for r in dd["validation"]]

    train, val = split(1)
    assert split(1) == (train, val)
    assert split(2) != (train, val)
    assert sorted(train + val) == sorted(f"document {i}: {d[:50]}" for i, d in enumerate(docs[:40]))
    assert 0 < len(val) < 40


# --------------------------------------------------------------------------------------------------------------------
# Loading local files


def test_local_file_formats(tmp_path, docs, hf_cache):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [d[:400] for d in docs[:6]]
    (tmp_path / "a.txt").write_text(texts[0])
    (tmp_path / "b.txt").write_text(texts[1])
    with open(tmp_path / "c.jsonl", "w") as fh:
        for i, t in enumerate(texts[:3]):
            fh.write(json.dumps({"id": i, "body": t}) + "\n")
    pq.write_table(pa.table({"body": texts[3:], "n": [1, 2, 3]}), tmp_path / "d.parquet")
    datasets.Dataset.from_dict({"body": texts[:2], "label": [0, 1]}).to_csv(str(tmp_path / "e.csv"), index=False)

    txt = load_text_datasets(str(tmp_path / "*.txt"), validation_files=str(tmp_path / "b.txt"), cache_dir=hf_cache)
    # a glob; one document per txt file, as the book reads the-verdict.txt
    assert list(txt["train"]["text"]) == texts[:2]
    assert list(txt["validation"]["text"]) == [texts[1]]
    kw = dict(validation_files=str(tmp_path / "e.csv"), text_column="body", cache_dir=hf_cache)
    jsonl = load_text_datasets(str(tmp_path / "c.jsonl"), **kw)
    assert jsonl["train"].column_names == ["text"] and list(jsonl["train"]["text"]) == texts[:3]
    assert list(jsonl["validation"]["text"]) == texts[:2]  # csv
    parquet = load_text_datasets([tmp_path / "d.parquet"], **kw)
    assert list(parquet["train"]["text"]) == texts[3:]


def test_missing_files_and_bad_formats(tmp_path, hf_cache):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_text_datasets(missing, cache_dir=hf_cache)
    with pytest.raises(FileNotFoundError, match=r"no file matches the pattern .*\*\.jsonl"):
        load_text_datasets(str(tmp_path / "*.jsonl"), cache_dir=hf_cache)
    (tmp_path / "data.xyz").write_text("hello")
    with pytest.raises(ValueError, match=r"'\.xyz'.*supported: \.txt.*\.jsonl.*\.parquet"):
        load_text_datasets(str(tmp_path / "data.xyz"), cache_dir=hf_cache)
    (tmp_path / "rows.jsonl").write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    with pytest.raises(ValueError, match=r"no text column 'text'; the columns are \['body', 'id'\]"):
        load_text_datasets(str(tmp_path / "rows.jsonl"), cache_dir=hf_cache)
    with pytest.raises(ValueError, match=r"'id' holds .*int64.*not text"):
        load_text_datasets(str(tmp_path / "rows.jsonl"), text_column="id", cache_dir=hf_cache)
    (tmp_path / "ok.txt").write_text("hello")
    with pytest.raises(ValueError, match="mix formats"):
        load_text_datasets([tmp_path / "ok.txt", tmp_path / "rows.jsonl"], cache_dir=hf_cache)


# --------------------------------------------------------------------------------------------------------------------
# Train / validation split


def test_document_split_is_reproducible_with_seed():
    def split(seed):
        dd = load_text_datasets(default_corpus_max_chars=200_000, seed=seed)
        return list(dd["train"]["text"]), list(dd["validation"]["text"])

    train, val = split(7)
    all_docs = default_corpus(max_chars=200_000)
    assert split(7) == (train, val)
    assert split(8) != (train, val)
    assert len(val) == round(0.1 * len(all_docs)) and sorted(train + val) == sorted(all_docs)
    assert [d for d in all_docs if d in set(val)] == val  # original order kept inside a split
    dd = load_text_datasets(default_corpus_max_chars=200_000, validation_split_percentage=20)
    assert len(dd["validation"]) == round(0.2 * len(all_docs))


def test_single_text_file_holds_out_the_tail(tmp_path, docs, tokenizer, hf_cache):
    text = "\n\n".join(docs[:3])  # one file, one document: like the-verdict.txt
    (tmp_path / "the-story.txt").write_text(text)
    dd = load_text_datasets(str(tmp_path / "the-story.txt"), cache_dir=hf_cache)
    split_idx = int(0.90 * len(text))  # the book, chapter 5
    assert list(dd["train"]["text"]) == [text[:split_idx]]
    assert list(dd["validation"]["text"]) == [text[split_idx:]]
    # build_pretraining_datasets windows both; validation uses stride = max_length
    out, stats = build_pretraining_datasets(
        tokenizer, 16, 4, train_files=str(tmp_path / "the-story.txt"), cache_dir=hf_cache, verbose=False,
        return_stats=True,
    )
    assert stats["train"].stride == 4 and stats["validation"].stride == 16
    assert len(out["train"]) == stats["train"].n_windows == num_windows(stats["train"].n_tokens, 16, 4)
    assert len(out["validation"]) == num_windows(stats["validation"].n_tokens, 16, 16)


def test_build_pretraining_datasets_reports_counts(tokenizer, capsys):
    out = build_pretraining_datasets(tokenizer, 64, 32, default_corpus_max_chars=100_000, n_positions=64)
    printed = capsys.readouterr().out
    assert isinstance(out, datasets.DatasetDict) and set(out) == {"train", "validation"}
    assert "train: " in printed and "validation: " in printed
    assert f"-> {len(out['train']):,} windows of 64 tokens (stride 32" in printed
    assert f"-> {len(out['validation']):,} windows of 64 tokens (stride 64" in printed


# --------------------------------------------------------------------------------------------------------------------
# Bad input


def test_bad_window_arguments(tokenizer, docs):
    ds = text_ds(docs[:2])
    with pytest.raises(ValueError, match="stride must be a positive integer.*got 0"):
        tokenize_and_window(ds, tokenizer, 16, 0)
    with pytest.raises(ValueError, match="stride must be a positive integer.*got -4"):
        group_into_windows(np.arange(100), 16, -4)
    with pytest.raises(ValueError, match="max_length must be an integer >= 2, got 1"):
        tokenize_and_window(ds, tokenizer, 1)
    with pytest.raises(ValueError, match="max_length must be an integer >= 2, got 0"):
        group_into_windows(np.arange(100), 0)
    with pytest.raises(ValueError, match="max_length=512 exceeds the model's context length n_positions=256"):
        tokenize_and_window(ds, tokenizer, 512, n_positions=256)
    with pytest.raises(TypeError, match="pass one split"):
        tokenize_and_window(datasets.DatasetDict({"train": ds}), tokenizer, 16)
    with pytest.raises(ValueError, match="max_length=128 exceeds .* n_positions=64"):
        build_pretraining_datasets(tokenizer, 128, n_positions=64, default_corpus_max_chars=10_000, verbose=False)


def test_no_text_and_too_few_tokens(tokenizer):
    with pytest.raises(ValueError, match="no text"):
        tokenize_and_window(text_ds([]), tokenizer, 8)
    with pytest.raises(ValueError, match="no text: all 3 documents are empty"):
        tokenize_and_window(text_ds(["", "", ""]), tokenizer, 8)
    with pytest.raises(ValueError, match="no text"):
        group_into_windows(np.zeros(0, dtype=np.int32), 8)
    n = len(tokenizer.encode("A short text."))
    with pytest.raises(ValueError, match=f"has {n} tokens, fewer than max_length=256"):
        tokenize_and_window(text_ds(["A short text."]), tokenizer, 256)
    with pytest.raises(ValueError, match=f"has {n} tokens, fewer than max_length=256"):
        list(tokenize_and_window(text_ds(["A short text."]).to_iterable_dataset(), tokenizer, 256))
    with pytest.raises(ValueError, match="no text"):
        list(tokenize_and_window(text_ds(["", ""]).to_iterable_dataset(), tokenizer, 8))


def test_validation_split_too_short_names_the_split(tmp_path, tokenizer, hf_cache):
    (tmp_path / "t.txt").write_text("word " * 300)  # ~300 tokens: 10% tail ~ 30 tokens < 64
    match = r"validation split: the token stream has \d+ tokens, fewer than max_length=64"
    with pytest.raises(ValueError, match=match):
        build_pretraining_datasets(
            tokenizer, 64, train_files=str(tmp_path / "t.txt"), cache_dir=hf_cache, verbose=False
        )


def test_no_eos_token_is_a_clear_error(docs):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(docs[:2], trainers.BpeTrainer(vocab_size=300, show_progress=False))
    with pytest.raises(ValueError, match="no eos token"):
        tokenize_and_window(text_ds(docs[:2]), PreTrainedTokenizerFast(tokenizer_object=tok), 8)
    no_eos = PreTrainedTokenizerFast(tokenizer_object=tok)
    assert len(tokenize_and_window(text_ds(docs[:2]), no_eos, 8, append_eos=False)) > 0


# --------------------------------------------------------------------------------------------------------------------
# Default corpus


def test_default_corpus_is_english_and_capped():
    texts = default_corpus(max_chars=20_000)
    assert sum(map(len, texts)) == 20_000
    joined = " ".join(texts)
    words = joined.lower().split()
    for word in ("the", "and", "is", "of"):
        assert words.count(word) > 20
    assert sum(c.isascii() for c in joined) / len(joined) > 0.99
    ds = default_corpus_dataset(max_chars=5_000)
    assert isinstance(ds, datasets.Dataset) and ds.column_names == ["text"] and sum(map(len, list(ds["text"]))) == 5_000


def test_stdlib_docs_collected_in_isolated_child_are_deterministic():
    a = corpus_module._collect_in_child(["json", "textwrap", "ctypes"])
    assert [name for name, _ in a] == ["module:json", "module:textwrap", "module:ctypes"]
    text = dict(a)["module:textwrap"]
    assert "Text wrapping and filling" in text and "\nFILE\n" not in text
    assert " at 0x" not in "".join(t for _, t in a)  # memory addresses scrubbed
    assert corpus_module._collect_in_child(["json", "textwrap", "ctypes"]) == a


def test_default_corpus_cache_round_trip(tmp_path, monkeypatch):
    calls = []

    def fake_collect(modules=None, timeout=300.0):
        calls.append(1)
        return [("module:fake", "The fake module documentation.\n")]

    monkeypatch.setattr(corpus_module, "_collect_in_child", fake_collect)
    monkeypatch.setenv("HFGPT_CACHE", str(tmp_path / "cache"))
    first = default_corpus()
    assert first[-1] == "The fake module documentation.\n" and calls == [1]
    files = os.listdir(tmp_path / "cache")
    assert len(files) == 1 and files[0].startswith("default-corpus-") and files[0].endswith(".json")
    corpus_module._MEMO.clear()  # a new process: only the file is left
    assert default_corpus() == first and calls == [1]  # read from the cache, not collected again


def test_full_default_corpus_uses_the_cache():
    """The real collection (~3-6 s the first time on this machine; later runs read the cache)."""
    texts = default_corpus()
    assert len(texts) > 200 and sum(map(len, texts)) > 3_000_000
    t = time.perf_counter()
    corpus_module._MEMO.clear()
    assert default_corpus() == texts
    assert time.perf_counter() - t < 2.0
