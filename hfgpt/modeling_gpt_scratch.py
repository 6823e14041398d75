"""The GPT of *Build a Large Language Model (From Scratch)* as a transformers model, in the book's order:

1. token + position embeddings (chapter 2)            ``GPTScratchEmbeddings``
2. causal multi-head attention (chapter 3)            ``eager_attention_forward``, ``GPTScratchCausalSelfAttention``
3. GELU feed-forward network (chapter 4)              ``GPTScratchFeedForward``
4. pre-LayerNorm block with shortcuts (chapter 4)     ``GPTScratchTransformerBlock``
5. the GPT model (chapter 4)                          ``GPTScratchModel``
6. output head, next-token loss (chapters 4-5)        ``GPTScratchForCausalLM``
7. classification head on the last token (chapter 6)  ``GPTScratchForSequenceClassification``

What differs from the book: transformers' attention interface (``"eager"`` is the book's mask + softmax), one fused
``qkv``, a KV ``Cache``, padding-aware masks and positions, an optional padded vocabulary; speed paths are attached
by ``attach_fast_paths`` (``fast_paths.py``). Only torch, transformers and sibling files are imported:
``save_pretrained`` copies the siblings next to the weights, so the folder loads with ``trust_remote_code=True``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (BaseModelOutputWithPast, CausalLMOutputWithPast,
                                           SequenceClassifierOutputWithPast)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.output_capturing import capture_outputs

from .configuration_gpt_scratch import GPTScratchConfig
from .errors import HfgptInputError
from .fast_paths import attach_fast_paths


# ---- Plumbing: what differs between transformers versions, and what a saved folder records --------------------
# A saved folder's remote code may run on transformers < 5.24, which names the `cache` argument `past_key_values`.
CACHE_NAME = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


def renamed_past_key_values(forward: Callable) -> Callable:
    """Where transformers names the cache ``cache`` (5.24+), ``past_key_values=`` still works, with a warning."""
    if CACHE_NAME == "past_key_values":
        return forward
    return deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")(forward)


# transformers 5.25's caches take the attention kwargs (`kwargs=`, which continuous batching's paged cache fills);
# older ones do not.
CACHE_UPDATE_TAKES_KWARGS = "kwargs" in inspect.signature(Cache.update).parameters


AUTO_MAP = {
    "AutoConfig": "configuration_gpt_scratch.GPTScratchConfig",
    "AutoModel": "modeling_gpt_scratch.GPTScratchModel",
    "AutoModelForCausalLM": "modeling_gpt_scratch.GPTScratchForCausalLM",
    "AutoModelForSequenceClassification": "modeling_gpt_scratch.GPTScratchForSequenceClassification",
}


def head_output(output_class: type, base_outputs: BaseModelOutputWithPast, **fields):
    """A head's ``output_class`` with its own ``fields`` and the base model's cache, hidden states and attentions."""
    cache = {CACHE_NAME: getattr(base_outputs, CACHE_NAME)}
    return output_class(**fields, **cache, hidden_states=base_outputs.hidden_states, attentions=base_outputs.attentions)


# ---- 1. Token + absolute position embeddings (chapter 2) ------------------------------------------------------
class GPTScratchEmbeddings(nn.Module):
    """The book's ``tok_emb`` + ``pos_emb`` + ``drop_emb`` (``tok_emb`` has ``config.padded_vocab_size`` rows)."""

    def __init__(self, config: GPTScratchConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(config.padded_vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.n_positions, config.n_embd)
        self.drop_emb = nn.Dropout(config.embd_pdrop)

    def forward(self, input_ids: torch.LongTensor | None, position_ids: torch.LongTensor,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.tok_emb(input_ids)
        return self.drop_emb(inputs_embeds + self.pos_emb(position_ids))


# ---- 2. Causal multi-head self-attention (chapter 3) ----------------------------------------------------------
def eager_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                            **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's attention step by step (``attn_implementation="eager"``): scores ``q @ k^T / sqrt(head_dim)``, future
    positions masked, softmax, dropout, weights times values; transformers' mask is additive and covers padding too."""
    attn_scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_scores = attn_scores + attention_mask[:, :, :, : key.shape[-2]]
    elif query.shape[-2] > 1:  # no mask given: the book's causal triu mask
        q_len, k_len = query.shape[-2], key.shape[-2]
        future = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).triu(k_len - q_len + 1)
        attn_scores = attn_scores.masked_fill(future, float("-inf"))
    attn_weights = torch.softmax(attn_scores, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)
    return attn_output.transpose(1, 2).contiguous(), attn_weights


class GPTScratchCausalSelfAttention(nn.Module):
    """The book's ``MultiHeadAttention`` with the three projections fused into ``qkv``."""

    def __init__(self, config: GPTScratchConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.scaling = self.head_dim**-0.5
        self.is_causal = True  # read by the sdpa / flash attention functions
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.n_embd, config.n_embd)
        self.out_proj.writes_to_residual = True  # GPT-2 scales its init by 1/sqrt(2 * n_layer)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)  # a module: eval() and TRL's disable_dropout see it

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: Cache | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, num_tokens, _ = hidden_states.shape
        head_shape = (batch, num_tokens, self.n_head, self.head_dim)
        query, key, value = self.qkv(hidden_states).split(self.config.n_embd, dim=-1)
        # [batch, tokens, n_embd] -> [batch, heads, tokens, head_dim]
        query = query.view(head_shape).transpose(1, 2)
        key = key.view(head_shape).transpose(1, 2)
        value = value.view(head_shape).transpose(1, 2)

        if cache is not None:  # append this step's keys/values to the cache and attend over all of them
            update_kwargs = {"kwargs": kwargs} if CACHE_UPDATE_TAKES_KWARGS else {}
            key, value = cache.update(key, value, self.layer_idx, **update_kwargs)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
                                                                              eager_attention_forward)
        dropout = self.attn_dropout.p if self.training else 0.0
        attn_output, attn_weights = attention_interface(self, query, key, value, attention_mask, dropout=dropout,
                                                        scaling=self.scaling, **kwargs)
        attn_output = attn_output.reshape(batch, num_tokens, -1)  # merge the heads
        return self.out_proj(attn_output), attn_weights


