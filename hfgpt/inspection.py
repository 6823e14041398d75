"""Look inside a causal LM the way the book's chapters do, for the Space's "Inside the model" tab: the BPE tokens
(chapter 2), the attention weights of each layer and head (chapter 3), the next-token distribution (chapter 5).

This file imports only torch and transformers: the Space uploads it beside ``app.py`` without installing hfgpt. Bad
values raise ``HfgptInputError`` (a ``ValueError``; plain ``ValueError`` when loaded alone).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

try:
    from .errors import HfgptInputError
except ImportError:  # loaded alone, as the Space's inspection.py
    HfgptInputError = ValueError

MAX_TEXT_CHARS = 1000
MAX_TOKENS = 64  # tokens on the attention heatmap's axes; also bounds "step"
MAX_TOP_K = 50
MAX_TEMPERATURE = 5.0  # the book's chapter 5 shows T = 0.1, 1 and 5
BOOK_PROMPT = "Hello, I am"  # chapter 2's example; GPT-2's BPE gives [15496, 11, 314, 716]

# GPT-2's BPE: 50,257 pieces; this is the SHA-256 of ``repr(sorted((id, piece)))`` over them (OpenAI's encoder.json,
# the same pieces as tiktoken's "gpt2"). Ids above 50256 are tokens a fine-tuning added (e.g. a chat template's).
GPT2_VOCAB_SIZE = 50257
GPT2_VOCAB_SHA256 = "8efac2735c7c394b8055a6fea486f511d485d155a3a5f03475447e494d4eca24"


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
        raise HfgptInputError(f"{name} must be an integer from {low} to {high}; got {value!r}")
    if not low <= value <= high:
        raise HfgptInputError(f"{name} must be from {low} to {high}; got {value!r}")
    return int(value)


def context_length(model) -> int:
    return int(model.config.max_position_embeddings)


def load(name_or_path: str):
    """``(model, tokenizer)``: the folder's causal LM with eager attention (the only path returning attention
    weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, trust_remote_code=True, attn_implementation="eager")
    return model.eval(), tokenizer


# ----------------------------------------------------------------------------------------------------------------
# 1. Tokens and ids (chapter 2)
# ----------------------------------------------------------------------------------------------------------------
def encode(tokenizer, text: str, model=None, max_tokens: int = MAX_TOKENS) -> list[int]:
    """The ids of ``text`` (no special tokens), refused when empty or too long."""
    if not isinstance(text, str) or not text:
        raise HfgptInputError(f"text must be a non-empty string (e.g. {BOOK_PROMPT!r}); got {text!r}")
    if len(text) > MAX_TEXT_CHARS:
        raise HfgptInputError(f"text is {len(text)} characters; the inspector takes at most {MAX_TEXT_CHARS}")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    limit = max_tokens if model is None else min(max_tokens, context_length(model))
    if len(ids) > limit:
        raise HfgptInputError(f"text is {len(ids)} tokens; the inspector shows at most {limit}: shorten it")
    return ids


@dataclass
class TokenRow:
    """One token: its ``position``, ``id``, BPE ``piece`` (``Ġ`` is a leading space), the ``text`` it stands for
    (``""`` for the earlier bytes of a split character) and its GPT-2 id (None when the tokenizer is not GPT-2's)."""

    position: int
    id: int
    piece: str
    text: str
    gpt2_id: int | None


def token_table(tokenizer, ids: list[int]) -> list[TokenRow]:
    """One ``TokenRow`` per id; each text is the new end of the running decode (as ``TextStreamer`` prints)."""
    pieces = tokenizer.convert_ids_to_tokens(list(ids))
    gpt2 = is_gpt2_bpe(tokenizer)
    rows, shown = [], ""
    for position, (token_id, piece) in enumerate(zip(ids, pieces)):
        decoded = tokenizer.decode(ids[: position + 1], clean_up_tokenization_spaces=False)
        text = ""
        if not decoded.endswith("\ufffd") or position == len(ids) - 1:
            text, shown = decoded[len(shown):], decoded
        rows.append(TokenRow(position, int(token_id), piece, text,
                             int(token_id) if gpt2 and token_id < GPT2_VOCAB_SIZE else None))
    return rows


def token_spans(rows: list[TokenRow]) -> list[tuple[str, str]]:
    """``(text, ids)`` pairs for coloured text: one per character run, with the ids of its tokens."""
    spans, waiting = [], []
    for row in rows:
        waiting.append(str(row.id))
        if row.text:
            spans.append((row.text, " ".join(waiting)))
            waiting = []
    return spans


