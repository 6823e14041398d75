"""The SMS Spam Collection for the book's chapter 6 (spam classification), as a ``datasets`` pipeline.

The book reads the UCI file with pandas, undersamples "ham" and cuts 70% / 10% / 20%. What differs: the raw file is
read line by line (CSV quoting merges messages that start with a quote); the split is stratified; a test set with the
collection's real class mix comes first; :func:`write_pretraining_text` gives SMS text free of evaluation messages.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import HfgptFileNotFoundError, HfgptInputError
from .text import download_once

logger = logging.getLogger("hfgpt.data.spam")

SMS_SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
SMS_SPAM_HUB_ID = "ucirvine/sms_spam"
LABELS = ("ham", "spam")
ID2LABEL = dict(enumerate(LABELS))
LABEL2ID = {name: i for i, name in ID2LABEL.items()}
TABLE_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class SpamReport:
    """What loading and tokenizing did to the data: every dropped or changed message is counted here."""

    read: int = 0
    empty_skipped: int = 0
    natural_test_duplicates_dropped: int = 0
    truncated: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        truncated = {f"truncated_{split}": n for split, n in self.truncated.items()}
        return {"messages_read": self.read, "empty_skipped": self.empty_skipped,
                "natural_test_duplicates_dropped": self.natural_test_duplicates_dropped, **truncated}


def read_sms_file(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` of the raw collection: one ``label<TAB>text`` message per line, no header, no quoting."""
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            label, tab, text = line.partition("\t")
            if not tab:
                raise HfgptInputError(f"{path}:{number}: expected 'ham<TAB>text' or 'spam<TAB>text', "
                                      f"got {line[:60]!r}.")
            labels.append(label.strip())
            texts.append(text)
    if not texts:
        raise HfgptInputError(f"{path} holds no messages.")
    return texts, labels


def download_sms_spam(cache_dir: str | None = None) -> str:
    """The path of ``SMSSpamCollection`` from the book's UCI zip, fetched and unpacked once into the datasets cache."""
    folder = download_once(SMS_SPAM_URL, "SMSSpamCollection file", extract=True, cache_dir=cache_dir)
    return os.path.join(folder, "SMSSpamCollection")


def _normalise_labels(values, names: list[str] | None, source: str) -> list[int]:
    """Label strings (``ham``/``spam``, any case) or ids (0/1, or a ClassLabel's ids via ``names``) -> 0/1."""

    def label_id(value):
        if isinstance(value, int) and names is not None and 0 <= value < len(names):
            value = names[value]
        if isinstance(value, str):
            return LABEL2ID.get(value.strip().lower())
        return int(value) if isinstance(value, int) and value in ID2LABEL else None

    ids = [label_id(value) for value in values]
    unknown = {value for value, i in zip(values, ids) if i is None}
    if unknown:
        shown = ", ".join(repr(u) for u in sorted(unknown, key=str)[:5])
        raise HfgptInputError(f"{source}: unknown label(s) {shown}; expected 'ham'/'spam' (or 0/1).")
    return ids


def _as_dataset(texts: list[str], labels: list[int], report: SpamReport):
    from datasets import ClassLabel, Dataset, Features, Value

    report.read += len(texts)
    keep = [i for i, text in enumerate(texts) if text is not None and str(text).strip()]
    report.empty_skipped += len(texts) - len(keep)
    if report.empty_skipped:
        logger.warning("Skipped %d empty message(s)", report.empty_skipped)
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(LABELS))})
    return Dataset.from_dict({"text": [str(texts[i]) for i in keep], "label": [labels[i] for i in keep]},
                             features=features)


def load_spam_dataset(data_file: str | None = None, dataset_name: str | None = None,
                      dataset_config_name: str | None = None, dataset_split: str = "train",
                      text_column: str | None = None, label_column: str = "label",
                      report: SpamReport | None = None):
    """Every non-empty message as a ``Dataset`` of ``text`` and ``label``: a file, a Hub dataset, or the UCI zip."""
    from datasets import load_dataset

    report = report if report is not None else SpamReport()
    if data_file is not None and dataset_name is not None:
        raise HfgptInputError("Give --data_file or --dataset_name, not both.")
    if dataset_name is None:
        path = os.path.expanduser(data_file) if data_file is not None else download_sms_spam()
        if not os.path.isfile(path):
            raise HfgptFileNotFoundError(f"No SMS data file at {data_file!r}.")
        builder = TABLE_EXTENSIONS.get(os.path.splitext(path)[1].lower())
        if builder is None:
            texts, labels = read_sms_file(path)
            return _as_dataset(texts, _normalise_labels(labels, None, path), report)
        table = load_dataset(builder, data_files=path, split="train")
        source = path
    else:
        table = load_dataset(dataset_name, dataset_config_name, split=dataset_split)
        source = dataset_name
    candidates = [text_column] if text_column else ["text", "sms", "message"]
    column = next((c for c in candidates if c in table.column_names), candidates[0])
    missing = [c for c in (column, label_column) if c not in table.column_names]
    if missing:
        raise HfgptInputError(f"{source}: missing column(s) {missing}; it has {table.column_names}. "
                              "Use --text_column / --label_column.")
    feature = table.features[label_column]
    names = list(feature.names) if hasattr(feature, "names") else None
    return _as_dataset(table[column], _normalise_labels(table[label_column], names, source), report)