# ---- 3. Feed-forward network with GELU (chapter 4) ------------------------------------------------------------
class GPTScratchFeedForward(nn.Module):
    """The book's ``FeedForward``: expand to ``4 * n_embd``, GELU (tanh approximation, as GPT-2), project back."""

    def __init__(self, config: GPTScratchConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.n_embd, config.n_inner)
        self.act = nn.GELU(approximate="tanh")
        self.fc_out = nn.Linear(config.n_inner, config.n_embd)
        self.fc_out.writes_to_residual = True

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.act(self.fc_in(hidden_states)))


# ---- 4. Transformer block: pre-LayerNorm, shortcut connections (chapter 4) ------------------------------------
class GPTScratchTransformerBlock(GradientCheckpointingLayer):
    """The book's ``TransformerBlock``: ``x + drop(att(norm1(x)))``, then ``x + drop(ff(norm2(x)))``."""

    def __init__(self, config: GPTScratchConfig, layer_idx: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.att = GPTScratchCausalSelfAttention(config, layer_idx)
        self.norm2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.ff = GPTScratchFeedForward(config)
        self.drop_shortcut = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: Cache | None = None, **kwargs) -> torch.Tensor:
        shortcut = hidden_states
        attn_output, _ = self.att(self.norm1(hidden_states), attention_mask=attention_mask, cache=cache, **kwargs)
        hidden_states = shortcut + self.drop_shortcut(attn_output)

        shortcut = hidden_states
        hidden_states = shortcut + self.drop_shortcut(self.ff(self.norm2(hidden_states)))
        return hidden_states


