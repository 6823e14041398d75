"""Raw text and the train / validation split (the book's chapter 5 data step): hfgpt.data.text."""

import json

import datasets
import pytest

from hfgpt.data import default_corpus, load_text_datasets
from hfgpt.errors import HfgptInputError


pytestmark = pytest.mark.usefixtures("isolated_datasets")


@pytest.fixture(scope="module")
def docs():
    return default_corpus(max_chars=60_000)


# --------------------------------------------------------------------------------------------------------------------
# Local files, a dataset folder, the default corpus


def test_local_file_formats(tmp_path, docs):
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

    txt = load_text_datasets(str(tmp_path / "*.txt"), validation_files=str(tmp_path / "b.txt"))
    # a glob; one document per txt file, as the book reads the-verdict.txt
    assert list(txt["train"]["text"]) == texts[:2]
    assert list(txt["validation"]["text"]) == [texts[1]]
    kw = dict(validation_files=str(tmp_path / "e.csv"), text_column="body")
    jsonl = load_text_datasets(str(tmp_path / "c.jsonl"), **kw)
    assert jsonl["train"].column_names == ["body"] and list(jsonl["train"]["body"]) == texts[:3]
    assert jsonl["validation"].column_names == ["body"]
    assert list(jsonl["validation"]["body"]) == texts[:2]  # csv
    parquet = load_text_datasets([tmp_path / "d.parquet"], **kw)
    assert list(parquet["train"]["body"]) == texts[3:]
    renamed = load_text_datasets(str(tmp_path / "a.txt"), **kw)  # a txt file's one column takes text_column's name
    assert list(renamed["train"]["body"]) == [texts[0]]


def test_folders_and_lists_of_patterns(tmp_path, docs):
    (tmp_path / "books").mkdir()
    for i in range(3):
        (tmp_path / "books" / f"{i}.txt").write_text(docs[i])
    dd = load_text_datasets(str(tmp_path / "books"), validation_files=[tmp_path / "books" / "0.txt"])
    assert list(dd["train"]["text"]) == docs[:3]  # a folder: its files, in name order
    both = load_text_datasets([str(tmp_path / "books" / "2.txt"), str(tmp_path / "books" / "[01].txt")],
                              validation_files=str(tmp_path / "books" / "0.txt"))
    assert list(both["train"]["text"]) == [docs[2], docs[0], docs[1]]  # patterns in the order given


def test_dataset_name_takes_its_own_validation_split(tmp_path, docs):
    folder = tmp_path / "my-dataset"
    folder.mkdir()
    for split, part in (("train", docs[:4]), ("validation", docs[4:6])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"content": d}) + "\n" for d in part))
    dd = load_text_datasets(dataset_name=str(folder), text_column="content")
    assert list(dd["train"]["content"]) == docs[:4] and list(dd["validation"]["content"]) == docs[4:6]
    with pytest.raises(HfgptInputError, match=r"no text column 'text'; the columns are \['content'\]"):
        load_text_datasets(dataset_name=str(folder))


def test_missing_files_and_bad_formats(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(HfgptInputError, match="No file matches '.*nope.txt'"):
        load_text_datasets(missing)
    with pytest.raises(HfgptInputError, match=r"No file matches .*\*\.jsonl"):
        load_text_datasets(str(tmp_path / "*.jsonl"))
    with pytest.raises(HfgptInputError, match="No file matches '.*nope.txt' \\(validation_files\\)"):
        load_text_datasets(validation_files=missing)
    (tmp_path / "data.xyz").write_text("hello")
    with pytest.raises(HfgptInputError, match=r"'\.xyz'.*supported: \.txt.*\.jsonl.*\.parquet"):
        load_text_datasets(str(tmp_path / "data.xyz"))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"body": "x", "id": 1}) + "\n")
    with pytest.raises(HfgptInputError, match=r"no text column 'text'; the columns are \['body', 'id'\]"):
        load_text_datasets(str(tmp_path / "rows.jsonl"))
    with pytest.raises(HfgptInputError, match=r"'id' holds .*int64.*not text"):
        load_text_datasets(str(tmp_path / "rows.jsonl"), text_column="id")
    (tmp_path / "ok.txt").write_text("hello")
    with pytest.raises(HfgptInputError, match="mix formats"):
        load_text_datasets([tmp_path / "ok.txt", tmp_path / "rows.jsonl"])
    with pytest.raises(HfgptInputError, match="the list of files is empty"):
        load_text_datasets([])