def balance(dataset, seed: int = 123):
    """The book's ``create_balanced_dataset``: all of the smaller class, as many random ones of the larger."""
    labels = np.asarray(dataset["label"])
    counts = np.bincount(labels, minlength=len(LABELS))
    if counts.min() == 0:
        raise HfgptInputError(f"Cannot balance: class counts are {dict(zip(LABELS, counts.tolist()))}.")
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), counts.min(), replace=False)
                           for c in range(len(LABELS))])
    return dataset.select(np.sort(keep))


def split_dataset(dataset, train_fraction: float = 0.7, validation_fraction: float = 0.1, seed: int = 123):
    """A stratified, seeded train / validation / test ``DatasetDict`` with the book's sizes (``int(n * fraction)``)."""
    from datasets import DatasetDict

    test_fraction = 1.0 - train_fraction - validation_fraction
    if not (0 < train_fraction < 1 and 0 < validation_fraction < 1 and test_fraction > 1e-9):
        raise HfgptInputError(f"Split fractions must be positive and leave room for a test split; got train "
                              f"{train_fraction}, validation {validation_fraction}.")
    if len(dataset) < 10:
        raise HfgptInputError(f"Only {len(dataset)} messages: too few to split into train, validation and test.")
    n_train, n_validation = int(len(dataset) * train_fraction), int(len(dataset) * validation_fraction)  # the book's
    first = dataset.train_test_split(test_size=len(dataset) - n_train - n_validation, seed=seed,
                                     stratify_by_column="label")
    second = first["train"].train_test_split(test_size=n_validation, seed=seed, stratify_by_column="label")
    return DatasetDict(train=second["train"], validation=second["test"], test=first["test"])


# The splits :func:`spam_splits` returns that a model is judged or calibrated on: never training or pretraining text.
EVALUATION_SPLITS = ("natural_test", "balanced_validation", "balanced_test", "natural_validation")


def spam_splits(dataset, natural_test_fraction: float = 0.15, train_fraction: float = 0.7,
                validation_fraction: float = 0.1, seed: int = 123, report: SpamReport | None = None):
    """Every split both training modes use, stratified and seeded: ``natural_test`` (carved out first with the
    collection's class mix; copies of its messages are dropped elsewhere), the book's ``balanced_*`` splits on the rest,
    ``natural_validation`` (the balanced one plus left-out ham up to the real mix: where both modes choose the decision
    threshold, as a 0.5% false-positive rate cannot be read off ~60 ham) and ``natural_train`` (all the rest)."""
    from datasets import DatasetDict, concatenate_datasets

    if not 0 < natural_test_fraction < 1:
        raise HfgptInputError(f"--natural_test_fraction must be between 0 and 1 (e.g. 0.15), got {natural_test_fraction}.")
    if len(dataset) < 20:
        raise HfgptInputError(f"Only {len(dataset)} messages: too few for a natural test split and the book's splits.")
    carved = dataset.train_test_split(test_size=natural_test_fraction, seed=seed, stratify_by_column="label")
    natural_test = carved["test"]
    held_out = set(natural_test["text"])
    rest = carved["train"].filter(lambda row: row["text"] not in held_out, desc="Dropping natural-test duplicates")
    if report is not None:
        report.natural_test_duplicates_dropped = len(carved["train"]) - len(rest)
    book = split_dataset(balance(rest, seed=seed), train_fraction, validation_fraction, seed)
    # the natural validation split: the balanced one plus ham that balancing left out, up to the rest's class mix
    labels = np.asarray(rest["label"])
    ham_per_spam = float((labels == 0).sum()) / max(int((labels == 1).sum()), 1)
    validation_labels = np.asarray(book["validation"]["label"])
    extra = int(round((validation_labels == 1).sum() * ham_per_spam)) - int((validation_labels == 0).sum())
    balanced_texts = set(book["train"]["text"]) | set(book["validation"]["text"]) | set(book["test"]["text"])
    left_out = rest.filter(lambda row: row["label"] == 0 and row["text"] not in balanced_texts,
                           desc="Ham left out by balancing")
    extra_ham = left_out.shuffle(seed=seed).select(range(max(0, min(extra, len(left_out)))))
    natural_validation = concatenate_datasets([book["validation"], extra_ham]).shuffle(seed=seed)
    held = set(natural_validation["text"]) | set(book["test"]["text"])
    natural_train = rest.filter(lambda row: row["text"] not in held, desc="All data outside validation and test")
    return DatasetDict(natural_test=natural_test, balanced_train=book["train"], balanced_validation=book["validation"],
                       balanced_test=book["test"], natural_train=natural_train, natural_validation=natural_validation)


