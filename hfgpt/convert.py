"""Weight conversion: GPT-2's ``GPT2LMHeadModel`` and the book's ``GPTModel`` <-> hfgpt's causal LM, same logits.

The book's chapter 5 ``load_weights_into_gpt`` copies GPT-2's tensors one by one; nanoGPT's ``from_pretrained``
transposes GPT-2's ``Conv1D`` weights for ``nn.Linear``. Here one table maps each of our names to GPT-2's and the
book's; a tuple is concatenated along the output dimension (the book's ``W_query``/``W_key``/``W_value``: our ``qkv``).
"""

from __future__ import annotations

import inspect
import os
import pickle
import zipfile
from collections.abc import Mapping

import torch
from transformers import PretrainedConfig
from transformers.utils import logging

from .checkpoints import listing, load_folder
from .configuration_gpt_scratch import BOOK_KEYS, PRESET_ALIASES, PRESETS, GPTScratchConfig, ids_outside_vocab
from .errors import HfgptFileNotFoundError, HfgptInputError
from .modeling_gpt_scratch import GPTScratchForCausalLM

logger = logging.get_logger(__name__)

GPT2, BOOK = 0, 1  # the columns of the two tables below: our name -> (GPT-2's name, the book's name)
TOP_KEYS = {
    "model.embeddings.tok_emb.weight": ("transformer.wte.weight", "tok_emb.weight"),
    "model.embeddings.pos_emb.weight": ("transformer.wpe.weight", "pos_emb.weight"),
    "model.final_norm.weight": ("transformer.ln_f.weight", "final_norm.scale"),
    "model.final_norm.bias": ("transformer.ln_f.bias", "final_norm.shift"),
    "lm_head.weight": ("lm_head.weight", "out_head.weight"),
}
BLOCK_KEYS = {  # in each block; GPT-2's c_attn columns are q | k | v, as our qkv rows
    "norm1.weight": ("ln_1.weight", "norm1.scale"),
    "norm1.bias": ("ln_1.bias", "norm1.shift"),
    "att.qkv.weight": ("attn.c_attn.weight", ("att.W_query.weight", "att.W_key.weight", "att.W_value.weight")),
    "att.qkv.bias": ("attn.c_attn.bias", ("att.W_query.bias", "att.W_key.bias", "att.W_value.bias")),
    "att.out_proj.weight": ("attn.c_proj.weight", "att.out_proj.weight"),
    "att.out_proj.bias": ("attn.c_proj.bias", "att.out_proj.bias"),
    "norm2.weight": ("ln_2.weight", "norm2.scale"),
    "norm2.bias": ("ln_2.bias", "norm2.shift"),
    "ff.fc_in.weight": ("mlp.c_fc.weight", "ff.layers.0.weight"),
    "ff.fc_in.bias": ("mlp.c_fc.bias", "ff.layers.0.bias"),
    "ff.fc_out.weight": ("mlp.c_proj.weight", "ff.layers.2.weight"),
    "ff.fc_out.bias": ("mlp.c_proj.bias", "ff.layers.2.bias"),
}
OUR_BLOCK = "model.trf_blocks.{i}."
BLOCK_PREFIX = ("transformer.h.{i}.", "trf_blocks.{i}.")
# GPT-2's Conv1D weights are stored [in, out]; nn.Linear wants [out, in] (nanoGPT's `transposed` list).
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GPT2_SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")
# GPT2Config fields that GPTScratchConfig has under the same name.
GPT2_SAME_FIELDS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "embd_pdrop", "attn_pdrop",
                    "resid_pdrop", "layer_norm_epsilon", "initializer_range")
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")

BOOK_BUFFER = "att.mask"  # the causal triu mask, a persistent buffer of each MultiHeadAttention: not a weight
# n_heads is not in the tensors' shapes: by default, the GPT-2 size of that width (the book's four models).
GPT2_HEADS_BY_WIDTH = {PRESETS[size]["n_embd"]: PRESETS[size]["n_head"] for size in PRESET_ALIASES.values()}
# What `config=` of from_book_checkpoint may set: the config's own arguments (tying is read from the weights).
CONFIG_FIELDS = set(inspect.signature(GPTScratchConfig.__init__).parameters) - {"self", "kwargs", "tie_word_embeddings"}
# The tensors with one row per token: padded to config.padded_vocab_size in hfgpt, real vocab_size rows elsewhere.
VOCAB_ROWS_KEYS = ("model.embeddings.tok_emb.weight", "lm_head.weight")


