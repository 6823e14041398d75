"""Weight conversion: OpenAI's GPT-2 (as transformers' ``GPT2LMHeadModel``) and the book's ``GPTModel`` <-> hfgpt.

What this mirrors:

* the book's chapter 5 ``load_weights_into_gpt`` (and its appendix variants), which copies GPT-2's parameters into
  ``GPTModel`` one by one: ``wte``/``wpe`` to ``tok_emb``/``pos_emb``, the fused ``c_attn`` split into
  ``W_query``/``W_key``/``W_value``, ``ln_1``/``ln_2``/``ln_f`` ``g``/``b`` to ``scale``/``shift``, ...;
* nanoGPT's ``GPT.from_pretrained``, which keeps an explicit list of the tensors that GPT-2 stores in its
  ``Conv1D`` layout (``[in, out]``) and transposes exactly those for ``nn.Linear`` (``[out, in]``).

Every mapping below is a per-block table ``our name -> their name``; a tuple on the right means "concatenate these
along the output dimension" (the book's three ``W_query``/``W_key``/``W_value`` become our fused ``qkv``).

Public API:

* :func:`from_hf_gpt2` -- a ``GPT2LMHeadModel`` (instance, local folder or Hub id) -> ``GPTScratchForCausalLM``;
* :func:`to_hf_gpt2` -- the reverse, with a separate ``lm_head`` when ours is untied;
* :func:`from_book_checkpoint` -- the book's ``GPTModel`` state dict (``model.pth``) -> ``GPTScratchForCausalLM``;
* :func:`to_book_state_dict` -- the reverse: a state dict that the book's ``GPTModel.load_state_dict`` accepts;
* :func:`load_tokenizer` -- the tokenizer next to a checkpoint, or ``None`` when there is none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from transformers import PretrainedConfig
from transformers.utils import logging

from .configuration_gpt_scratch import BOOK_KEYS, GPTScratchConfig
from .modeling_gpt_scratch import GPTScratchForCausalLM


logger = logging.get_logger(__name__)

OUR_BLOCK = "model.trf_blocks.{i}."

# ---------------------------------------------------------------------------------------------------- GPT-2 tables
GPT2_BLOCK = "transformer.h.{i}."
GPT2_TOP_KEYS = {
    "model.embeddings.tok_emb.weight": "transformer.wte.weight",
    "model.embeddings.pos_emb.weight": "transformer.wpe.weight",
    "model.final_norm.weight": "transformer.ln_f.weight",
    "model.final_norm.bias": "transformer.ln_f.bias",
    "lm_head.weight": "lm_head.weight",
}
GPT2_BLOCK_KEYS = {
    "norm1.weight": "ln_1.weight",
    "norm1.bias": "ln_1.bias",
    "att.qkv.weight": "attn.c_attn.weight",  # columns q | k | v, as our rows
    "att.qkv.bias": "attn.c_attn.bias",
    "att.out_proj.weight": "attn.c_proj.weight",
    "att.out_proj.bias": "attn.c_proj.bias",
    "norm2.weight": "ln_2.weight",
    "norm2.bias": "ln_2.bias",
    "ff.fc_in.weight": "mlp.c_fc.weight",
    "ff.fc_in.bias": "mlp.c_fc.bias",
    "ff.fc_out.weight": "mlp.c_proj.weight",
    "ff.fc_out.bias": "mlp.c_proj.bias",
}
# GPT-2's Conv1D weights are stored [in, out]; nn.Linear wants [out, in] (nanoGPT's `transposed` list).
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GPT2_SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")

# ----------------------------------------------------------------------------------------------------- book tables
BOOK_BLOCK = "trf_blocks.{i}."
BOOK_TOP_KEYS = {
    "model.embeddings.tok_emb.weight": "tok_emb.weight",
    "model.embeddings.pos_emb.weight": "pos_emb.weight",
    "model.final_norm.weight": "final_norm.scale",
    "model.final_norm.bias": "final_norm.shift",
    "lm_head.weight": "out_head.weight",
}
BOOK_BLOCK_KEYS = {
    "norm1.weight": "norm1.scale",
    "norm1.bias": "norm1.shift",
    "att.qkv.weight": ("att.W_query.weight", "att.W_key.weight", "att.W_value.weight"),
    "att.qkv.bias": ("att.W_query.bias", "att.W_key.bias", "att.W_value.bias"),
    "att.out_proj.weight": "att.out_proj.weight",
    "att.out_proj.bias": "att.out_proj.bias",
    "norm2.weight": "norm2.scale",
    "norm2.bias": "norm2.shift",
    "ff.fc_in.weight": "ff.layers.0.weight",
    "ff.fc_in.bias": "ff.layers.0.bias",
    "ff.fc_out.weight": "ff.layers.2.weight",
    "ff.fc_out.bias": "ff.layers.2.bias",
}
BOOK_BUFFER = "att.mask"  # the causal triu mask, a persistent buffer of each MultiHeadAttention: not a weight
# n_heads is not in the tensors' shapes: when not given, the GPT-2 size with that width (the book's four models).
GPT2_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 20, 1600: 25}

# Our config fields that a user may set through `config=` (plus the book's names from BOOK_KEYS and drop_rate).
CONFIG_FIELDS = (
    "vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "embd_pdrop", "attn_pdrop",
    "resid_pdrop", "qkv_bias", "layer_norm_epsilon", "initializer_range", "bos_token_id", "eos_token_id",
    "pad_token_id", "pad_vocab_size_multiple",
)  # fmt: skip
# The tensors with one row per token: padded to config.padded_vocab_size in hfgpt, real vocab_size rows elsewhere.
VOCAB_ROWS_KEYS = ("model.embeddings.tok_emb.weight", "lm_head.weight")


# ------------------------------------------------------------------------------------------------------- helpers
def _key_table(top: dict, block: dict, block_prefix: str, n_layer: int, qkv_bias: bool) -> dict:
    """Full ``our key -> their key(s)`` table for ``n_layer`` blocks (without ``att.qkv.bias`` if no qkv bias)."""
    table = dict(top)
    for i in range(n_layer):
        for ours, theirs in block.items():
            if ours == "att.qkv.bias" and not qkv_bias:
                continue
            prefix = block_prefix.format(i=i)
            theirs = tuple(prefix + t for t in theirs) if isinstance(theirs, tuple) else prefix + theirs
            table[OUR_BLOCK.format(i=i) + ours] = theirs
    return table


def _listing(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _pad_vocab_rows(config: GPTScratchConfig, state_dict: dict) -> dict:
    """Append zero rows to the vocabulary tensors up to ``config.padded_vocab_size`` (``pad_vocab_size_multiple``).
    Zeros: no token id reads those embedding rows and the model slices their logits off, so any value would do;
    zeros keep the padding visibly empty and change nothing under weight decay."""
    extra = config.padded_vocab_size - config.vocab_size
    if extra == 0:
        return state_dict
    state_dict = dict(state_dict)
    for key in VOCAB_ROWS_KEYS:
        tensor = state_dict[key]
        if tensor.shape[0] == config.vocab_size:
            state_dict[key] = torch.cat([tensor, tensor.new_zeros(extra, *tensor.shape[1:])])
    return state_dict


def _real_vocab_rows(config: GPTScratchConfig, state_dict: dict) -> dict:
    """The reverse of :func:`_pad_vocab_rows`: the vocabulary tensors cut to ``config.vocab_size`` rows."""
    return {key: t[: config.vocab_size] if key in VOCAB_ROWS_KEYS else t for key, t in state_dict.items()}


def _drop_rate_overrides(values: dict, overrides: Mapping) -> dict:
    """Apply overrides; a ``drop_rate`` override replaces the three dropouts that are not overridden one by one."""
    values = dict(values)
    if "drop_rate" in overrides:
        for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
            if name not in overrides:
                values.pop(name, None)
    values.update(overrides)
    return values


def _build(config: GPTScratchConfig, state_dict: dict, source_names: Mapping | None = None) -> GPTScratchForCausalLM:
    """A ``GPTScratchForCausalLM`` holding exactly ``state_dict`` (our key names), in eval mode.

    The model is created on the meta device (no random initialisation: instant even for GPT-2 XL), the tensors are
    assigned as its parameters, and ``tie_weights`` re-ties ``lm_head`` to ``tok_emb`` when the config says so."""
    with torch.device("meta"):
        model = GPTScratchForCausalLM(config)
    expected = model.state_dict()
    state_dict = _pad_vocab_rows(config, state_dict)
    missing, unexpected = set(expected) - set(state_dict), set(state_dict) - set(expected)
    if missing or unexpected:  # the tables above and the modeling file disagree: a bug here, not in the input
        raise ValueError(f"Internal key mismatch: missing {_listing(missing)}; unexpected {_listing(unexpected)}.")
    source_names = source_names or {}
    wrong = [
        f"{source_names.get(key, key)} {tuple(tensor.shape)} (expected {tuple(expected[key].shape)})"
        for key, tensor in state_dict.items()
        if tensor.shape != expected[key].shape
    ]
    if wrong:
        raise ValueError("Tensor shapes do not match the configuration: " + "; ".join(wrong[:8]))
    # Copies, so the new model never shares memory with the source model or the caller's dict.
    model.load_state_dict({k: v.detach().clone().contiguous() for k, v in state_dict.items()}, assign=True)
    model.tie_weights()
    return model.eval()


def _flat(names) -> tuple:
    return names if isinstance(names, tuple) else (names,)


# ---------------------------------------------------------------------------------------------------------- GPT-2
def _check_gpt2_supported(config) -> None:
    """Refuse GPT-2 variants whose maths GPTScratch cannot express."""
    problems = []
    activation = getattr(config, "activation_function", "gelu_new")
    if activation not in GPT2_SUPPORTED_ACTIVATIONS:
        supported = ", ".join(GPT2_SUPPORTED_ACTIVATIONS)
        problems.append(f"activation_function={activation!r} (only the GELU tanh approximation: {supported})")
    if getattr(config, "scale_attn_by_inverse_layer_idx", False):
        problems.append("scale_attn_by_inverse_layer_idx=True")
    if getattr(config, "reorder_and_upcast_attn", False):
        problems.append("reorder_and_upcast_attn=True")
    if getattr(config, "add_cross_attention", False):
        problems.append("add_cross_attention=True (cross-attention layers)")
    if not getattr(config, "scale_attn_weights", True):
        problems.append("scale_attn_weights=False (unscaled attention)")
    if problems:
        raise ValueError("This GPT-2 variant cannot be converted to GPTScratch: " + "; ".join(problems) + ".")


def _token_id_in_vocab(token_id, vocab_size: int, name: str):
    ids = token_id if isinstance(token_id, (list, tuple)) else [token_id]
    if any(i is not None and not 0 <= i < vocab_size for i in ids):
        logger.warning(f"Dropping GPT-2's {name}={token_id!r}: outside the vocabulary (vocab_size={vocab_size}).")
        return None
    return token_id


def _load_gpt2(path: str | os.PathLike):
    from transformers import AutoConfig, GPT2LMHeadModel

    config = AutoConfig.from_pretrained(path)
    if config.model_type != "gpt2":
        raise ValueError(f"{os.fspath(path)!r} holds a {config.model_type!r} model, not a GPT-2 ('gpt2') one.")
    _check_gpt2_supported(config)  # before loading possibly gigabytes of weights
    model, info = GPT2LMHeadModel.from_pretrained(path, config=config, output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"]:
        raise ValueError(
            f"{os.fspath(path)!r} is not a complete GPT2LMHeadModel checkpoint: missing "
            f"{_listing(info['missing_keys'])}; mismatched {_listing(k for k, *_ in info['mismatched_keys'])}."
        )
    return model


def from_hf_gpt2(model_or_path, **config_overrides) -> GPTScratchForCausalLM:
    """Convert a transformers ``GPT2LMHeadModel`` (any size) to a ``GPTScratchForCausalLM`` with the same logits.

    Args:
        model_or_path: a ``GPT2LMHeadModel`` instance, a local folder written by ``save_pretrained``, or a Hub id
            such as ``"openai-community/gpt2"`` (loaded with ``GPT2LMHeadModel.from_pretrained``).
        **config_overrides: ``GPTScratchConfig`` fields to change, e.g. ``drop_rate=0.0`` for fine-tuning, or
            ``pad_vocab_size_multiple=64`` to pad the vocabulary rows (50,257 -> 50,304, zero rows; same logits).
            Fields that change tensor shapes (``n_embd``, ...) are refused by the shape check.

    The result has ``qkv_bias=True`` (GPT-2 has query/key/value biases), GPT-2's layer-norm epsilon, dropouts,
    special token ids and tying, and the source's dtype. Raises ``ValueError`` for GPT-2 variants GPTScratch cannot
    represent (another activation, ``scale_attn_by_inverse_layer_idx``, ``reorder_and_upcast_attn``,
    cross-attention, unscaled attention).
    """
    from transformers import GPT2LMHeadModel

    if isinstance(model_or_path, (str, os.PathLike)):
        gpt2 = _load_gpt2(model_or_path)
    elif isinstance(model_or_path, GPT2LMHeadModel):
        gpt2 = model_or_path
    else:
        raise TypeError(f"Expected a GPT2LMHeadModel, a folder or a Hub id, got {type(model_or_path).__name__}.")
    c = gpt2.config
    _check_gpt2_supported(c)
    values = dict(
        vocab_size=c.vocab_size,
        n_positions=c.n_positions,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_inner=c.n_inner,  # None -> 4 * n_embd, as GPT-2
        embd_pdrop=c.embd_pdrop,
        attn_pdrop=c.attn_pdrop,
        resid_pdrop=c.resid_pdrop,
        qkv_bias=True,
        layer_norm_epsilon=c.layer_norm_epsilon,
        initializer_range=c.initializer_range,
        tie_word_embeddings=bool(c.tie_word_embeddings),
        **{
            name: _token_id_in_vocab(getattr(c, name, None), c.vocab_size, name)
            for name in ("bos_token_id", "eos_token_id", "pad_token_id")
        },
    )
    config = GPTScratchConfig(**_drop_rate_overrides(values, config_overrides))

    source = gpt2.state_dict()
    table = _key_table(GPT2_TOP_KEYS, GPT2_BLOCK_KEYS, GPT2_BLOCK, config.n_layer, qkv_bias=True)
    missing = [theirs for theirs in table.values() if theirs not in source]
    if missing:
        raise ValueError(f"The GPT-2 model lacks {_listing(missing)}.")
    state_dict = {
        ours: source[theirs].t() if theirs.endswith(GPT2_TRANSPOSED) else source[theirs]
        for ours, theirs in table.items()
    }
    return _build(config, state_dict, source_names=table)


def _load_ours(model_or_path) -> GPTScratchForCausalLM:
    if isinstance(model_or_path, (str, os.PathLike)):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_or_path)
        if not isinstance(config, GPTScratchConfig):
            raise ValueError(
                f"{os.fspath(model_or_path)!r} holds a {config.model_type!r} model, not an hfgpt ('gpt_scratch') one."
            )
        return GPTScratchForCausalLM.from_pretrained(model_or_path, config=config)
    if not isinstance(model_or_path, GPTScratchForCausalLM):
        raise TypeError(f"Expected a GPTScratchForCausalLM or a folder, got {type(model_or_path).__name__}.")
    return model_or_path


def to_hf_gpt2(model):
    """Convert a ``GPTScratchForCausalLM`` (or a folder holding one) to a transformers ``GPT2LMHeadModel`` with the
    same logits.

    GPT-2 always has a ``c_attn`` bias: a model with ``qkv_bias=False`` (the book's training setting) gets zeros
    there. An untied ``lm_head`` (the book's separate ``out_head``) becomes a GPT-2 with
    ``tie_word_embeddings=False`` that keeps its own ``lm_head.weight`` through ``save_pretrained`` /
    ``from_pretrained``. The rows of a padded vocabulary (``pad_vocab_size_multiple``) are dropped: the GPT-2 has
    ``vocab_size`` rows.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    model = _load_ours(model)
    c = model.config
    ours = _real_vocab_rows(c, model.state_dict())
    tok_emb, lm_head = ours["model.embeddings.tok_emb.weight"], ours["lm_head.weight"]
    # Tie only when the weights really are one matrix; otherwise GPT-2 keeps a separate lm_head.
    tied = bool(c.tie_word_embeddings) and torch.equal(tok_emb, lm_head)
    config = GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.n_positions,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_inner=c.n_inner,
        activation_function="gelu_new",
        resid_pdrop=c.resid_pdrop,
        embd_pdrop=c.embd_pdrop,
        attn_pdrop=c.attn_pdrop,
        layer_norm_epsilon=c.layer_norm_epsilon,
        initializer_range=c.initializer_range,
        bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id,
        pad_token_id=c.pad_token_id,
        tie_word_embeddings=tied,
    )
    table = _key_table(GPT2_TOP_KEYS, GPT2_BLOCK_KEYS, GPT2_BLOCK, c.n_layer, qkv_bias=True)
    state_dict = {}
    for our_key, theirs in table.items():
        if our_key not in ours:  # att.qkv.bias of a model without qkv bias: GPT-2 needs one, zeros change nothing
            tensor = torch.zeros(3 * c.n_embd, dtype=tok_emb.dtype)
        else:
            tensor = ours[our_key]
        state_dict[theirs] = tensor.t() if theirs.endswith(GPT2_TRANSPOSED) else tensor
    with torch.device("meta"):
        gpt2 = GPT2LMHeadModel(config)
    gpt2.load_state_dict({k: v.detach().clone().contiguous() for k, v in state_dict.items()}, assign=True)
    gpt2.tie_weights()
    return gpt2.eval()


# ----------------------------------------------------------------------------------------------------------- book
def _load_book_state_dict(path_or_state_dict) -> dict:
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = os.fspath(path_or_state_dict)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such checkpoint file: {path!r}.")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state_dict = load_file(path)
        else:
            import pickle

            try:
                state_dict = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as error:
                raise ValueError(
                    f"{path!r} is not a plain state dict (torch.load(weights_only=True) refused it: "
                    f"{str(error).splitlines()[0]}). Save the book's model with "
                    f"torch.save(model.state_dict(), path)."
                ) from None
            except (RuntimeError, EOFError) as error:
                raise ValueError(f"{path!r} is not a PyTorch checkpoint: {str(error).splitlines()[0]}") from None
    else:
        state_dict = path_or_state_dict
    if isinstance(state_dict, Mapping) and "model_state_dict" in state_dict:  # chapter 5's {model, optimizer} dict
        state_dict = state_dict["model_state_dict"]
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError("Expected the book's GPTModel state dict (a mapping of names to tensors).")
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
    values = {}
    for key, value in config.items():
        if key in BOOK_KEYS:
            values[BOOK_KEYS[key]] = value
        elif key in CONFIG_FIELDS or key == "drop_rate":
            values[key] = value
        elif key != "tie_word_embeddings":  # decided by the weights, see from_book_checkpoint
            known = sorted(set(BOOK_KEYS) | set(CONFIG_FIELDS) | {"drop_rate"})
            raise ValueError(f"Unknown config key {key!r}; known: {', '.join(known)}.")
    return values


def from_book_checkpoint(path_or_state_dict, config=None) -> GPTScratchForCausalLM:
    """Convert the book's ``GPTModel`` weights to a ``GPTScratchForCausalLM`` with the same logits.

    Args:
        path_or_state_dict: a file written by ``torch.save(model.state_dict(), "model.pth")``, or by chapter 5's
            ``torch.save({"model_state_dict": ..., "optimizer_state_dict": ...}, path)`` (the optimizer state is
            ignored), or such a dict itself. Files are read with ``torch.load(weights_only=True)`` only (and
            ``.safetensors`` files with safetensors).
        config: what the tensors cannot tell: a ``GPTScratchConfig`` or a dict in the book's names
            (``{"n_heads": 12, "drop_rate": 0.1}``) or ours. ``n_heads`` defaults to the GPT-2 size of that width
            (768 -> 12, 1024 -> 16, 1280 -> 20, 1600 -> 25), ``drop_rate`` to the book's 0.1. Shape fields
            (``vocab_size``, ``context_length``, ``emb_dim``, ``n_layers``, ``qkv_bias``) come from the tensors; a
            ``config`` that contradicts them is an error.

    The book's separate ``out_head`` stays untied (``tie_word_embeddings=False``) unless it equals ``tok_emb``
    exactly. The layer-norm epsilon is the book's 1e-5. The ``att.mask`` buffers are not weights and are skipped.
    Raises ``ValueError`` listing missing or unexpected keys.
    """
    source = _load_book_state_dict(path_or_state_dict)
    if "tok_emb.weight" not in source or "pos_emb.weight" not in source:
        raise ValueError(
            "Not a state dict of the book's GPTModel: no tok_emb.weight / pos_emb.weight. Keys found: "
            f"{_listing(source)}."
        )
    vocab_size, n_embd = source["tok_emb.weight"].shape
    blocks = {int(key.split(".")[1]) for key in source if key.startswith("trf_blocks.") and key.split(".")[1].isdigit()}
    inferred = dict(
        vocab_size=vocab_size,
        n_positions=source["pos_emb.weight"].shape[0],
        n_embd=n_embd,
        n_layer=max(blocks) + 1 if blocks else 0,
        qkv_bias="trf_blocks.0.att.W_query.bias" in source,
    )
    if "trf_blocks.0.ff.layers.0.weight" in source:
        inferred["n_inner"] = source["trf_blocks.0.ff.layers.0.weight"].shape[0]
    if inferred["n_layer"] == 0:
        raise ValueError("The state dict has no trf_blocks.N.* keys: not the book's GPTModel.")

    table = _key_table(BOOK_TOP_KEYS, BOOK_BLOCK_KEYS, BOOK_BLOCK, inferred["n_layer"], inferred["qkv_bias"])
    expected = {name for theirs in table.values() for name in _flat(theirs)}
    buffers = {BOOK_BLOCK.format(i=i) + BOOK_BUFFER for i in range(inferred["n_layer"])}
    missing, unexpected = expected - set(source), set(source) - expected - buffers
    if missing or unexpected:
        raise ValueError(
            "The state dict does not match the book's GPTModel: "
            + "; ".join(
                part
                for part in (
                    f"missing keys: {_listing(missing)}" if missing else "",
                    f"unexpected keys: {_listing(unexpected)}" if unexpected else "",
                )
                if part
            )
            + "."
        )

    user = _user_config_values(config)
    book_name = {ours: f" ({book})" for book, ours in BOOK_KEYS.items() if book != ours}
    conflicts = [
        f"{k}{book_name.get(k, '')}={user[k]!r} but the weights have {v!r}"
        for k, v in inferred.items()
        if k in user and user[k] != v
    ]
    if conflicts:
        raise ValueError("config contradicts the checkpoint: " + "; ".join(conflicts) + ".")
    if user.get("n_head") is None:
        if n_embd not in GPT2_HEADS_BY_WIDTH:
            raise ValueError(
                f"Cannot infer the number of attention heads from the weights (emb_dim={n_embd} is not a GPT-2 "
                f"size): pass it, e.g. from_book_checkpoint(path, config={{'n_heads': N}}) or "
                f"`hfgpt convert --from book ... --n-head N`."
            )
        user["n_head"] = GPT2_HEADS_BY_WIDTH[n_embd]
    values = dict(inferred, layer_norm_epsilon=1e-5, drop_rate=0.1)  # the book's LayerNorm eps and drop_rate
    values = _drop_rate_overrides(values, user)
    values["tie_word_embeddings"] = torch.equal(source["out_head.weight"], source["tok_emb.weight"])
    config = GPTScratchConfig(**values)

    state_dict = {
        ours: torch.cat([source[name] for name in theirs]) if isinstance(theirs, tuple) else source[theirs]
        for ours, theirs in table.items()
    }
    return _build(config, state_dict, source_names={k: " + ".join(_flat(v)) for k, v in table.items()})


def to_book_state_dict(model) -> dict:
    """The reverse of :func:`from_book_checkpoint`: a state dict that the book's ``GPTModel`` (built with the same
    ``emb_dim``, ``n_heads``, ... and ``qkv_bias``) loads with ``load_state_dict(strict=True)``, ``att.mask``
    buffers included. A tied ``lm_head`` is written out as a copy into ``out_head.weight``; the rows of a padded
    vocabulary are dropped."""
    model = _load_ours(model)
    c = model.config
    ours = _real_vocab_rows(c, model.state_dict())
    table = _key_table(BOOK_TOP_KEYS, BOOK_BLOCK_KEYS, BOOK_BLOCK, c.n_layer, c.qkv_bias)
    book = {}
    for our_key, theirs in table.items():
        tensor = ours[our_key].detach()
        for name, part in zip(_flat(theirs), tensor.chunk(len(_flat(theirs)))):
            book[name] = part.clone()
    mask = torch.triu(torch.ones(c.n_positions, c.n_positions), diagonal=1)
    for i in range(c.n_layer):
        book[BOOK_BLOCK.format(i=i) + BOOK_BUFFER] = mask.clone()
    return book


# ------------------------------------------------------------------------------------------------------ tokenizer
def load_tokenizer(path_or_id):
    """The tokenizer next to a checkpoint (folder or Hub id), or ``None`` when there is none
    (:func:`hfgpt.tokenization.load_tokenizer`, which refuses folders without tokenizer files)."""
    from .tokenization import load_tokenizer as load

    try:
        return load(path_or_id)
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.info(f"No tokenizer loaded from {os.fspath(path_or_id)!r}: {error}")
        return None


__all__ = ["from_hf_gpt2", "to_hf_gpt2", "from_book_checkpoint", "to_book_state_dict", "load_tokenizer"]
