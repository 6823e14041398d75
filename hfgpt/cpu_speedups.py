"""Speed-ups for the causal-LM head of ``modeling_gpt_scratch.py``; none changes the maths.

* The next-token loss a block of rows at a time (``chunked_causal_lm_loss``). On CPU, ``nn.functional.cross_entropy``
  allocates three more logits-sized tensors per step (log-probabilities, the gradients of ``nll_loss`` and
  ``log_softmax``); blocks that large go back to the operating system and pay page faults again at every step.
  fp32 or bf16 logits (bf16 autocast); the log-sum-exp and the softmax are computed in fp32.
* The fused linear + loss (``fused_causal_lm_loss``), CPU or CUDA, when only the loss is needed: the output layer
  and the loss a block of rows at a time from the hidden states, so the ``[tokens, vocab]`` logits never exist.
* Decoding against a contiguous ``[n_embd, vocab]`` copy of the output matrix (``cpu_decode_head_copy``): BLAS streams
  it faster for a few rows than ``x @ W.T`` on the ``[vocab, n_embd]`` weight. One row of bf16 weights: ``torch.mv``
  on the weight itself (its matrix-vector kernel streams bf16 faster than the matmul ones), no copy; the same for
  the blocks' layers (``DecodingLinear``).

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
    the others get a zero gradient, so the padded logits need not be sliced off (and copied) first. bf16 logits: each
    block is turned to fp32 for the log-sum-exp and the softmax, and the gradient is written back in bf16.
    """

    @staticmethod
    def forward(ctx, logits, targets, divisor, ignore_index: int = -100, block_rows: int = 256, num_classes=None):
        num_classes = logits.shape[1] if num_classes is None else num_classes
        classes = logits[:, :num_classes]
        valid = targets != ignore_index
        targets = targets.masked_fill(~valid, 0)
        log_sum_exp = torch.cat([torch.logsumexp(block.float(), dim=-1) for block in classes.split(block_rows)])
        target_logits = classes.gather(1, targets.unsqueeze(1)).squeeze(1).float()
        ctx.save_for_backward(logits, targets, valid, log_sum_exp, torch.as_tensor(divisor))
        ctx.block_rows, ctx.num_classes = block_rows, num_classes
        return ((log_sum_exp - target_logits) * valid).sum() / divisor

    @staticmethod
    def backward(ctx, grad_loss):
        logits, targets, valid, log_sum_exp, divisor = ctx.saved_tensors
        num_classes = ctx.num_classes
        grad_logits = torch.empty_like(logits, memory_format=torch.contiguous_format)
        grad_logits[:, num_classes:] = 0.0  # padded columns (none without a padded vocabulary)
        row_scale = (valid * (grad_loss / divisor)).float().unsqueeze(1)
        fp32 = logits.dtype == torch.float32  # else one fp32 scratch block, copied into the bf16 gradient
        scratch_shape = (min(ctx.block_rows, logits.shape[0]), num_classes)
        scratch = None if fp32 else logits.new_empty(scratch_shape, dtype=torch.float32)
        for start in range(0, logits.shape[0], ctx.block_rows):
            rows = slice(start, start + ctx.block_rows)
            out = grad_logits[rows, :num_classes]
            block = out if fp32 else scratch[: out.shape[0]]
            torch.sub(logits[rows, :num_classes], log_sum_exp[rows].unsqueeze(1), out=block)
            block.exp_()  # softmax
            block[torch.arange(block.shape[0]), targets[rows]] -= 1.0  # - one_hot(target)
            block.mul_(row_scale[rows])  # ignored rows get 0
            if not fp32:
                out.copy_(block)
        return grad_logits, None, None, None, None, None