def _key_table(side: int, n_layer: int, qkv_bias: bool) -> dict:
    """``our key -> GPT-2's or the book's key(s)`` for ``n_layer`` blocks (no ``att.qkv.bias`` without qkv bias)."""
    table = {ours: names[side] for ours, names in TOP_KEYS.items()}
    for i in range(n_layer):
        prefix = BLOCK_PREFIX[side].format(i=i)
        for ours, names in BLOCK_KEYS.items():
            if ours == "att.qkv.bias" and not qkv_bias:
                continue
            theirs = tuple(prefix + name for name in _flat(names[side]))
            table[OUR_BLOCK.format(i=i) + ours] = theirs if len(theirs) > 1 else theirs[0]
    return table


def _flat(names) -> tuple:
    return names if isinstance(names, tuple) else (names,)


def _pad_vocab_rows(config: GPTScratchConfig, state_dict: dict) -> dict:
    """Append zero rows to the vocabulary tensors up to ``config.padded_vocab_size`` (no token id reads them)."""
    extra = config.padded_vocab_size - config.vocab_size
    padded = dict(state_dict)
    for key in VOCAB_ROWS_KEYS:
        if extra and key in padded and padded[key].shape[0] == config.vocab_size:
            padded[key] = torch.cat([padded[key], padded[key].new_zeros(extra, *padded[key].shape[1:])])
    return padded


def _real_vocab_rows(config: GPTScratchConfig, state_dict: dict) -> dict:
    """The reverse of :func:`_pad_vocab_rows`: the vocabulary tensors cut to ``config.vocab_size`` rows."""
    return {key: t[: config.vocab_size] if key in VOCAB_ROWS_KEYS else t for key, t in state_dict.items()}


def _assemble(model_class, config, state_dict: dict, source_names: Mapping | None = None,
              where: str = "the weights"):
    """A ``model_class(config)`` holding copies of exactly ``state_dict``, built on the meta device, in eval mode."""
    with torch.device("meta"):
        model = model_class(config)
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(state_dict), set(state_dict) - set(expected)
    if missing or unexpected:  # the tables above and the modeling code disagree: a bug here, not in the input
        raise RuntimeError(f"Internal key mismatch: missing {listing(missing)}; unexpected {listing(unexpected)}.")
    source_names = source_names or {}
    wrong = [f"{source_names.get(key, key)} {tuple(tensor.shape)} (expected {tuple(expected[key].shape)})"
             for key, tensor in state_dict.items() if tensor.shape != expected[key].shape]
    if wrong:
        raise HfgptInputError(f"Tensor shapes in {where} do not match the configuration: " + "; ".join(wrong[:8]))
    model.load_state_dict({k: v.detach().clone().contiguous() for k, v in state_dict.items()}, assign=True)
    model.tie_weights()
    return model.eval()


# ---------------------------------------------------------------------------------------------------------- GPT-2
def _check_gpt2_supported(config) -> None:
    """Refuse GPT-2 variants whose maths GPTScratch cannot express."""
    problems = []
    activation = getattr(config, "activation_function", "gelu_new")
    if activation not in GPT2_SUPPORTED_ACTIVATIONS:
        supported = ", ".join(GPT2_SUPPORTED_ACTIVATIONS)
        problems.append(f"activation_function={activation!r} (only the GELU tanh approximation: {supported})")
    for name in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if getattr(config, name, False):
            problems.append(f"{name}=True" + (" (cross-attention layers)" if name == "add_cross_attention" else ""))
    if not getattr(config, "scale_attn_weights", True):
        problems.append("scale_attn_weights=False (unscaled attention)")
    if problems:
        raise HfgptInputError("This GPT-2 variant cannot be converted to GPTScratch: " + "; ".join(problems) + ".")


def _token_id_in_vocab(token_id, vocab_size: int, name: str):
    if ids_outside_vocab(token_id, vocab_size):
        logger.warning(f"Dropping GPT-2's {name}={token_id!r}: outside the vocabulary (vocab_size={vocab_size}).")
        return None
    return token_id


