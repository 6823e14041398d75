"""Tokenizers: a trained byte-level BPE, and GPT-2's BPE giving tiktoken's exact ids."""

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from hfgpt.errors import HfgptInputError
from hfgpt.tokenization import (
    has_tokenizer_files,
    load_gpt2_tokenizer,
    load_tokenizer,
    special_token_ids,
    train_bpe_tokenizer,
)

SHARED_BPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-bpe"


def test_trained_bpe_round_trips_and_reloads(tiny_corpus, tmp_path):
    tokenizer = train_bpe_tokenizer(iter(tiny_corpus), vocab_size=500)
    assert len(tokenizer) == 500
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id) == "<|endoftext|>"
    text = "Déjà vu: naïve café, 🙂 and 漢字 — all bytes encode.\n\tTabs too."
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids) == text
    assert tokenizer("a<|endoftext|>b").input_ids[1] == tokenizer.eos_token_id
    # merges were learned: common words are single tokens, so text is shorter in tokens than in bytes
    sample = tiny_corpus[0][:2000]
    assert len(tokenizer(sample).input_ids) < 0.6 * len(sample.encode())
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(text).input_ids == ids and reloaded.pad_token_id == tokenizer.pad_token_id
    assert special_token_ids(reloaded) == {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}


def test_trained_bpe_accepts_batches_and_strings(tiny_corpus):
    from_batches = train_bpe_tokenizer([tiny_corpus[:10], tiny_corpus[10:]], vocab_size=400)
    from_list = train_bpe_tokenizer(tiny_corpus, vocab_size=400)
    assert from_batches("the return value").input_ids == from_list("the return value").input_ids


def test_trained_bpe_bad_input():
    with pytest.raises(HfgptInputError, match=r"vocab_size must be larger than 257"):
        train_bpe_tokenizer(["some text"], vocab_size=100)
    with pytest.raises(HfgptInputError, match="no text to train"):
        train_bpe_tokenizer([], vocab_size=1000)


def write_gpt2_like_bpe(folder: Path) -> Path:
    """A vocab.json/merges.txt pair laid out like GPT-2's: the 256 byte symbols at ids 0-255 in GPT-2's order,
    the merged tokens of "Hello, I am" at their GPT-2 ids, and <|endoftext|> at 50256."""
    byte_symbols = list(bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols)}
    merges = ["H e", "l l", "He ll", "Hell o", "Ġ I", "Ġ a", "Ġa m"]
    placed = {"Hello": 15496, "ĠI": 314, "Ġam": 716, "He": 1544, "ll": 297, "Hell": 28254, "Ġa": 257}
    vocab.update(placed)
    used = set(vocab.values())
    for i in range(50256):
        if i not in used:
            vocab[f"<unused{i}>"] = i
    vocab["<|endoftext|>"] = 50256
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def test_gpt2_bpe_from_vocab_and_merges_gives_reference_ids(tmp_path):
    tokenizer = load_gpt2_tokenizer(write_gpt2_like_bpe(tmp_path / "bpe"))
    assert len(tokenizer) == 50257
    assert tokenizer("Hello, I am").input_ids == [15496, 11, 314, 716]
    assert tokenizer("<|endoftext|>").input_ids == [50256]
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 50256
    assert tokenizer.decode([15496, 11, 314, 716]) == "Hello, I am"
    # load_tokenizer routes a vocab/merges folder to the same loader, and the saved form reloads identically
    same = load_tokenizer(tmp_path / "bpe")
    assert same("Hello, I am").input_ids == [15496, 11, 314, 716]
    same.save_pretrained(tmp_path / "saved")
    assert load_tokenizer(tmp_path / "saved")("Hello, I am").input_ids == [15496, 11, 314, 716]


@pytest.mark.skipif(not SHARED_BPE.is_dir(), reason="GPT-2's real BPE files are only in the developers' shared data")
def test_real_gpt2_bpe_matches_tiktoken():
    tokenizer = load_gpt2_tokenizer(SHARED_BPE)
    assert tokenizer("Hello, I am").input_ids == [15496, 11, 314, 716]
    assert tokenizer("This is some text").input_ids == [1212, 318, 617, 2420]
    assert tokenizer("<|endoftext|>").input_ids == [50256]


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither vocab.json"):
        load_gpt2_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="No GPT-2 tokenizer folder"):
        load_gpt2_tokenizer(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    assert not has_tokenizer_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no tokenizer files"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{}")  # a config, but no vocabulary
    assert has_tokenizer_files(tmp_path)
    with pytest.raises(HfgptInputError, match="holds no loadable tokenizer"):
        load_tokenizer(tmp_path)