def write_pretraining_text(dataset, splits, path: str) -> int:
    """Write each message of ``dataset`` in no evaluation split of ``splits``, one per line; return how many."""
    names = [name for name in EVALUATION_SPLITS if name in splits] or ["validation", "test"]
    held_out = set().union(*(splits[name]["text"] for name in names))
    lines = [" ".join(text.split()) for text in dataset["text"] if text not in held_out]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


@dataclass
class SpamDataArguments:
    """The SMS data's flags (litgpt's ``DataModule``): :meth:`load` reads and splits the messages."""

    data_file: str | None = field(default=None, metadata={"help": "SMSSpamCollection or a table; default: UCI's."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id, e.g. ucirvine/sms_spam."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    dataset_split: str = field(default="train", metadata={"help": "The Hub dataset's split to read."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of a table (default: text, sms or message)."})
    label_column: str = field(default="label", metadata={"help": "Label column of a table (ham/spam or 0/1)."})
    balance: bool = field(default=True, metadata={
        "help": "Undersample ham to the number of spam messages (the book); --no_balance trains on all the data."})
    natural_test_fraction: float = field(default=0.15, metadata={
        "help": "Share of all messages held out first, with the collection's class mix, as the natural test split."})
    train_fraction: float = field(default=0.7, metadata={"help": "Training share (the book: 0.7)."})
    validation_fraction: float = field(default=0.1, metadata={"help": "Validation share (0.1); test gets the rest (0.2)."})
    split_seed: int = field(default=123, metadata={"help": "Seed of the balancing and of the stratified split (the book: 123)."})
    max_length: int | None = field(default=None, metadata={"help": "Longer messages are truncated; default the model's context."})

    def load(self, report: SpamReport | None = None):
        """(every message, every split of :func:`spam_splits`)."""
        if self.max_length is not None and self.max_length < 1:
            raise HfgptInputError(f"--max_length must be a positive number of tokens, got {self.max_length}.")
        messages = load_spam_dataset(self.data_file, self.dataset_name, self.dataset_config_name, self.dataset_split,
                                     self.text_column, self.label_column, report)
        return messages, spam_splits(messages, self.natural_test_fraction, self.train_fraction,
                                     self.validation_fraction, self.split_seed, report)

    def setup(self, report: SpamReport | None = None) -> dict:
        """The splits a run trains and validates on (balanced with ``--balance``, as the book, else natural-mix),
        ``calibration`` (where the threshold is chosen), ``test`` and ``natural_test``."""
        splits = self.load(report)[1]
        kind = "balanced" if self.balance else "natural"
        return {"train": splits[f"{kind}_train"], "validation": splits[f"{kind}_validation"],
                "calibration": splits["natural_validation"], "test": splits["balanced_test"],
                "natural_test": splits["natural_test"]}


def tokenize_dataset(dataset, tokenizer, max_length: int, report: SpamReport | None = None, split: str = "train"):
    """Token ids for each message, cut to ``max_length`` as the book; cuts counted in ``report.truncated[split]``."""
    encoded = dataset.map(lambda batch: tokenizer(batch["text"], add_special_tokens=False), batched=True,
                          remove_columns=["text"], desc=f"Tokenizing {split}")
    too_long = sum(len(ids) > max_length for ids in encoded["input_ids"])
    if too_long:
        logger.warning("%d %s message(s) are longer than %d tokens and were truncated", too_long, split, max_length)
        encoded = encoded.map(lambda row: {k: row[k][:max_length] for k in ("input_ids", "attention_mask")},
                              desc=f"Truncating {split}")
    if report is not None:
        report.truncated[split] = too_long
    return encoded


__all__ = ["EVALUATION_SPLITS", "ID2LABEL", "LABEL2ID", "LABELS", "SMS_SPAM_HUB_ID", "SMS_SPAM_URL",
           "SpamDataArguments", "SpamReport", "balance", "download_sms_spam", "load_spam_dataset", "read_sms_file",
           "spam_splits", "split_dataset", "tokenize_dataset", "write_pretraining_text"]