def from_hf_gpt2(model_or_path, **config_overrides) -> GPTScratchForCausalLM:
    """Convert a ``GPT2LMHeadModel`` (an instance, a folder or a Hub id) to a ``GPTScratchForCausalLM`` with the
    same logits. ``config_overrides`` change fields, e.g. ``drop_rate=0.0`` or ``pad_vocab_size_multiple=64``; one
    that changes a tensor's shape is refused, and so are GPT-2 variants GPTScratch cannot express."""
    from transformers import GPT2LMHeadModel

    if isinstance(model_or_path, (str, os.PathLike)):  # checked before possibly gigabytes of weights are read
        gpt2 = load_folder(model_or_path, GPT2LMHeadModel, "gpt2", "GPT-2 ('gpt2')", check=_check_gpt2_supported)
    elif isinstance(model_or_path, GPT2LMHeadModel):
        gpt2 = model_or_path
    else:
        raise TypeError(f"Expected a GPT2LMHeadModel, a folder or a Hub id, got {type(model_or_path).__name__}.")
    c = gpt2.config
    _check_gpt2_supported(c)
    config = GPTScratchConfig(
        **{name: getattr(c, name) for name in GPT2_SAME_FIELDS},
        **{name: _token_id_in_vocab(getattr(c, name, None), c.vocab_size, name) for name in TOKEN_IDS},
        qkv_bias=True,
        tie_word_embeddings=bool(c.tie_word_embeddings),
    )
    overrides = dict(config_overrides)
    drop_rate = overrides.pop("drop_rate", None)
    try:
        if drop_rate is not None:
            config.drop_rate = drop_rate  # first, so dropouts overridden one by one win
        config.update(overrides)
        config.validate_sizes()
    except ValueError as error:  # a user's override the config refuses
        raise HfgptInputError(str(error)) from error

    source = gpt2.state_dict()
    table = _key_table(GPT2, config.n_layer, qkv_bias=True)
    missing = [theirs for theirs in table.values() if theirs not in source]
    if missing:
        raise HfgptInputError(f"The GPT-2 model lacks {listing(missing)}.")
    state_dict = {ours: source[theirs].t() if theirs.endswith(GPT2_TRANSPOSED) else source[theirs]
                  for ours, theirs in table.items()}
    return _assemble(GPTScratchForCausalLM, config, _pad_vocab_rows(config, state_dict), source_names=table)


def load_causal_lm(model_or_path) -> GPTScratchForCausalLM:
    """A ``GPTScratchForCausalLM`` as given, or loaded from an hfgpt folder (what the converters and exporters read)."""
    if isinstance(model_or_path, GPTScratchForCausalLM):
        return model_or_path
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise TypeError(f"Expected a GPTScratchForCausalLM or a folder, got {type(model_or_path).__name__}.")
    return load_folder(model_or_path, GPTScratchForCausalLM, "gpt_scratch", "hfgpt ('gpt_scratch')")


def to_hf_gpt2(model):
    """Convert a ``GPTScratchForCausalLM`` (or its folder) to a ``GPT2LMHeadModel`` with the same logits."""
    from transformers import GPT2Config, GPT2LMHeadModel

    model = load_causal_lm(model)
    c = model.config
    ours = _real_vocab_rows(c, model.state_dict())
    tok_emb, lm_head = ours["model.embeddings.tok_emb.weight"], ours["lm_head.weight"]
    config = GPT2Config(
        **{name: getattr(c, name) for name in GPT2_SAME_FIELDS + TOKEN_IDS},
        activation_function="gelu_new",
        n_ctx=c.n_positions,  # transformers 5's GPT2Config no longer writes it; llama.cpp's converter reads it
        tie_word_embeddings=bool(c.tie_word_embeddings) and torch.equal(tok_emb, lm_head),  # really one matrix
    )
    table = _key_table(GPT2, c.n_layer, qkv_bias=True)
    state_dict = {}
    for our_key, theirs in table.items():
        tensor = ours.get(our_key)
        if tensor is None:  # att.qkv.bias of a model without qkv bias: GPT-2 needs one, zeros change nothing
            tensor = torch.zeros(3 * c.n_embd, dtype=tok_emb.dtype)
        state_dict[theirs] = tensor.t() if theirs.endswith(GPT2_TRANSPOSED) else tensor
    return _assemble(GPT2LMHeadModel, config, state_dict)


