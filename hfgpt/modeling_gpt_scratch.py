"""The GPT of *Build a Large Language Model (From Scratch)* as a transformers model.

Read top to bottom, this file follows the book:

1. token + absolute position embeddings (chapter 2)      -> ``GPTScratchEmbeddings``
2. causal multi-head self-attention (chapter 3)           -> ``eager_attention_forward``, ``GPTScratchCausalSelfAttention``
3. GELU feed-forward network (chapter 4)                  -> ``GPTScratchFeedForward``
4. pre-LayerNorm transformer block with shortcuts (ch. 4) -> ``GPTScratchTransformerBlock``
5. the next-token loss (chapter 5's calc_loss_batch)      -> ``chunked_causal_lm_loss`` (CPU) or transformers' loss
6. the GPT model: blocks, final norm, output head (ch. 4) -> ``GPTScratchModel``, ``GPTScratchForCausalLM``
7. classification head on the last token (chapter 6)      -> ``GPTScratchForSequenceClassification``

What differs from the book, and why:

* The attention call goes through transformers' attention interface, so ``attn_implementation="eager"`` runs the
  book's explicit mask + softmax + dropout, ``"sdpa"`` (the default) runs
  ``torch.nn.functional.scaled_dot_product_attention``, and flash / flex attention come for free where installed.
* The query, key and value projections (the book's ``W_query``, ``W_key``, ``W_value``) are one fused ``qkv``
  linear layer: the same maths, one matrix multiply instead of three.
* Keys and values are kept in a transformers ``Cache`` so ``generate()`` decodes with a KV cache.
* Padding is handled: an ``attention_mask`` masks padded keys, and positions come from ``position_ids`` so
  left-padded batches generate the same tokens as unpadded prompts.
* The book's ``LayerNorm`` (scale/shift, biased variance, eps 1e-5) is ``nn.LayerNorm`` (weight/bias), the same
  function with a fused kernel.
* Optionally (``pad_vocab_size_multiple``, as nanoGPT) the embedding and output head get a few unused rows, for
  GPU-friendly matrix sizes; the logits returned are still the ``vocab_size`` real tokens'.
* Two CPU speed-ups that do not change the maths: the training loss is computed a block of rows at a time
  (``ChunkedCrossEntropy``: no logits-sized temporaries), and decoding multiplies by a contiguous transposed copy of
  the output head (``cpu_decode_head_copy``).

This file imports only torch, transformers and its sibling configuration file, so the copy that
``save_pretrained`` writes next to the weights works with ``trust_remote_code=True`` where hfgpt is not installed.
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
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple, logging
from transformers.utils.output_capturing import capture_outputs

from .configuration_gpt_scratch import GPTScratchConfig


logger = logging.get_logger(__name__)

# transformers 5.24 renamed the KV cache argument of `create_causal_mask` and field of the model outputs from
# `past_key_values` to `cache`. Use the installed version's name, so this file also runs on earlier 5.x releases.
CACHE_NAME = "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"

AUTO_MAP = {
    "AutoConfig": "configuration_gpt_scratch.GPTScratchConfig",
    "AutoModel": "modeling_gpt_scratch.GPTScratchModel",
    "AutoModelForCausalLM": "modeling_gpt_scratch.GPTScratchForCausalLM",
    "AutoModelForSequenceClassification": "modeling_gpt_scratch.GPTScratchForSequenceClassification",
}


# ----------------------------------------------------------------------------------------------------------------
# 1. Token + absolute position embeddings (chapter 2)
# ----------------------------------------------------------------------------------------------------------------
class GPTScratchEmbeddings(nn.Module):
    """The book's ``tok_emb`` + ``pos_emb`` + ``drop_emb``: each token id becomes a learned vector, and the
    learned vector of its position (0 ... n_positions-1) is added to it.

    ``tok_emb`` has ``config.padded_vocab_size`` rows: ``vocab_size``, or more with ``pad_vocab_size_multiple``
    (rows that no token id reaches)."""

    def __init__(self, config: GPTScratchConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(config.padded_vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.n_positions, config.n_embd)
        self.drop_emb = nn.Dropout(config.embd_pdrop)

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        position_ids: torch.LongTensor,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.tok_emb(input_ids)
        return self.drop_emb(inputs_embeds + self.pos_emb(position_ids))


# ----------------------------------------------------------------------------------------------------------------
# 2. Causal multi-head self-attention (chapter 3)
# ----------------------------------------------------------------------------------------------------------------
def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's attention, step by step (``attn_implementation="eager"``).

    ``query``/``key``/``value`` are ``[batch, heads, tokens, head_dim]``. Scores ``q @ k^T`` are scaled by
    ``1/sqrt(head_dim)``, future positions (and padding) are masked, softmax turns scores into weights, dropout
    drops some weights, and the weights mix the values. The book masks with ``masked_fill(mask, -inf)`` on a
    ``triu`` mask; transformers hands us an additive mask (0 where allowed, a very negative number elsewhere) that
    also covers padding and cached positions, so we add it instead.
    """
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
    """The book's ``MultiHeadAttention``: project to queries, keys and values, split into heads, attend causally,
    merge the heads and project back with ``out_proj``. The three projections are fused into ``qkv``."""

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

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, num_tokens, _ = hidden_states.shape
        head_shape = (batch, num_tokens, self.n_head, self.head_dim)
        query, key, value = self.qkv(hidden_states).split(self.config.n_embd, dim=-1)
        # [batch, tokens, n_embd] -> [batch, heads, tokens, head_dim]
        query = query.view(head_shape).transpose(1, 2)
        key = key.view(head_shape).transpose(1, 2)
        value = value.view(head_shape).transpose(1, 2)

        if cache is not None:  # append this step's keys/values to the cache and attend over all of them
            key, value = cache.update(key, value, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attn_pdrop if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch, num_tokens, -1)  # merge the heads
        return self.out_proj(attn_output), attn_weights


