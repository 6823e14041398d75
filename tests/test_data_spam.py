"""Spam data (chapter 6): reading the raw SMS Spam Collection, csv/json files and their labels, balancing and the
stratified split, the natural-mix test split and the all-data splits, the pretraining text, counting truncation, and
the data's flags (SpamDataArguments) through the real parser."""

import pytest

from hfgpt.data.spam import (
    EVALUATION_SPLITS,
    SpamDataArguments,
    SpamReport,
    balance,
    load_spam_dataset,
    read_sms_file,
    spam_splits,
    split_dataset,
    tokenize_dataset,
    write_pretraining_text,
)
from hfgpt.errors import HfgptInputError


# ---------------------------------------------------------------------------------------------------------- data
def test_read_raw_file_keeps_quotes_tabs_and_every_line(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_text('ham\t"Hi there\nspam\tFREE\tprize "now"\nham\tplain line\n\n')
    texts, labels = read_sms_file(path)
    assert labels == ["ham", "spam", "ham"]
    assert texts == ['"Hi there', 'FREE\tprize "now"', "plain line"]  # pandas' default quoting would merge lines
    path.write_text("ham\tok\nno tab on this line\n")
    with pytest.raises(HfgptInputError, match=r"SMSSpamCollection:2: expected 'ham<TAB>text'"):
        read_sms_file(path)


def test_load_raw_csv_json_and_labels(tmp_path, sms_file):
    report = SpamReport()
    data = load_spam_dataset(sms_file, report=report)
    assert len(data) == 90 and report.read == 90 and data.features["label"].names == ["ham", "spam"]
    assert sum(data["label"]) == 30
    csv = tmp_path / "sms.csv"
    csv.write_text('sms,label\n"Call now, FREE prize",spam\nsee you soon,HAM\n"",ham\n')
    report = SpamReport()
    data = load_spam_dataset(str(csv), report=report)
    assert data["text"] == ["Call now, FREE prize", "see you soon"] and data["label"] == [1, 0]
    assert report.empty_skipped == 1
    jsonl = tmp_path / "sms.jsonl"
    jsonl.write_text('{"message": "hello", "label": 0}\n{"message": "WIN", "label": 1}\n')
    assert load_spam_dataset(str(jsonl))["label"] == [0, 1]
    jsonl.write_text('{"message": "hello", "label": "maybe"}\n')
    with pytest.raises(HfgptInputError, match="unknown label"):
        load_spam_dataset(str(jsonl))
    jsonl.write_text('{"body": "hello", "label": 0}\n')
    with pytest.raises(HfgptInputError, match=r"missing column\(s\) \['text'\]"):
        load_spam_dataset(str(jsonl))
    jsonl.write_text('{"text": "hello", "kind": false}\n{"text": "WIN", "kind": true}\n')
    assert load_spam_dataset(str(jsonl), label_column="kind")["label"] == [0, 1]  # booleans are ids
    jsonl.write_text('{"text": "hello", "label": 2}\n{"text": "hi", "label": 1.0}\n')
    with pytest.raises(HfgptInputError, match=r"unknown label\(s\) 1.0, 2"):
        load_spam_dataset(str(jsonl))
    with pytest.raises(HfgptInputError, match="not both"):
        load_spam_dataset(sms_file, dataset_name="ucirvine/sms_spam")
    with pytest.raises(FileNotFoundError, match="No SMS data file"):
        load_spam_dataset(str(tmp_path / "none"))
    empty = tmp_path / "empty"
    empty.write_text("\n\n")
    with pytest.raises(HfgptInputError, match="holds no messages"):
        load_spam_dataset(str(empty))


def test_hub_labels_by_classlabel_id(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"sms": Value("string"), "label": ClassLabel(names=["spam", "ham"])})  # reversed order
    folder = tmp_path / "hub"
    Dataset.from_dict({"sms": ["WIN now", "see you"], "label": [0, 1]}, features=features).save_to_disk(folder)
    table = tmp_path / "sms.parquet"
    Dataset.load_from_disk(folder).to_parquet(table)  # parquet keeps the ClassLabel names
    assert load_spam_dataset(str(table))["label"] == [1, 0]


def test_download_offline_says_what_to_do(tmp_path):
    from hfgpt.data.spam import download_sms_spam

    with pytest.raises(ConnectionError, match="pass --data_file"):
        download_sms_spam(cache_dir=str(tmp_path))


