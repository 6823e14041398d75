"""Tokenization (the book's chapter 2): byte-level BPE.

The book's tiktoken ``gpt2`` encoding as a transformers tokenizer (:func:`load_gpt2_tokenizer`), and a byte-level BPE
of your own size (:func:`train_bpe_tokenizer`: a small vocabulary leaves more of a tiny model to its blocks).
"""

from __future__ import annotations

import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2Tokenizer, PreTrainedTokenizerFast

from .errors import HfgptFileNotFoundError, HfgptInputError

ENDOFTEXT = "<|endoftext|>"
GPT2_HUB_ID = "openai-community/gpt2"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


def train_bpe_tokenizer(
    texts,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    special_tokens: tuple[str, ...] = (ENDOFTEXT,),
    model_max_length: int = 1024,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE on ``texts`` (strings, or an iterator of strings / batches of strings): bytes
    are the initial alphabet, no prefix space, ``<|endoftext|>`` the bos, eos and pad token."""
    if not special_tokens:
        raise HfgptInputError("special_tokens must name at least one token: the first is the end-of-text token "
                              f"(bos, eos and pad), e.g. ({ENDOFTEXT!r},).")
    minimum = 256 + len(special_tokens)
    if vocab_size <= minimum:
        raise HfgptInputError(f"vocab_size must be larger than {minimum} (256 byte tokens + {len(special_tokens)} "
                              f"special), got {vocab_size}.")
    texts = [texts] if isinstance(texts, str) else texts
    chars = 0

    def counted():  # train_from_iterator takes strings and lists of strings; count them to spot an empty corpus
        nonlocal chars
        for item in texts:
            chars += len(item) if isinstance(item, str) else sum(len(text) for text in item)
            yield item

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(special_tokens), show_progress=show_progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(counted(), trainer=trainer)
    if chars == 0:
        raise HfgptInputError("There is no text to train the tokenizer on (the corpus is empty).")
    eos = special_tokens[0]
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=eos, eos_token=eos, pad_token=eos,
                                   model_max_length=model_max_length)


def load_gpt2_tokenizer(name_or_path: str | os.PathLike = GPT2_HUB_ID) -> PreTrainedTokenizerFast:
    """GPT-2's BPE, giving tiktoken's ``gpt2`` ids, from a folder (``vocab.json`` + ``merges.txt``, or
    ``tokenizer.json``) or a Hub id (default ``openai-community/gpt2``); padding with ``<|endoftext|>``, as the book."""
    path = os.fspath(name_or_path)
    vocab, merges = os.path.join(path, "vocab.json"), os.path.join(path, "merges.txt")
    if os.path.isdir(path) and os.path.isfile(vocab) and os.path.isfile(merges):
        # transformers 5 ignores vocab_file=/merges_file= (you get a 1-token vocabulary): the keywords are vocab/merges.
        tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    elif os.path.isdir(path) and os.path.isfile(os.path.join(path, "tokenizer.json")):
        tokenizer = AutoTokenizer.from_pretrained(path)
    elif os.path.isdir(path):
        raise HfgptFileNotFoundError(f"{path!r} holds neither vocab.json + merges.txt nor tokenizer.json.")
    elif os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise HfgptFileNotFoundError(f"No GPT-2 tokenizer folder at {path!r}.")
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)  # a Hub id
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def has_tokenizer_files(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a saved tokenizer (``tokenizer.json``, ``vocab.json``, ...)."""
    return any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES)


def load_tokenizer(name_or_path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Any tokenizer by folder or Hub id (``"gpt2"`` via :func:`load_gpt2_tokenizer`), always with a pad token."""
    path = os.fspath(name_or_path)
    if path in ("gpt2", GPT2_HUB_ID):
        return load_gpt2_tokenizer(GPT2_HUB_ID)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "vocab.json")) and os.path.isfile(os.path.join(path, "merges.txt")) \
                and not os.path.isfile(os.path.join(path, "tokenizer.json")):
            return load_gpt2_tokenizer(path)
        if not has_tokenizer_files(path):
            raise HfgptFileNotFoundError(f"{path!r} has no tokenizer files ({', '.join(TOKENIZER_FILES)}).")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as error:  # the user's folder holds a broken tokenizer
            raise HfgptInputError(f"{path!r} holds no loadable tokenizer: {' '.join(str(error).split())}") from error
    elif os.path.exists(path):
        raise HfgptFileNotFoundError(f"{path!r} is a file; a tokenizer is loaded from a folder or a Hub id.")
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)  # a Hub id
    if len(tokenizer) <= 1:  # transformers 5 can build an empty GPT2Tokenizer from a bare config.json
        raise HfgptInputError(f"{path!r} gave a tokenizer with {len(tokenizer)} token(s): no vocabulary was found.")
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def special_token_ids(tokenizer) -> dict[str, int | None]:
    """``bos_token_id``/``eos_token_id``/``pad_token_id`` of a tokenizer, to put into a model config."""
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }


__all__ = ["train_bpe_tokenizer", "load_gpt2_tokenizer", "load_tokenizer", "has_tokenizer_files", "special_token_ids",
           "ENDOFTEXT"]