# ---- Plumbing: the base class transformers reads (capabilities, initialisation, saving, resizing) --------------
class GPTScratchPreTrainedModel(PreTrainedModel):
    """What transformers reads about the model; saving (every head in ``auto_map``, FSDP 2), resizing the vocabulary."""

    config_class = GPTScratchConfig
    config: GPTScratchConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPTScratchTransformerBlock"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {"hidden_states": GPTScratchTransformerBlock, "attentions": GPTScratchCausalSelfAttention}

    def save_pretrained(self, save_directory, *args, **kwargs):
        # List every head in auto_map (save_pretrained adds only this class), so one saved folder loads as
        # AutoModel, AutoModelForCausalLM or, with a fresh head, AutoModelForSequenceClassification under
        # trust_remote_code.
        self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        # FSDP 2 swaps the class for a subclass torch generates (FSDPGPTScratchForCausalLM): save as the class it
        # wraps, so the folder records and copies this code, not torch's.
        wrapped = type(self)
        self.__class__ = next(cls for cls in wrapped.__mro__ if not cls.__module__.startswith("torch."))
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.__class__ = wrapped

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """``resize_token_embeddings`` keeping ``config.vocab_size`` the real tokens (else padded ids get sampled)."""
        if new_num_tokens is None and pad_to_multiple_of is None:
            return self.get_input_embeddings()
        if pad_to_multiple_of is not None and not isinstance(pad_to_multiple_of, int):  # transformers' own words
            raise HfgptInputError(f"Asking to pad the embedding matrix to a multiple of `{pad_to_multiple_of}`, "
                                  "which is not and integer. Please make sure to pass an integer")
        for name, value in (("new_num_tokens", new_num_tokens), ("pad_to_multiple_of", pad_to_multiple_of)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise HfgptInputError(f"resize_token_embeddings: {name} must be a positive integer, got {value!r}.")
        if pad_to_multiple_of is not None:
            self.config.pad_vocab_size_multiple = pad_to_multiple_of
        num_tokens = self.config.vocab_size if new_num_tokens is None else new_num_tokens
        # First exactly the real tokens (drops the old padding rows, initialises new tokens), then the new padding.
        super().resize_token_embeddings(num_tokens, mean_resizing=mean_resizing)
        self.config.vocab_size = num_tokens
        if self.config.padded_vocab_size != num_tokens:
            super().resize_token_embeddings(self.config.padded_vocab_size, mean_resizing=False)
        self.config.vocab_size = self.vocab_size = num_tokens
        return self.get_input_embeddings()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation; the projections that write into the residual stream scaled by 1/sqrt(2 * n_layer)."""
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            if getattr(module, "writes_to_residual", False):
                std = std / math.sqrt(2 * self.config.n_layer)
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


# ---- 5. The GPT model: embeddings, blocks, final norm (chapter 4) ---------------------------------------------
class GPTScratchModel(GPTScratchPreTrainedModel):
    """The book's ``GPTModel`` without its output head: embeddings -> ``trf_blocks`` -> ``final_norm``."""

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.embeddings = GPTScratchEmbeddings(config)
        self.trf_blocks = nn.ModuleList([GPTScratchTransformerBlock(config, i) for i in range(config.n_layer)])
        self.final_norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.tok_emb

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.tok_emb = value

    def check_context_length(self, position_ids: torch.Tensor | None, past_length, num_tokens: int) -> None:
        """No token may sit past the ``n_positions`` learned positions (with ``position_ids``, e.g. vLLM's one row of
        many requests, each id must be < ``n_positions``); under ``torch.compile`` the check is an assertion op."""
        n_positions = self.config.n_positions
        if position_ids is not None:
            if position_ids.numel() == 0:
                return
            longest = position_ids.max() + 1
        else:
            longest = past_length + num_tokens
        if isinstance(longest, torch.Tensor) and torch.compiler.is_compiling():
            torch._assert_async(longest <= n_positions, f"hfgpt: a position beyond n_positions={n_positions}")
            return
        if longest <= n_positions:
            return
        if position_ids is not None:
            problem = f"A position id is {int(longest) - 1}"
        else:
            problem = f"The sequence is {int(longest)} tokens long ({int(past_length)} cached + {num_tokens} new)"
        raise HfgptInputError(f"{problem}, but the model's context length is n_positions={n_positions}. Truncate the "
                              f"input (e.g. tokenizer(..., truncation=True, max_length={n_positions})) or generate "
                              f"fewer tokens.")

    @capture_outputs
    @renamed_past_key_values
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            given = "neither" if input_ids is None else "both"
            raise HfgptInputError(f"Pass exactly one of input_ids or inputs_embeds; got {given}.")
        legacy_cache = kwargs.pop("past_key_values", None)  # see CACHE_NAME
        cache = legacy_cache if cache is None else cache
        num_tokens = (input_ids if input_ids is not None else inputs_embeds).shape[1]

        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        # The cache's length only without position_ids, as GPT-2: continuous batching's paged cache has none.
        past_length = cache.get_seq_length() if cache is not None and position_ids is None else 0
        self.check_context_length(position_ids, past_length, num_tokens)
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            # Count only real tokens, so a left-padded text gets the same positions as the text alone.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -num_tokens:]
        elif position_ids is None:
            # arange + offset, not arange(start, end): a static cache's length is a tensor under torch.export
            position_ids = (torch.arange(num_tokens, device=self.device) + past_length).unsqueeze(0)

        hidden_states = self.embeddings(input_ids, position_ids, inputs_embeds)
        # Causal mask (+ padding, + cached positions) in the form the chosen attention implementation wants; sdpa
        # gets None when there is no padding, so it can run its fast is_causal path without a materialised mask.
        # Packed documents (position_ids restarting at 0 inside a row, no attention_mask) get one causal block per
        # document; transformers looks for them only without a cache, and a fresh DynamicCache holds nothing yet.
        empty_dynamic_cache = isinstance(cache, DynamicCache) and cache.get_seq_length() == 0
        causal_mask = create_causal_mask(config=self.config, inputs_embeds=hidden_states,
                                         attention_mask=attention_mask, position_ids=position_ids,
                                         **{CACHE_NAME: None if empty_dynamic_cache else cache})
        for block in self.trf_blocks:
            hidden_states = block(hidden_states, attention_mask=causal_mask, cache=cache, position_ids=position_ids,
                                  **kwargs)
        hidden_states = self.final_norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, **{CACHE_NAME: cache if use_cache else None})