def test_balance_and_stratified_split(sms_file):
    data = load_spam_dataset(sms_file)
    balanced = balance(data, seed=123)
    assert len(balanced) == 60 and sum(balanced["label"]) == 30
    assert balance(data, seed=123)["text"] == balanced["text"]  # seeded
    splits = split_dataset(balanced)
    assert {k: len(v) for k, v in splits.items()} == {"train": 42, "validation": 6, "test": 12}
    assert {k: sum(v["label"]) for k, v in splits.items()} == {"train": 21, "validation": 3, "test": 6}
    texts = [set(splits[k]["text"]) for k in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    with pytest.raises(HfgptInputError, match="leave room for a test split"):
        split_dataset(balanced, 0.8, 0.2)
    with pytest.raises(HfgptInputError, match="Only 9 messages"):
        split_dataset(balanced.select(range(9)))
    with pytest.raises(HfgptInputError, match=r"Cannot balance: class counts are \{'ham': 60, 'spam': 0\}"):
        balance(data.filter(lambda row: row["label"] == 0))


def test_pretraining_text_never_holds_evaluationsms_messages(tmp_path, sms_file):
    data = load_spam_dataset(sms_file)
    splits = split_dataset(balance(data))
    path = tmp_path / "pretrain.txt"
    written = write_pretraining_text(data, splits, str(path))
    lines = path.read_text().splitlines()
    assert written == len(lines) == 90 - 6 - 12
    assert not set(lines) & (set(splits["validation"]["text"]) | set(splits["test"]["text"]))
    assert not any(line.startswith(("ham", "spam")) for line in lines)


def test_natural_split_first_disjoint_from_training_and_pretraining(tmp_path, sms_file):
    from datasets import concatenate_datasets

    data = load_spam_dataset(sms_file)
    twice = concatenate_datasets([data, data.select(range(20))])  # the real collection repeats messages
    report = SpamReport()
    splits = spam_splits(twice, natural_test_fraction=0.2, report=report)
    natural = splits["natural_test"]
    assert len(natural) == 22 and sum(natural["label"]) / len(natural) == pytest.approx(30 / 90, abs=0.05)
    held = set(natural["text"])
    assert report.natural_test_duplicates_dropped > 0  # copies of natural-test messages left the other splits
    for name in ("balanced_train", "balanced_validation", "balanced_test", "natural_train", "natural_validation"):
        assert not held & set(splits[name]["text"]), name
    assert not set(splits["natural_train"]["text"]) & set(splits["natural_validation"]["text"])
    validation = splits["natural_validation"]  # the balanced validation split plus ham balancing left out
    assert set(splits["balanced_validation"]["text"]) < set(validation["text"])
    assert not set(validation["text"]) - set(splits["balanced_validation"]["text"]) & set(splits["balanced_train"]["text"])
    assert sum(validation["label"]) / len(validation) == pytest.approx(sum(natural["label"]) / len(natural), abs=0.1)
    assert not set(splits["natural_train"]["text"]) & set(splits["balanced_test"]["text"])
    balanced = [sum(splits[f"balanced_{k}"]["label"]) / len(splits[f"balanced_{k}"]) for k in ("train", "test")]
    assert balanced == [pytest.approx(0.5, abs=0.05)] * 2
    ham = {t for t, y in zip(twice["text"], twice["label"]) if y == 0} - held
    used = set().union(*(splits[k]["text"] for k in ("natural_train", "natural_validation", "balanced_test")))
    assert ham <= used  # all-data mode: every ham message outside the natural test is trained on or evaluated
    assert len(ham & set(splits["natural_train"]["text"])) > 2 * len(ham & set(splits["balanced_train"]["text"]))
    assert spam_splits(twice, natural_test_fraction=0.2)["natural_test"]["text"] == natural["text"]  # seeded
    path = tmp_path / "pretrain.txt"
    write_pretraining_text(twice, splits, str(path))
    lines = set(path.read_text().splitlines())
    evaluated = set().union(*(splits[name]["text"] for name in EVALUATION_SPLITS))
    assert not lines & evaluated
    assert set(splits["balanced_train"]["text"]) | set(splits["natural_train"]["text"]) <= lines | evaluated
    with pytest.raises(HfgptInputError, match="--natural_test_fraction must be between 0 and 1"):
        spam_splits(data, natural_test_fraction=1.0)


def test_truncation_is_counted(base_dir, sms_file):
    from hfgpt.tokenization import load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    data = load_spam_dataset(sms_file)
    report = SpamReport()
    tokenized = tokenize_dataset(data, tokenizer, 8, report, "train")
    longer = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) > 8 for t in data["text"])
    assert report.truncated["train"] == longer > 0
    assert max(len(ids) for ids in tokenized["input_ids"]) == 8


def test_data_arguments_through_the_parser_give_each_runs_splits(sms_file):
    from transformers import HfArgumentParser

    parser = HfArgumentParser(SpamDataArguments)
    (book,) = parser.parse_args_into_dataclasses(args=["--data_file", sms_file])
    (all_data,) = parser.parse_args_into_dataclasses(args=["--data_file", sms_file, "--no_balance"])
    names = ("train", "validation", "calibration", "test", "natural_test")
    for args, sizes in ((book, (35, 5, 9, 10, 14)), (all_data, (57, 9, 9, 10, 14))):
        report = SpamReport()
        used = args.setup(report)
        assert tuple(len(used[name]) for name in names) == sizes and report.read == 90
    assert used["calibration"]["text"] == used["validation"]["text"]  # all data: the threshold is chosen on validation
    messages, splits = book.load()
    assert len(messages) == 90 and set(EVALUATION_SPLITS) < set(splits)
    with pytest.raises(HfgptInputError, match="--max_length must be a positive number of tokens, got 0"):
        SpamDataArguments(data_file=sms_file, max_length=0).load()
    with pytest.raises(HfgptInputError, match="--natural_test_fraction must be between 0 and 1"):
        SpamDataArguments(data_file=sms_file, natural_test_fraction=0.0).setup()
