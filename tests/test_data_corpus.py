"""The embedded default corpus (CPython's own documentation): hfgpt.data.corpus."""

import os
import time

import pytest

from hfgpt.data import corpus as corpus_module
from hfgpt.data import default_corpus
from hfgpt.errors import HfgptInputError


def test_default_corpus_is_english_and_capped():
    texts = default_corpus(max_chars=20_000)
    assert sum(map(len, texts)) == 20_000
    joined = " ".join(texts)
    words = joined.lower().split()
    for word in ("the", "and", "is", "of"):
        assert words.count(word) > 20
    assert sum(c.isascii() for c in joined) / len(joined) > 0.99
    assert default_corpus(max_chars=20_000)[:-1] == texts[:-1] == default_corpus()[: len(texts) - 1]  # a prefix
    for bad in (0, -5):
        with pytest.raises(HfgptInputError, match=f"must be a positive number, got {bad}"):
            default_corpus(max_chars=bad)


def test_stdlib_docs_collected_in_isolated_child_are_deterministic():
    a = corpus_module._collect_in_child(["json", "textwrap", "ctypes"])
    assert [name for name, _ in a] == ["module:json", "module:textwrap", "module:ctypes"]
    text = dict(a)["module:textwrap"]
    assert "Text wrapping and filling" in text and "\nFILE\n" not in text
    assert " at 0x" not in "".join(t for _, t in a)  # memory addresses scrubbed
    assert corpus_module._collect_in_child(["json", "textwrap", "ctypes"]) == a


def test_default_corpus_cache_round_trip(tmp_path, monkeypatch):
    calls = []

    def fake_collect(modules=None):
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
    (tmp_path / "cache" / files[0]).write_text("{not json")
    corpus_module._MEMO.clear()
    assert default_corpus() == first and calls == [1, 1]  # an unreadable cache is collected again


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    for name in ("HFGPT_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert corpus_module.corpus_cache_dir() == corpus_module.Path("~/.cache/hfgpt").expanduser()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus_module.corpus_cache_dir() == tmp_path / "xdg" / "hfgpt"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert corpus_module.corpus_cache_dir() == tmp_path / "hf" / "hfgpt"
    monkeypatch.setenv("HFGPT_CACHE", str(tmp_path / "mine"))
    assert corpus_module.corpus_cache_dir() == tmp_path / "mine"


def test_full_default_corpus_uses_the_cache():
    """The real collection (seconds the first time; later runs read the cache)."""
    texts = default_corpus()
    assert len(texts) > 200 and sum(map(len, texts)) > 3_000_000
    t = time.perf_counter()
    corpus_module._MEMO.clear()
    assert default_corpus() == texts
    assert time.perf_counter() - t < 2.0
