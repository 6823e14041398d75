"""Two CPU speed-ups for the causal-LM head of ``modeling_gpt_scratch.py``; neither changes the maths.

* The next-token loss a block of rows at a time (``chunked_causal_lm_loss``). On CPU, ``nn.functional.cross_entropy``
  allocates three more logits-sized tensors per step (log-probabilities, the gradients of ``nll_loss`` and
  ``log_softmax``); blocks that large go back to the operating system and pay page faults again at every step.
* Decoding against a contiguous ``[n_embd, vocab]`` copy of the output matrix (``cpu_decode_head_copy``): BLAS streams
  it faster for a few rows than ``x @ W.T`` on the ``[vocab, n_embd]`` weight.

This file imports only torch: ``save_pretrained`` copies it next to the modeling file for ``trust_remote_code``.
"""

from __future__ import annotations

import torch
from torch import nn


class ChunkedCrossEntropy(torch.autograd.Function):
    """``cross_entropy(logits, targets)`` summed over the rows whose target is not ``ignore_index``, divided by
    ``divisor``: the value and gradient of ``nn.functional.cross_entropy``, computed ``block_rows`` rows at a time.
    The forward keeps one log-sum-exp per row; the backward writes ``softmax - one_hot`` block by block into the one
    gradient tensor autograd needs anyway.

    With ``num_classes`` < ``logits.shape[1]`` (a padded vocabulary) only the first ``num_classes`` columns count and
    the others get a zero gradient, so the padded logits need not be sliced off (and copied) first.
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
    """transformers' ``ForCausalLMLoss`` (the book's ``calc_loss_batch``) through :class:`ChunkedCrossEntropy`: the
    mean over labelled positions, or the sum divided by ``num_items_in_batch`` when the Trainer passes it (gradient
    accumulation). ``vocab_size``: the real tokens, when ``logits`` has padded columns after them."""
    if shift_labels is None:  # pad-then-slice shifts the labels without copying the logits
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    logits = logits.reshape(-1, logits.shape[-1])
    shift_labels = shift_labels.reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        divisor = (shift_labels != ignore_index).sum()
    else:
        divisor = torch.as_tensor(num_items_in_batch, device=logits.device)
    block_rows = max(1, 2**21 // logits.shape[-1])  # blocks of 8 MB: reused by the allocator, warm in cache
    return ChunkedCrossEntropy.apply(logits, shift_labels, divisor, ignore_index, block_rows, vocab_size)


class CPUSpeedupsMixin:
    """The logits and the loss of a causal-LM head that has ``lm_head``, ``config`` and ``loss_function``."""

    # Inference on CPU keeps a transposed copy of lm_head's weight (vocab x n_embd more floats, rebuilt whenever the
    # weight changes). Set to False on a model to save that memory; a copy already made is then freed.
    cpu_decode_head_copy: bool = True
    _decode_head: torch.Tensor | None = None
    _decode_head_key: tuple | None = None

    def lm_head_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
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
        key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))  # _version: in-place changes
        if self._decode_head_key != key:
            self._decode_head, self._decode_head_key = weight.detach().t().contiguous(), key
        return hidden_states.to(weight.dtype) @ self._decode_head

    def _chunked_loss_applies(self, logits: torch.Tensor) -> bool:
        """fp32 logits on CPU in eager mode, with the default loss. CUDA's caching allocator has no page-fault cost,
        and compiled graphs fuse the loss themselves."""
        return (
            logits.device.type == "cpu"
            and logits.dtype == torch.float32
            and getattr(self.config, "loss_type", None) in (None, "ForCausalLM")
            and not torch.compiler.is_compiling()
        )

    def causal_lm_loss(self, logits: torch.Tensor, labels: torch.LongTensor, **kwargs) -> torch.Tensor:
        """The next-token loss of ``logits`` (padded-vocabulary columns included): the chunked loss where it applies,
        else transformers' ``loss_function`` on the real tokens' logits."""
        vocab_size = self.config.vocab_size
        if self._chunked_loss_applies(logits):
            return chunked_causal_lm_loss(logits, labels, vocab_size=vocab_size, **kwargs)
        return self.loss_function(logits=logits[..., :vocab_size], labels=labels, vocab_size=vocab_size, **kwargs)