def test_empty_text_and_bad_fraction(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.jsonl").write_text(json.dumps({"text": ""}) + "\n" + json.dumps({"text": ""}) + "\n")
    for name in ("empty.txt", "blank.jsonl"):
        with pytest.raises(HfgptInputError, match=f"no text in train_files .*{name}"):
            load_text_datasets(str(tmp_path / name))
    for fraction in (0, 1, -0.1, 1.5):
        with pytest.raises(HfgptInputError, match=f"validation_fraction must lie between 0 and 1, got {fraction}"):
            load_text_datasets(default_corpus_max_chars=1000, validation_fraction=fraction)
    n = len(default_corpus(max_chars=40_000))
    assert n >= 10  # enough documents to split by document
    with pytest.raises(HfgptInputError, match=f"validation_fraction=0.99 holds out all {n} documents"):
        load_text_datasets(default_corpus_max_chars=40_000, validation_fraction=0.99)


# --------------------------------------------------------------------------------------------------------------------
# Train / validation split


def test_document_split_is_reproducible_with_seed():
    def split(seed, **kwargs):
        dd = load_text_datasets(default_corpus_max_chars=200_000, seed=seed, **kwargs)
        return list(dd["train"]["text"]), list(dd["validation"]["text"])

    train, val = split(7)
    all_docs = default_corpus(max_chars=200_000)
    assert split(7) == (train, val)
    assert split(8) != (train, val)
    assert len(val) == max(1, round(0.05 * len(all_docs))) and sorted(train + val) == sorted(all_docs)
    assert [d for d in all_docs if d in set(val)] == val  # original order kept inside a split
    assert len(split(7, validation_fraction=0.2)[1]) == round(0.2 * len(all_docs))


def test_single_text_file_holds_out_the_tail(tmp_path, docs):
    text = "\n\n".join(docs[:3])  # one file, one document: like the-verdict.txt
    (tmp_path / "the-story.txt").write_text(text)
    dd = load_text_datasets(str(tmp_path / "the-story.txt"), validation_fraction=0.1)
    split_idx = int(0.90 * len(text))  # the book, chapter 5
    assert list(dd["train"]["text"]) == [text[:split_idx]]
    assert list(dd["validation"]["text"]) == [text[split_idx:]]


def test_few_documents_are_cut_at_the_characters():
    texts = default_corpus(max_chars=30_000)
    assert 2 < len(texts) < 10  # fewer documents than a document split needs
    dd = load_text_datasets(default_corpus_max_chars=30_000, validation_fraction=0.25)
    train, val = list(dd["train"]["text"]), list(dd["validation"]["text"])
    assert "".join(train + val) == "".join(texts)
    assert sum(map(len, train)) == int(0.75 * sum(map(len, texts)))
    assert len(train) + len(val) == len(texts) + 1  # only the document at the cut is split in two


def test_streaming_split_is_reproducible(tmp_path, docs):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": f"document {i}: {d[:50]}"}) + "\n" for i, d in enumerate(docs[:40])))

    def split(seed):
        dd = load_text_datasets(str(path), streaming=True, seed=seed, validation_fraction=0.25)
        assert isinstance(dd, datasets.IterableDatasetDict)
        return [r["text"] for r in dd["train"]], [r["text"] for r in dd["validation"]]

    train, val = split(1)
    assert split(1) == (train, val)
    assert split(2) != (train, val)
    assert sorted(train + val) == sorted(f"document {i}: {d[:50]}" for i, d in enumerate(docs[:40]))
    assert 0 < len(val) < 40