# ----------------------------------------------------------------------------------------------------------------
# 3. Feed-forward network with GELU (chapter 4)
# ----------------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------------
# 4. Transformer block: pre-LayerNorm, shortcut connections (chapter 4)
# ----------------------------------------------------------------------------------------------------------------
class GPTScratchTransformerBlock(GradientCheckpointingLayer):
    """The book's ``TransformerBlock``: ``x + drop(att(norm1(x)))``, then ``x + drop(ff(norm2(x)))``."""

    def __init__(self, config: GPTScratchConfig, layer_idx: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.att = GPTScratchCausalSelfAttention(config, layer_idx)
        self.norm2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.ff = GPTScratchFeedForward(config)
        self.drop_shortcut = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        shortcut = hidden_states
        attn_output, _ = self.att(self.norm1(hidden_states), attention_mask=attention_mask, cache=cache, **kwargs)
        hidden_states = shortcut + self.drop_shortcut(attn_output)

        shortcut = hidden_states
        hidden_states = shortcut + self.drop_shortcut(self.ff(self.norm2(hidden_states)))
        return hidden_states


# ----------------------------------------------------------------------------------------------------------------
# 5. The next-token loss (chapter 5's calc_loss_batch), without logits-sized temporaries on CPU
# ----------------------------------------------------------------------------------------------------------------
class ChunkedCrossEntropy(torch.autograd.Function):
    """``cross_entropy(logits, targets)`` summed over the rows whose target is not ``ignore_index`` and divided by
    ``divisor``: the same value and gradient as ``nn.functional.cross_entropy``, computed a block of rows at a time.

    Why: on CPU, ``cross_entropy`` allocates three more tensors as large as the logits (the log-probabilities, the
    zero-filled gradient of ``nll_loss`` and the gradient of ``log_softmax``). The allocator hands blocks over 32 MB
    straight back to the operating system, so for GPT-sized logits each of them pays page faults again at every step
    (~30 ms each for 2048 x 8192 logits on our 2-core CPU). Here the forward keeps one log-sum-exp per row, and the
    backward writes ``softmax - one_hot`` block by block into the single gradient tensor autograd needs anyway.

    ``num_classes`` < ``logits.shape[1]`` (a padded vocabulary): only the first ``num_classes`` columns take part,
    the others get a zero gradient, so the padded logits need not be sliced off (and copied back) first.
    """

    @staticmethod
    def forward(ctx, logits, targets, divisor, ignore_index: int = -100, block_rows: int = 256, num_classes=None):
        num_classes = logits.shape[1] if num_classes is None else num_classes
        classes = logits[:, :num_classes]
        valid = targets != ignore_index
        targets = targets.masked_fill(~valid, 0)
        log_sum_exp = torch.cat([torch.logsumexp(block, dim=-1) for block in classes.split(block_rows)])
        target_logits = classes.gather(1, targets.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(logits, targets, valid, log_sum_exp, torch.as_tensor(divisor))
        ctx.block_rows, ctx.num_classes = block_rows, num_classes
        return ((log_sum_exp - target_logits) * valid).sum() / divisor

    @staticmethod
    def backward(ctx, grad_loss):
        logits, targets, valid, log_sum_exp, divisor = ctx.saved_tensors
        num_classes = ctx.num_classes
        grad_logits = torch.empty_like(logits, memory_format=torch.contiguous_format)
        grad_logits[:, num_classes:] = 0.0  # padded columns (none without a padded vocabulary)
        row_scale = (valid * (grad_loss / divisor)).to(logits.dtype).unsqueeze(1)
        for start in range(0, logits.shape[0], ctx.block_rows):
            rows = slice(start, start + ctx.block_rows)
            block = grad_logits[rows, :num_classes]
            torch.sub(logits[rows, :num_classes], log_sum_exp[rows].unsqueeze(1), out=block)
            block.exp_()  # softmax
            block[torch.arange(block.shape[0]), targets[rows]] -= 1.0  # - one_hot(target)
            block.mul_(row_scale[rows])  # ignored rows get 0
        return grad_logits, None, None, None, None, None


def chunked_causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.LongTensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.LongTensor | None = None,
    vocab_size: int | None = None,
    **kwargs,
) -> torch.Tensor:
    """transformers' ``ForCausalLMLoss`` (the book's ``calc_loss_batch``: each position predicts the next token)
    through :class:`ChunkedCrossEntropy`: the mean over labelled positions, or the sum divided by
    ``num_items_in_batch`` when the Trainer passes it (gradient accumulation). ``vocab_size``: the real tokens,
    when ``logits`` has padded columns after them."""
    if shift_labels is None:  # pad-then-slice shifts the labels without copying the logits
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    logits = logits.reshape(-1, logits.shape[-1])
    shift_labels = shift_labels.reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        divisor = (shift_labels != ignore_index).sum()
    else:
        divisor = torch.as_tensor(num_items_in_batch, device=logits.device)
    block_rows = max(1, 2**21 // logits.shape[-1])  # blocks of ~8 MB: reused by the allocator, warm in cache
    return ChunkedCrossEntropy.apply(logits, shift_labels, divisor, ignore_index, block_rows, vocab_size)


# ----------------------------------------------------------------------------------------------------------------
# 6. The GPT model (chapter 4) and its language-modeling head
# ----------------------------------------------------------------------------------------------------------------
class GPTScratchPreTrainedModel(PreTrainedModel):
    """What transformers reads about the model: config class, capabilities, GPT-2 weight initialisation."""

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
    _can_record_outputs = {
        "hidden_states": GPTScratchTransformerBlock,
        "attentions": GPTScratchCausalSelfAttention,
    }

    def save_pretrained(self, save_directory, *args, **kwargs):
        # List every head in auto_map (save_pretrained adds only this class), so one saved folder loads as
        # AutoModel, AutoModelForCausalLM or, with a fresh head, AutoModelForSequenceClassification under
        # trust_remote_code.
        self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """transformers' ``resize_token_embeddings``, keeping ``config.vocab_size`` the number of real tokens.

        ``new_num_tokens`` is the tokenizer's new size (e.g. ``len(tokenizer)`` after adding tokens). The embedding
        and the output head get ``config.padded_vocab_size`` rows; ``pad_to_multiple_of`` sets
        ``config.pad_vocab_size_multiple``. (transformers' own version would store the padded row count in
        ``config.vocab_size``, and the padded ids would then be sampled.) Real tokens beyond the old vocabulary get
        transformers' initialisation, also where they reuse rows that were padding."""
        if new_num_tokens is None and pad_to_multiple_of is None:
            return self.get_input_embeddings()
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
        """GPT-2's scheme: N(0, 0.02) for linear and embedding weights, zero biases, unit layer norms, and the
        projections that write into the residual stream scaled by 1/sqrt(2 * n_layer)."""
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


class GPTScratchModel(GPTScratchPreTrainedModel):
    """The book's ``GPTModel`` without its output head: embeddings -> ``trf_blocks`` -> ``final_norm``."""

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.embeddings = GPTScratchEmbeddings(config)
        self.trf_blocks = nn.ModuleList(
            [GPTScratchTransformerBlock(config, layer_idx) for layer_idx in range(config.n_layer)]
        )
        self.final_norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.tok_emb

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.tok_emb = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if cache is None and "past_key_values" in kwargs:  # the pre-5.24 name of the cache argument
            cache = kwargs.pop("past_key_values")
        kwargs.pop("past_key_values", None)
        num_tokens = (input_ids if input_ids is not None else inputs_embeds).shape[1]

        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        past_length = cache.get_seq_length() if cache is not None else 0
        if past_length + num_tokens > self.config.n_positions:
            raise ValueError(
                f"The sequence is {past_length + num_tokens} tokens long ({past_length} cached + {num_tokens} new), "
                f"but the model's context length is n_positions={self.config.n_positions}. Truncate the input "
                f"(e.g. tokenizer(..., truncation=True, max_length={self.config.n_positions})) or generate fewer tokens."
            )
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            # Count only real tokens, so a left-padded text gets the same positions as the text alone.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -num_tokens:]
        elif position_ids is None:
            position_ids = torch.arange(past_length, past_length + num_tokens, device=self.device).unsqueeze(0)

        hidden_states = self.embeddings(input_ids, position_ids, inputs_embeds)
        # Causal mask (+ padding, + cached positions) in the form the chosen attention implementation wants; sdpa
        # gets None when there is no padding, so it can run its fast is_causal path without a materialised mask.
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{CACHE_NAME: cache},
        )
        for block in self.trf_blocks:
            hidden_states = block(hidden_states, attention_mask=causal_mask, cache=cache, **kwargs)
        hidden_states = self.final_norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, **{CACHE_NAME: cache if use_cache else None})