# ----------------------------------------------------------------------------------------------------------- book
def _read_checkpoint(path: str) -> Mapping:
    """A ``.pth`` (read with ``torch.load(weights_only=True)``) or ``.safetensors`` file."""
    if not os.path.isfile(path):
        raise HfgptFileNotFoundError(f"No such checkpoint file: {path!r}.")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except SafetensorError as error:
            raise HfgptInputError(f"{path!r} is not a readable safetensors file: {error}") from None
    with open(path, "rb") as f:
        legacy_pickle = f.read(1) == b"\x80"  # torch.save's pre-1.6 format starts with a pickle protocol byte
    if not zipfile.is_zipfile(path) and not legacy_pickle:
        raise HfgptInputError(f"{path!r} is not a PyTorch checkpoint, or a truncated one (neither torch.save's zip "
                              "format nor its legacy pickle): save the book's model with "
                              "torch.save(model.state_dict(), path).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise HfgptInputError(f"{path!r} is not a plain state dict (torch.load(weights_only=True) refused it: "
                              f"{str(error).splitlines()[0]}). Save the book's model with "
                              f"torch.save(model.state_dict(), path).") from None
    except (RuntimeError, EOFError) as error:
        raise HfgptInputError(f"{path!r} is not a PyTorch checkpoint: {str(error).splitlines()[0]}") from None


def _book_state_dict(path_or_state_dict, where: str) -> dict:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        state_dict = _read_checkpoint(os.fspath(path_or_state_dict))
    else:
        state_dict = path_or_state_dict
    if isinstance(state_dict, Mapping) and "model_state_dict" in state_dict:  # chapter 5's {model, optimizer} dict
        state_dict = state_dict["model_state_dict"]
    save_hint = "save the book's model with torch.save(model.state_dict(), path)"
    if not isinstance(state_dict, Mapping):
        raise HfgptInputError(f"Expected the book's GPTModel state dict (a mapping of names to tensors), but {where} "
                              f"holds a {type(state_dict).__name__}: {save_hint}.")
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        key = not_tensors[0]
        raise HfgptInputError(f"Expected the book's GPTModel state dict (a mapping of names to tensors), but in "
                              f"{where} {key!r} is a {type(state_dict[key]).__name__} ({len(not_tensors)} of "
                              f"{len(state_dict)} entries are not tensors): {save_hint}.")
    for prefix in ("module.", "_orig_mod."):  # DistributedDataParallel (appendix A) / torch.compile wrappers
        if state_dict and all(key.startswith(prefix) for key in state_dict):
            state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _user_config_values(config) -> dict:
    """``config=`` as our field names: a ``GPTScratchConfig``, or a dict with our names or the book's."""
    if config is None:
        return {}
    if isinstance(config, PretrainedConfig):
        return {name: getattr(config, name) for name in CONFIG_FIELDS if hasattr(config, name)}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a GPTScratchConfig or a dict, got {type(config).__name__}.")
    unknown = set(config) - set(BOOK_KEYS) - CONFIG_FIELDS - {"tie_word_embeddings"}
    if unknown:
        known = ", ".join(sorted(set(BOOK_KEYS) | CONFIG_FIELDS))
        raise HfgptInputError(f"Unknown config key {sorted(unknown)[0]!r}; known: {known}.")
    return {BOOK_KEYS.get(key, key): value for key, value in config.items() if key != "tie_word_embeddings"}


def from_book_checkpoint(path_or_state_dict, config=None) -> GPTScratchForCausalLM:
    """Convert the book's ``GPTModel`` weights (a ``model.pth`` read with ``weights_only=True``, a ``.safetensors``
    file, chapter 5's ``{"model_state_dict": ...}`` or a state dict) to a ``GPTScratchForCausalLM``, same logits.
    ``config``: what the tensors cannot tell (``{"n_heads": 12}``; default: the GPT-2 size of that width), in the book's
    names or ours."""
    is_path = isinstance(path_or_state_dict, (str, os.PathLike))
    where = repr(os.fspath(path_or_state_dict)) if is_path else "the state dict"
    source = _book_state_dict(path_or_state_dict, where)
    if "tok_emb.weight" not in source or "pos_emb.weight" not in source:
        raise HfgptInputError(f"{where} is not a state dict of the book's GPTModel: no tok_emb.weight / "
                              f"pos_emb.weight. Keys found: {listing(source)}.")
    vocab_size, n_embd = source["tok_emb.weight"].shape
    blocks = {int(key.split(".")[1]) for key in source if key.startswith("trf_blocks.") and key.split(".")[1].isdigit()}
    if not blocks:
        raise HfgptInputError(f"{where} has no trf_blocks.N.* keys: not the book's GPTModel.")
    inferred = dict(vocab_size=vocab_size, n_positions=source["pos_emb.weight"].shape[0], n_embd=n_embd,
                    n_layer=max(blocks) + 1, qkv_bias="trf_blocks.0.att.W_query.bias" in source)

    table = _key_table(BOOK, inferred["n_layer"], inferred["qkv_bias"])
    expected = {name for theirs in table.values() for name in _flat(theirs)}
    buffers = {BLOCK_PREFIX[BOOK].format(i=i) + BOOK_BUFFER for i in range(inferred["n_layer"])}
    missing, unexpected = expected - set(source), set(source) - expected - buffers
    if missing or unexpected:
        problems = [f"missing keys: {listing(missing)}"] if missing else []
        problems += [f"unexpected keys: {listing(unexpected)}"] if unexpected else []
        raise HfgptInputError(f"{where} does not match the book's GPTModel: " + "; ".join(problems) + ".")
    inferred["n_inner"] = source["trf_blocks.0.ff.layers.0.weight"].shape[0]

    user = _user_config_values(config)
    book_name = {ours: f" ({book})" for book, ours in BOOK_KEYS.items() if book != ours}
    conflicts = [f"{k}{book_name.get(k, '')}={user[k]!r} but the weights have {v!r}"
                 for k, v in inferred.items() if k in user and user[k] != v]
    if conflicts:
        raise HfgptInputError("config contradicts the checkpoint: " + "; ".join(conflicts) + ".")
    if user.get("n_head") is None:
        if n_embd not in GPT2_HEADS_BY_WIDTH:
            raise HfgptInputError(f"Cannot infer the number of attention heads from the weights (emb_dim={n_embd} is "
                                  f"not a GPT-2 size): pass it, e.g. from_book_checkpoint(path, config={{'n_heads': "
                                  f"N}}) or `hfgpt convert --from book ... --n-head N`.")
        user["n_head"] = GPT2_HEADS_BY_WIDTH[n_embd]
    tied = torch.equal(source["out_head.weight"], source["tok_emb.weight"])
    try:  # the book's LayerNorm eps; the config's default drop_rate is the book's 0.1
        config = GPTScratchConfig(**{"layer_norm_epsilon": 1e-5, **inferred, **user, "tie_word_embeddings": tied})
    except ValueError as error:  # a user's value (config=) the config refuses, e.g. n_heads that do not divide
        raise HfgptInputError(str(error)) from error

    state_dict = {ours: torch.cat([source[name] for name in theirs]) if isinstance(theirs, tuple) else source[theirs]
                  for ours, theirs in table.items()}
    source_names = {k: " + ".join(_flat(v)) for k, v in table.items()}
    return _assemble(GPTScratchForCausalLM, config, _pad_vocab_rows(config, state_dict), source_names=source_names,
                     where=where)


def to_book_state_dict(model) -> dict:
    """The reverse of :func:`from_book_checkpoint`: what the book's ``GPTModel`` loads with ``strict=True``."""
    model = load_causal_lm(model)
    c = model.config
    ours = _real_vocab_rows(c, model.state_dict())
    table = _key_table(BOOK, c.n_layer, c.qkv_bias)
    book = {}
    for our_key, theirs in table.items():
        for name, part in zip(_flat(theirs), ours[our_key].detach().chunk(len(_flat(theirs)))):
            book[name] = part.clone()
    mask = torch.triu(torch.ones(c.n_positions, c.n_positions), diagonal=1)
    for i in range(c.n_layer):
        book[BLOCK_PREFIX[BOOK].format(i=i) + BOOK_BUFFER] = mask.clone()
    return book


__all__ = ["from_hf_gpt2", "to_hf_gpt2", "from_book_checkpoint", "to_book_state_dict", "load_causal_lm"]