# ---- 6. Causal-LM head: next-token logits, the loss, generate() (chapters 4 and 5) ----------------------------
class GPTScratchForCausalLM(GPTScratchPreTrainedModel, GenerationMixin):
    """``GPTScratchModel`` + the book's ``out_head`` (here ``lm_head``, tied when ``config.tie_word_embeddings``), with
    the next-token loss and ``generate()``; logits of the ``vocab_size`` real tokens only (never a padded id)."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.tok_emb.weight"}
    skip_logits_in_training: bool = False  # True: a training forward with labels returns the loss and no logits

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.model = GPTScratchModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.post_init()
        attach_fast_paths(self)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings
        attach_fast_paths(self)  # the new lm_head's decoding path

    def loss_from_logits(self, logits: torch.Tensor, labels: torch.LongTensor, **kwargs) -> torch.Tensor:
        """The book's ``calc_loss_batch`` on the real tokens' logits (``logits`` may have padded columns)."""
        vocab_size = self.config.vocab_size
        return self.loss_function(logits=logits[..., :vocab_size], labels=labels, vocab_size=vocab_size, **kwargs)

    def loss_from_hidden_states(self, hidden_states: torch.Tensor, labels: torch.LongTensor,
                                **kwargs) -> torch.Tensor:
        """The same loss for a caller that needs no logits (``skip_logits``)."""
        return self.loss_from_logits(self.lm_head(hidden_states), labels, **kwargs)

    @can_return_tuple
    @renamed_past_key_values
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        skip_logits: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""``labels`` are the input ids (the model shifts them, as the book's target windows; ``-100``: no loss).
        ``skip_logits=True``: only the loss (default: ``skip_logits_in_training`` when training)."""
        if skip_logits is None:
            skip_logits = self.skip_logits_in_training and self.training and labels is not None
        if skip_logits and labels is None:
            raise HfgptInputError("skip_logits=True returns only the loss, so it needs labels.")
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        hidden_states = outputs.last_hidden_state[:, slice_indices, :]
        if skip_logits:  # the output layer inside the loss: the [tokens, vocab] logits never exist
            loss = self.loss_from_hidden_states(hidden_states, labels, **kwargs)
            return head_output(CausalLMOutputWithPast, outputs, loss=loss, logits=None)
        logits = self.lm_head(hidden_states)
        loss = None if labels is None else self.loss_from_logits(logits, labels, **kwargs)
        logits = logits[..., : self.config.vocab_size]  # without the padded vocabulary's logits
        return head_output(CausalLMOutputWithPast, outputs, loss=loss, logits=logits)


# ---- 7. Classification head on the last token (chapter 6) -----------------------------------------------------
class GPTScratchForSequenceClassification(GPTScratchPreTrainedModel):
    """The book's spam classifier: a ``score`` layer read at the last *real* token (the book reads position -1 of
    right-padded rows), the only one that has attended to the whole text."""

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = GPTScratchModel(config)
        self.score = nn.Linear(config.n_embd, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, **kwargs) -> SequenceClassifierOutputWithPast:
        """``kwargs`` (``position_ids``, ``inputs_embeds``, ...) go to ``GPTScratchModel``."""
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden_states = outputs.last_hidden_state
        batch, num_tokens = hidden_states.shape[:2]
        positions = torch.arange(num_tokens, device=hidden_states.device)
        if attention_mask is not None and attention_mask.ndim == 2:
            last_token = (positions * attention_mask[:, -num_tokens:].to(positions.dtype)).argmax(-1)
        elif input_ids is not None and self.config.pad_token_id is not None:
            last_token = (positions * (input_ids != self.config.pad_token_id).to(positions.dtype)).argmax(-1)
        else:
            last_token = torch.full((batch,), num_tokens - 1, device=hidden_states.device)
        logits = self.score(hidden_states[torch.arange(batch, device=hidden_states.device), last_token])

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=logits, config=self.config)
        return head_output(SequenceClassifierOutputWithPast, outputs, loss=loss, logits=logits)


__all__ = ["GPTScratchPreTrainedModel", "GPTScratchModel", "GPTScratchForCausalLM",
           "GPTScratchForSequenceClassification"]