def is_gpt2_bpe(tokenizer) -> bool:
    """Whether ``tokenizer`` is GPT-2's BPE, offline: ids 0-50256 hold exactly GPT-2's pieces (``GPT2_VOCAB_SHA256``)
    and the book's prompt encodes to ``[15496, 11, 314, 716]``."""
    cached = getattr(tokenizer, "_hfgpt_is_gpt2_bpe", None)
    if cached is not None:
        return cached
    answer = False
    if len(tokenizer) >= GPT2_VOCAB_SIZE and tokenizer.convert_ids_to_tokens(50256) == "<|endoftext|>" \
            and tokenizer(BOOK_PROMPT, add_special_tokens=False).input_ids == [15496, 11, 314, 716]:
        pieces = sorted((i, p) for p, i in tokenizer.get_vocab().items() if i < GPT2_VOCAB_SIZE)
        answer = hashlib.sha256(repr(pieces).encode()).hexdigest() == GPT2_VOCAB_SHA256
    try:
        tokenizer._hfgpt_is_gpt2_bpe = answer
    except AttributeError:
        pass
    return answer


# ----------------------------------------------------------------------------------------------------------------
# 2. Attention weights (chapter 3) and the last position's logits, from one forward pass
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Inspection:
    """One forward pass over ``ids``: ``attentions`` ``[layers, heads, tokens, tokens]``, next-token ``logits``."""

    ids: list[int]
    attentions: torch.Tensor
    logits: torch.Tensor


@torch.no_grad()
def inspect(model, ids: list[int]) -> Inspection:
    """Run ``model`` once with ``output_attentions=True``; it must use eager attention (see ``load``)."""
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation != "eager":
        raise HfgptInputError(f"the model uses {implementation!r} attention, which returns no attention weights; load "
                              "it with attn_implementation='eager' (inspection.load does)")
    if not ids:
        raise HfgptInputError("ids is empty: there is no token to look at")
    if len(ids) > context_length(model):
        raise HfgptInputError(f"{len(ids)} tokens exceed the model's context of {context_length(model)}")
    out = model(torch.tensor([ids], device=model.device), output_attentions=True, use_cache=False)
    attentions = torch.stack([layer[0] for layer in out.attentions]).float().cpu()
    return Inspection(list(ids), attentions, out.logits[0, -1].float().cpu())


def attention_map(inspection: Inspection, layer: int, head: int | str = "mean") -> torch.Tensor:
    """The ``[tokens, tokens]`` weights of ``layer`` and ``head`` (``"mean"``: the average over the heads)."""
    layers, heads = inspection.attentions.shape[:2]
    layer = _check_int("layer", layer, 0, layers - 1)
    if head == "mean":
        return inspection.attentions[layer].mean(0)
    try:
        head = int(head) if isinstance(head, str) else head
    except ValueError:
        raise HfgptInputError(f"head must be 'mean' or an integer from 0 to {heads - 1}; got {head!r}") from None
    return inspection.attentions[layer, _check_int("head", head, 0, heads - 1)]


# ----------------------------------------------------------------------------------------------------------------
# 3. The next token: top-k, temperature, greedy and sampled choices (chapter 5)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class NextToken:
    """The ``top_k`` most likely next tokens: ``ids``, ``logits`` and ``probabilities`` (the book's ``generate``: top-k,
    temperature, softmax; at temperature 0, 1 on the greedy token), ``greedy_id`` and ``sampled_id`` (with ``seed``)."""

    ids: list[int]
    logits: list[float]
    probabilities: list[float]
    greedy_id: int
    sampled_id: int
    temperature: float
    top_k: int
    seed: int


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 10, seed: int = 0) -> NextToken:
    """The distribution the book's ``generate`` samples from, restricted to the ``top_k`` tokens."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            not 0 <= temperature <= MAX_TEMPERATURE:  # NaN fails the comparison too
        raise HfgptInputError(f"temperature must be a number from 0 to {MAX_TEMPERATURE:g} (0 = greedy); got "
                              f"{temperature!r}")
    top_k = _check_int("top_k", top_k, 1, min(MAX_TOP_K, logits.shape[-1]))
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    top_logits, top_ids = torch.topk(logits.float(), top_k)
    if temperature == 0:
        probabilities = torch.zeros(top_k)
        probabilities[0] = 1.0
    else:
        probabilities = torch.softmax(top_logits / temperature, dim=-1)
    sampled = torch.multinomial(probabilities, 1, generator=torch.Generator().manual_seed(seed))
    return NextToken(top_ids.tolist(), top_logits.tolist(), probabilities.tolist(), int(top_ids[0]),
                     int(top_ids[sampled]), float(temperature), top_k, seed)


def step(ids: list[int], token_id: int, model=None, max_tokens: int = MAX_TOKENS) -> list[int]:
    """``ids`` with ``token_id`` appended (one step of generation), refused beyond ``max_tokens`` or the context."""
    limit = max_tokens if model is None else min(max_tokens, context_length(model))
    if len(ids) + 1 > limit:
        raise HfgptInputError(f"the text already has {len(ids)} tokens, the inspector's limit is {limit}: start again "
                              "from a shorter text")
    return [*ids, int(token_id)]


__all__ = ["BOOK_PROMPT", "MAX_TEMPERATURE", "MAX_TEXT_CHARS", "MAX_TOKENS", "MAX_TOP_K", "Inspection", "NextToken",
           "TokenRow", "attention_map", "encode", "inspect", "is_gpt2_bpe", "load", "next_token",
           "step", "token_spans", "token_table"]
