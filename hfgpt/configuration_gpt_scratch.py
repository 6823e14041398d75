"""Configuration of the GPT from *Build a Large Language Model (From Scratch)*: the book's ``GPT_CONFIG_124M`` dict
as a ``PretrainedConfig`` with GPT-2's field names (:meth:`GPTScratchConfig.from_book_dict` reads the book's dict).
This file imports only ``transformers``: ``save_pretrained`` copies it next to the modeling file."""

from __future__ import annotations

import inspect

from transformers import PretrainedConfig


# The book's model sizes (chapter 5, "Loading pretrained weights from OpenAI") and a few CPU-sized ones.
PRESETS: dict[str, dict] = {
    # GPT-2 sizes, with the book's names.
    "124M": dict(n_embd=768, n_layer=12, n_head=12),
    "355M": dict(n_embd=1024, n_layer=24, n_head=16),
    "774M": dict(n_embd=1280, n_layer=36, n_head=20),
    "1558M": dict(n_embd=1600, n_layer=48, n_head=25),
    # Small sizes that train on a laptop CPU (vocab_size is usually overridden by a trained tokenizer).
    "tiny": dict(n_embd=64, n_layer=2, n_head=2, n_positions=128),
    "mini": dict(n_embd=128, n_layer=4, n_head=4, n_positions=256),
    "small": dict(n_embd=256, n_layer=4, n_head=4, n_positions=256),
    "laptop": dict(n_embd=192, n_layer=5, n_head=3, n_positions=256),  # the main job's (docs/pretraining.md)
    "medium-cpu": dict(n_embd=384, n_layer=6, n_head=6, n_positions=512),
}
PRESET_ALIASES = {"gpt2": "124M", "gpt2-small": "124M", "gpt2-medium": "355M", "gpt2-large": "774M", "gpt2-xl": "1558M"}

# The book's GPT_CONFIG dict keys -> our field names.
BOOK_KEYS = {
    "vocab_size": "vocab_size",
    "context_length": "n_positions",
    "emb_dim": "n_embd",
    "n_heads": "n_head",
    "n_layers": "n_layer",
    "qkv_bias": "qkv_bias",
}


def ids_outside_vocab(token_id, vocab_size: int) -> list[int]:
    """The ids of a ``*_token_id`` value (an id, a list of ids, or ``None``) that are not in ``range(vocab_size)``."""
    ids = token_id if isinstance(token_id, (list, tuple)) else [token_id]
    return [i for i in ids if i is not None and not 0 <= i < vocab_size]