def shifted_targets(labels, shift_labels, num_items_in_batch, ignore_index: int, device):
    """The book's shifted target windows as one row of ids (``ignore_index`` after each window's last token), and the
    loss's divisor: the number of labelled positions, or ``num_items_in_batch`` when the Trainer passes it (gradient
    accumulation)."""
    if shift_labels is None:  # pad-then-slice shifts the labels without copying the logits
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    targets = shift_labels.reshape(-1).to(device)
    if num_items_in_batch is None:
        return targets, (targets != ignore_index).sum()
    return targets, torch.as_tensor(num_items_in_batch, device=device)


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
    logits = logits.reshape(-1, logits.shape[-1])
    targets, divisor = shifted_targets(labels, shift_labels, num_items_in_batch, ignore_index, logits.device)
    block_rows = max(1, 2**21 // logits.shape[-1])  # blocks of 8 MB: reused by the allocator, warm in cache
    return ChunkedCrossEntropy.apply(logits, targets, divisor, ignore_index, block_rows, vocab_size)


class LinearCrossEntropy(torch.autograd.Function):
    """``cross_entropy(hidden @ weight[:num_classes].T, targets)`` summed over the rows whose target is not
    ``ignore_index``, divided by ``divisor``: the output layer and the loss together, ``block_rows`` rows at a time,
    so only one block of logits exists at a time. The matmuls run in ``compute_dtype`` (bf16 under autocast), the
    log-sum-exp and the softmax in fp32. As Liger's fused loss, the forward also computes the gradients of
    ``hidden`` and ``weight`` while each block's logits exist (no second logits matmul); the backward scales them.
    Padded rows of ``weight`` (beyond ``num_classes``) get a zero gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, divisor, ignore_index: int, block_rows: int, num_classes: int,
                compute_dtype: torch.dtype):
        need_hidden_grad, need_weight_grad = ctx.needs_input_grad[:2]
        inputs, classes = hidden.to(compute_dtype), weight[:num_classes].to(compute_dtype)
        # [n_embd, classes]: on CPU, BLAS streams a contiguous copy faster than classes.T
        classes_t = classes.T.contiguous() if hidden.device.type == "cpu" else classes.T
        valid = targets != ignore_index
        targets = targets.masked_fill(~valid, 0)
        row_scale = (valid / divisor).float()
        losses = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight_grad else None
        for start in range(0, hidden.shape[0], block_rows):
            rows = slice(start, start + block_rows)
            logits = (inputs[rows] @ classes_t).float()  # one block of the output layer
            block_targets = targets[rows].unsqueeze(1)
            target_logits = logits.gather(1, block_targets).squeeze(1)
            row_max = logits.amax(dim=-1, keepdim=True)
            exp = logits.sub_(row_max).exp_()  # in place: the block's logits are not needed again
            sum_exp = exp.sum(dim=-1)
            losses[rows] = row_max.squeeze(1) + sum_exp.log() - target_logits  # log-sum-exp - target logit
            if need_hidden_grad or need_weight_grad:  # d loss / d logits = (softmax - one_hot) * row_scale
                scale = row_scale[rows]
                grad_logits = exp.mul_((scale / sum_exp).unsqueeze(1))
                grad_logits.scatter_add_(1, block_targets, -scale.unsqueeze(1))
                grad_logits = grad_logits.to(compute_dtype)
                if need_hidden_grad:
                    grad_hidden[rows] = grad_logits @ classes
                if need_weight_grad and compute_dtype == torch.float32:
                    grad_weight[:num_classes].addmm_(grad_logits.T, inputs[rows])
                elif need_weight_grad:  # summed in fp32 across blocks
                    grad_weight[:num_classes] += grad_logits.T @ inputs[rows]
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return (losses * valid).sum() / divisor

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_loss.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_loss).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None, None, None


def fused_causal_lm_loss(
    hidden_states: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.LongTensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.LongTensor | None = None,
    vocab_size: int | None = None,
    **kwargs,
) -> torch.Tensor:
    """:func:`chunked_causal_lm_loss` of ``hidden_states @ weight.T`` without the logits (:class:`LinearCrossEntropy`):
    the loss of the output layer ``weight`` (``[vocab or padded vocab, n_embd]``) from the final hidden states. Under
    autocast the matmuls take autocast's dtype. On CPU in eager mode the rows without a label are left out first."""
    hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
    targets, divisor = shifted_targets(labels, shift_labels, num_items_in_batch, ignore_index, hidden.device)
    # A data-dependent shape: not in a compiled graph, nor on an accelerator (nonzero() waits for the device).
    if hidden.device.type == "cpu" and not torch.compiler.is_compiling():
        labelled = (targets != ignore_index).nonzero().squeeze(1)
        if labelled.numel() < targets.numel():  # prompt-masked or padded positions, the last of each window
            hidden, targets = hidden.index_select(0, labelled), targets.index_select(0, labelled)
    if not torch.is_grad_enabled():  # evaluation: the forward then computes no gradients
        hidden, weight = hidden.detach(), weight.detach()
    device_type = hidden.device.type
    autocast = torch.is_autocast_enabled(device_type)
    compute_dtype = torch.get_autocast_dtype(device_type) if autocast else hidden.dtype
    # blocks of 8 MB of fp32 logits on CPU (reused, warm in cache); 256 MB on an accelerator (fewer, larger matmuls)
    block_rows = max(1, (2**21 if device_type == "cpu" else 2**26) // weight.shape[0])
    num_classes = weight.shape[0] if vocab_size is None else vocab_size
    return LinearCrossEntropy.apply(hidden, weight, targets, divisor, ignore_index, block_rows, num_classes,
                                    compute_dtype)


def one_row_product(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``nn.functional.linear(input, weight, bias)`` for an input of one row, through ``torch.mv``: for bf16 weights on
    CPU its matrix-vector kernel streams the weight faster than the matmul kernels ``linear`` picks for one row."""
    output = torch.mv(weight, input.reshape(-1))
    if bias is not None:
        output += bias
    return output.view(*input.shape[:-1], weight.shape[0])


class DecodingLinear(nn.Linear):
    """``nn.Linear`` (the transformer blocks' layers). One row of bf16 on CPU without autograd, i.e. batch-1 decoding
    with bf16 weights, goes through :func:`one_row_product`. Same weights, same state dict, same result."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        one_bf16_row = (
            input.dtype == torch.bfloat16
            and self.weight.dtype == torch.bfloat16
            and input.device.type == "cpu"
            and input.shape[:-1].numel() == 1
            and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
        )
        if not one_bf16_row:
            return super().forward(input)
        return one_row_product(input, self.weight, self.bias)


class CPUSpeedupsMixin:
    """The logits and the loss of a causal-LM head that has ``lm_head``, ``config`` and ``loss_function``.

    ``skip_logits_in_training``: when True, a forward in training mode with labels returns the loss of the fused
    linear + loss and no logits (what the Trainer's training step needs); ``forward(skip_logits=...)`` decides per
    call. Off by default, so ``model(**batch)`` returns its logits."""

    skip_logits_in_training: bool = False

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
        if weight.dtype == torch.bfloat16 and hidden_states.shape[:-1].numel() == 1:  # one bf16 row: no copy
            return one_row_product(hidden_states.to(weight.dtype), weight)
        key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))  # _version: in-place changes
        if self._decode_head_key != key:
            self._decode_head, self._decode_head_key = weight.detach().t().contiguous(), key
        return hidden_states.to(weight.dtype) @ self._decode_head

    def _default_loss(self) -> bool:
        """The config asks for the causal-LM cross-entropy (no other ``loss_type``): what both speed-ups compute."""
        return getattr(self.config, "loss_type", None) in (None, "ForCausalLM")

    def _chunked_loss_applies(self, logits: torch.Tensor) -> bool:
        """fp32 or bf16 logits on CPU in eager mode, with the default loss. CUDA's caching allocator has no page-fault
        cost, and compiled graphs fuse the loss themselves."""
        return (
            logits.device.type == "cpu"
            and logits.dtype in (torch.float32, torch.bfloat16)
            and self._default_loss()
            and not torch.compiler.is_compiling()
        )

    def _fused_loss_applies(self) -> bool:
        """A plain bias-free ``nn.Linear`` head (not a LoRA / quantised layer) and the default loss."""
        return type(self.lm_head) is nn.Linear and self.lm_head.bias is None and self._default_loss()

    def causal_lm_loss(self, logits: torch.Tensor, labels: torch.LongTensor, **kwargs) -> torch.Tensor:
        """The next-token loss of ``logits`` (padded-vocabulary columns included): the chunked loss where it applies,
        else transformers' ``loss_function`` on the real tokens' logits."""
        vocab_size = self.config.vocab_size
        if self._chunked_loss_applies(logits):
            return chunked_causal_lm_loss(logits, labels, vocab_size=vocab_size, **kwargs)
        return self.loss_function(logits=logits[..., :vocab_size], labels=labels, vocab_size=vocab_size, **kwargs)

    def causal_lm_loss_without_logits(self, hidden_states: torch.Tensor, labels: torch.LongTensor,
                                      **kwargs) -> torch.Tensor:
        """The same loss from the final hidden states, for a caller that needs no logits: the fused linear + loss
        where it applies, else ``lm_head`` then :meth:`causal_lm_loss`."""
        if self._fused_loss_applies():
            return fused_causal_lm_loss(hidden_states, self.lm_head.weight, labels, vocab_size=self.config.vocab_size,
                                        **kwargs)
        return self.causal_lm_loss(self.lm_head(hidden_states), labels, **kwargs)