class GPTScratchForCausalLM(GPTScratchPreTrainedModel, GenerationMixin):
    """``GPTScratchModel`` + the output head (the book's ``out_head``; here ``lm_head``, tied to the token embedding
    when ``config.tie_word_embeddings``), with the next-token loss and ``generate()``.

    With ``config.pad_vocab_size_multiple`` (nanoGPT's vocabulary padding), ``lm_head`` has
    ``config.padded_vocab_size`` outputs, so its matrix multiply runs on tensor-core friendly sizes, and the forward
    returns ``logits[..., :vocab_size]``: the real tokens only. Slicing rather than setting the padded logits to
    ``-inf``: the slice is a free view, and it gives every consumer (``generate()``, the loss, metrics, comparisons
    with GPT-2) exactly ``vocab_size`` columns, with nothing that can be sampled or that turns an entropy into NaN.
    Its one cost, a padded-size gradient in the backward, is fused into the loss kernels by ``torch.compile`` and
    avoided by the CPU loss (it reads the padded logits directly)."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.tok_emb.weight"}

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.model = GPTScratchModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def _chunked_loss_applies(self, logits: torch.Tensor) -> bool:
        """The page-fault-free loss is for fp32 logits on CPU in eager mode. CUDA's caching allocator has no such
        cost, and compiled graphs fuse the loss themselves: there, and for a custom ``loss_type``, transformers'
        ``loss_function``."""
        return (
            logits.device.type == "cpu"
            and logits.dtype == torch.float32
            and getattr(self.config, "loss_type", None) in (None, "ForCausalLM")
            and not torch.compiler.is_compiling()
        )

    # Decoding on CPU reads the whole output matrix for every new token. BLAS streams a contiguous [n_embd, vocab]
    # copy ~1.4x faster for a few rows than the [vocab, n_embd] weight through `x @ W.T` (124M: ~7 vs ~10 ms per
    # token on our 2-core CPU), so inference on CPU keeps such a copy (vocab x n_embd floats more memory; rebuilt
    # whenever the weight changes). Set to False on a model to save that memory.
    cpu_decode_head_copy: bool = True
    _decode_head: torch.Tensor | None = None
    _decode_head_key: tuple | None = None

    def _output_projection(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``lm_head(hidden_states)``; for a few rows on CPU without autograd, the same product against the copy."""
        weight = self.lm_head.weight
        use_copy = (
            self.cpu_decode_head_copy
            and type(self.lm_head) is nn.Linear  # not a LoRA / quantised layer
            and weight.device.type == "cpu"
            and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and hidden_states.shape[:-1].numel() <= 64
        )
        if not use_copy:
            if self._decode_head is not None and (not self.cpu_decode_head_copy or weight.device.type != "cpu"):
                self._decode_head = self._decode_head_key = None  # switched off or moved off the CPU: free the copy
            return self.lm_head(hidden_states)
        key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))
        if self._decode_head_key != key:
            self._decode_head, self._decode_head_key = weight.detach().t().contiguous(), key
        return hidden_states.to(weight.dtype) @ self._decode_head

    @can_return_tuple
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
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""``labels`` are the input ids themselves (the model shifts them by one, as the book's
        ``calc_loss_batch`` does with its shifted target windows); ``-100`` marks positions without a loss."""
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:, :]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden_states = hidden_states[:, logits_to_keep, :]
        logits = self._output_projection(hidden_states)

        loss = None
        vocab_size = self.config.vocab_size
        if labels is not None and self._chunked_loss_applies(logits):
            loss = chunked_causal_lm_loss(logits, labels, vocab_size=vocab_size, **kwargs)
        if logits.shape[-1] != vocab_size:  # padded vocabulary: the real tokens' logits only
            logits = logits[..., :vocab_size]
        if labels is not None and loss is None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


# ----------------------------------------------------------------------------------------------------------------
# 7. Classification head on the last token (chapter 6)
# ----------------------------------------------------------------------------------------------------------------
class GPTScratchForSequenceClassification(GPTScratchPreTrainedModel):
    """The book's spam classifier: the output head is replaced by a small ``score`` layer (``n_embd -> num_labels``)
    read at the last token, the only one that has attended to the whole text.

    The book pads on the right and still reads position -1. Here the "last token" is the last *real* token of each
    row: from ``attention_mask`` when given (right or left padding), else the rightmost non-``pad_token_id`` token.
    """

    def __init__(self, config: GPTScratchConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = GPTScratchModel(config)
        self.score = nn.Linear(config.n_embd, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings.tok_emb

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings.tok_emb = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        batch, num_tokens = hidden_states.shape[:2]
        positions = torch.arange(num_tokens, device=hidden_states.device)
        if attention_mask is not None and attention_mask.ndim == 2:
            last_token = (positions * attention_mask[:, -num_tokens:].to(positions.dtype)).argmax(-1)
        elif input_ids is not None and self.config.pad_token_id is not None:
            last_token = (positions * (input_ids != self.config.pad_token_id).to(positions.dtype)).argmax(-1)
        else:
            last_token = torch.full((batch,), num_tokens - 1, device=hidden_states.device)
        pooled = hidden_states[torch.arange(batch, device=hidden_states.device), last_token]
        logits = self.score(pooled)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "GPTScratchPreTrainedModel",
    "GPTScratchModel",
    "GPTScratchForCausalLM",
    "GPTScratchForSequenceClassification",
]