class GPTScratchConfig(PretrainedConfig):
    r"""Hyperparameters of a GPTScratch model (the book's ``GPT_CONFIG_124M`` and friends).

    Args:
        vocab_size: size of the token vocabulary (the book: 50,257, GPT-2's BPE).
        n_positions: context length, the number of learned absolute positions (the book's ``context_length``).
        n_embd: embedding / hidden width (``emb_dim``).
        n_layer: number of transformer blocks (``n_layers``).
        n_head: number of attention heads (``n_heads``); must divide ``n_embd``.
        n_inner: width of the feed-forward hidden layer; ``None`` means ``4 * n_embd`` as in the book.
        embd_pdrop, attn_pdrop, resid_pdrop: the dropouts; the book's one ``drop_rate`` (0.1) fills those not given.
        qkv_bias: query/key/value biases (the book: ``False`` from scratch, ``True`` for OpenAI's weights).
        layer_norm_epsilon: epsilon of the layer norms (the book: 1e-5).
        initializer_range: standard deviation of the GPT-2 weight initialisation.
        tie_word_embeddings: share the token embedding with the output head (GPT-2 does; the book has ``out_head``).
        pad_vocab_size_multiple: round the vocabulary rows up to a multiple of this (nanoGPT's 50,257 -> 50,304 with
            64, for GPU matmuls); the padded rows belong to no token, and logits cover the real tokens only.
        trained_context: the longest window trained on, when shorter than ``n_positions`` (else ``None``).
    """

    model_type = "gpt_scratch"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    attribute_map = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
                     "max_position_embeddings": "n_positions", "intermediate_size": "n_inner"}

    def __init__(
        self,
        vocab_size: int = 50257,
        n_positions: int = 1024,
        n_embd: int = 768,
        n_layer: int = 12,
        n_head: int = 12,
        n_inner: int | None = None,
        embd_pdrop: float | None = None,
        attn_pdrop: float | None = None,
        resid_pdrop: float | None = None,
        qkv_bias: bool = False,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        drop_rate: float | None = None,
        pad_vocab_size_multiple: int | None = None,
        trained_context: int | None = None,
        **kwargs,
    ):
        # The book's single drop_rate fills the three dropouts that are not set one by one (default 0.1, the book's).
        drop_rate = 0.1 if drop_rate is None else drop_rate
        embd_pdrop = drop_rate if embd_pdrop is None else embd_pdrop
        attn_pdrop = drop_rate if attn_pdrop is None else attn_pdrop
        resid_pdrop = drop_rate if resid_pdrop is None else resid_pdrop
        self.vocab_size = vocab_size
        self.n_positions = n_positions
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_inner = n_inner if n_inner is not None else (4 * n_embd if isinstance(n_embd, int) else None)
        self.embd_pdrop = embd_pdrop
        self.attn_pdrop = attn_pdrop
        self.resid_pdrop = resid_pdrop
        self.qkv_bias = qkv_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.tie_word_embeddings = tie_word_embeddings
        self.pad_vocab_size_multiple = pad_vocab_size_multiple
        self.trained_context = trained_context
        # Generation settings passed through **kwargs are dropped by PretrainedConfig in v5: keep use_cache here.
        self.use_cache = use_cache
        # GPT-2's <|endoftext|> (50256) is bos, eos and pad when the vocabulary is GPT-2's; a trained tokenizer
        # passes its own ids (see hfgpt.tokenization.special_token_ids).
        if vocab_size == 50257:
            bos_token_id = 50256 if bos_token_id is None else bos_token_id
            eos_token_id = 50256 if eos_token_id is None else eos_token_id
            pad_token_id = 50256 if pad_token_id is None else pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        super().__init__(**kwargs)
        self.validate_sizes()

    def validate_sizes(self) -> None:
        """Raise a ``ValueError`` naming the field when a value cannot describe a working model."""
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTScratchConfig.{name} must be a positive integer, got {value!r}.")
        multiple = self.pad_vocab_size_multiple
        if multiple is not None and (isinstance(multiple, bool) or not isinstance(multiple, int) or multiple <= 0):
            raise ValueError(f"GPTScratchConfig.pad_vocab_size_multiple must be None or a positive integer, got "
                             f"{multiple!r}.")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTScratchConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                             f"each head gets n_embd / n_head dimensions.")
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"GPTScratchConfig.{name} is a dropout probability and must be in [0, 1), got "
                                 f"{value!r}.")
        if not isinstance(self.layer_norm_epsilon, (int, float)) or self.layer_norm_epsilon <= 0:
            raise ValueError(f"GPTScratchConfig.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}.")
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range < 0:
            raise ValueError(f"GPTScratchConfig.initializer_range must be >= 0, got {self.initializer_range!r}.")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            outside = ids_outside_vocab(getattr(self, name, None), self.vocab_size)
            if outside:
                raise ValueError(f"GPTScratchConfig.{name} ({outside[0]}) is outside the vocabulary "
                                 f"(vocab_size={self.vocab_size}).")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTScratchConfig":
        """A named size (``"124M"`` ... ``"1558M"``, ``"gpt2"``..., ``"tiny"``...) with fields overridden by keyword."""
        key = PRESET_ALIASES.get(name, name)
        if key not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}. Known presets: {', '.join([*PRESETS, *PRESET_ALIASES])}.")
        known = {*inspect.signature(cls.__init__).parameters, *inspect.signature(PretrainedConfig.__init__).parameters,
                 *cls().to_dict(), "num_labels"} - {"self", "kwargs"}
        unknown = sorted(set(overrides) - known)
        if unknown:  # PretrainedConfig would store a typo such as n_layers=2 and build the preset's size regardless
            raise ValueError(f"Preset {name!r} got unknown GPTScratchConfig fields: {unknown} (a typo?); fields "
                             "are named as in GPT-2: n_layer, n_head, n_embd, n_positions, vocab_size, drop_rate, ...")
        return cls(**{**PRESETS[key], **overrides})

    @classmethod
    def from_book_dict(cls, book_config: dict, **overrides) -> "GPTScratchConfig":
        """Build from the book's ``GPT_CONFIG_124M``-style dict (``context_length``, ``emb_dim``, ``drop_rate``...)."""
        unknown = sorted(set(book_config) - set(BOOK_KEYS) - {"drop_rate"})
        if unknown:
            known = sorted(BOOK_KEYS) + ["drop_rate"]
            raise ValueError(f"Unknown key {unknown[0]!r} in the book's config dict; known: {known}.")
        values = {BOOK_KEYS.get(key, key): value for key, value in book_config.items()}
        return cls(**{"tie_word_embeddings": False, **values, **overrides})  # the book's GPTModel has its own out_head

    @property
    def drop_rate(self) -> float | None:
        """The book's single ``drop_rate``: the three dropouts' common value (``None`` when they differ)."""
        rates = {self.embd_pdrop, self.attn_pdrop, self.resid_pdrop}
        return rates.pop() if len(rates) == 1 else None

    @drop_rate.setter
    def drop_rate(self, rate: float) -> None:
        self.embd_pdrop = self.attn_pdrop = self.resid_pdrop = rate

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the token embedding and output head: ``vocab_size`` rounded up to ``pad_vocab_size_multiple``."""
        multiple = getattr(self, "pad_vocab_size_multiple", None)
        if not multiple:
            return self.vocab_size
        return -(-self.vocab_size // multiple) * multiple


__all__ = ["GPTScratchConfig", "PRESETS"]
