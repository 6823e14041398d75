"""Speed paths for ``GPTScratchForCausalLM``, attached from outside by :func:`attach_fast_paths`; none changes the
maths, each falls back to the book's code where it does not apply: the loss a block of rows at a time on CPU
(``cross_entropy``'s logits-sized temporaries pay page faults again at every step), the fused linear + loss (the
logits never exist), and decoding products. This file imports only torch: ``save_pretrained`` copies it.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn


class ChunkedCrossEntropy(torch.autograd.Function):
    """``cross_entropy(logits, targets, reduction="sum") / divisor`` (rows whose target is ``ignore_index`` left
    out), ``block_rows`` rows at a time: the forward keeps one log-sum-exp per row; the backward writes ``softmax -
    one_hot`` block by block into the one gradient tensor autograd needs anyway, in fp32 even for bf16 logits. Only
    the first ``num_classes`` columns count (a padded vocabulary need not be sliced off, and copied, first)."""

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


def shifted_targets(labels, device, num_items_in_batch=None, ignore_index: int = -100, shift_labels=None, **kwargs):
    """The book's shifted target windows as one row of ids, the loss's divisor (labelled positions, or the Trainer's
    ``num_items_in_batch``) and ``ignore_index``; the keywords are those of transformers' ``ForCausalLMLoss``."""
    if shift_labels is None:  # pad-then-slice shifts the labels without copying the logits
        shift_labels = nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    targets = shift_labels.reshape(-1).to(device)
    if num_items_in_batch is None:
        return targets, (targets != ignore_index).sum(), ignore_index
    return targets, torch.as_tensor(num_items_in_batch, device=device), ignore_index


def chunked_causal_lm_loss(logits: torch.Tensor, labels: torch.LongTensor, num_items_in_batch=None,
                           vocab_size: int | None = None, **loss_kwargs) -> torch.Tensor:
    """transformers' ``ForCausalLMLoss`` (the book's ``calc_loss_batch``) through :class:`ChunkedCrossEntropy`."""
    logits = logits.reshape(-1, logits.shape[-1])
    targets, divisor, ignore_index = shifted_targets(labels, logits.device, num_items_in_batch, **loss_kwargs)
    block_rows = max(1, 2**21 // logits.shape[-1])  # blocks of 8 MB: reused by the allocator, warm in cache
    return ChunkedCrossEntropy.apply(logits, targets, divisor, ignore_index, block_rows, vocab_size)


class LinearCrossEntropy(torch.autograd.Function):
    """:class:`ChunkedCrossEntropy` of ``hidden @ weight[:num_classes].T``: the output layer and the loss together,
    so only one block of logits exists at a time (matmuls in ``compute_dtype``, softmax in fp32). As Liger's fused
    loss, the forward also computes the gradients while each block's logits exist; the backward scales them."""

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


def fused_causal_lm_loss(hidden_states: torch.Tensor, weight: torch.Tensor, labels: torch.LongTensor,
                         num_items_in_batch=None, vocab_size: int | None = None, **loss_kwargs) -> torch.Tensor:
    """:class:`LinearCrossEntropy` of ``hidden_states @ weight.T``; on CPU (eager) unlabelled rows are dropped first."""
    hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
    targets, divisor, ignore_index = shifted_targets(labels, hidden.device, num_items_in_batch, **loss_kwargs)
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
    """``linear`` of one row through ``torch.mv``: on CPU it streams bf16 weights faster than the matmul kernels."""
    output = torch.mv(weight, input.reshape(-1))
    if bias is not None:
        output += bias
    return output.view(*input.shape[:-1], weight.shape[0])


def one_row_linear_forward(self: nn.Linear, input: torch.Tensor) -> torch.Tensor:
    """The blocks' ``nn.Linear`` forward: batch-1 bf16 decoding on CPU through :func:`one_row_product`."""
    one_bf16_row = (
        input.dtype == torch.bfloat16
        and self.weight.dtype == torch.bfloat16
        and input.device.type == "cpu"
        and input.shape[:-1].numel() == 1
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
    )
    if not one_bf16_row:
        return nn.Linear.forward(self, input)
    return one_row_product(input, self.weight, self.bias)


def decoding_head_forward(self: nn.Linear, hidden_states: torch.Tensor) -> torch.Tensor:
    """``lm_head``'s forward: a few rows on CPU without autograd against a transposed copy of the weight (rebuilt
    whenever the weight changes; ``cpu_decode_copy = False`` frees it); one bf16 row through :func:`one_row_product`."""
    weight = self.weight
    use_copy = (
        self.cpu_decode_copy
        and self.bias is None
        and weight.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and hidden_states.shape[:-1].numel() <= 64
    )
    if not use_copy:
        if self._decode_weight is not None and (not self.cpu_decode_copy or weight.device.type != "cpu"):
            self._decode_weight = self._decode_weight_key = None  # switched off or moved off the CPU: free the copy
        return nn.Linear.forward(self, hidden_states)
    if weight.dtype == torch.bfloat16 and hidden_states.shape[:-1].numel() == 1:  # one bf16 row: no copy
        return one_row_product(hidden_states.to(weight.dtype), weight)
    key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))  # _version: in-place changes
    if self._decode_weight_key != key:
        self._decode_weight, self._decode_weight_key = weight.detach().t().contiguous(), key
    return hidden_states.to(weight.dtype) @ self._decode_weight


def default_loss(model: nn.Module) -> bool:
    """The config asks for the causal-LM cross-entropy (no other ``loss_type``): what both fused losses compute."""
    return getattr(model.config, "loss_type", None) in (None, "ForCausalLM")


def chunked_loss_from_logits(self, logits: torch.Tensor, labels: torch.LongTensor, **kwargs) -> torch.Tensor:
    """The head's ``loss_from_logits`` through :func:`chunked_causal_lm_loss` on CPU in eager mode (CUDA's allocator has
    no page-fault cost, and compiled graphs fuse the loss themselves)."""
    applies = (
        logits.device.type == "cpu"
        and logits.dtype in (torch.float32, torch.bfloat16)
        and default_loss(self)
        and not torch.compiler.is_compiling()
    )
    if not applies:
        return type(self).loss_from_logits(self, logits, labels, **kwargs)
    return chunked_causal_lm_loss(logits, labels, vocab_size=self.config.vocab_size, **kwargs)


def fused_loss_from_hidden_states(self, hidden_states: torch.Tensor, labels: torch.LongTensor,
                                  **kwargs) -> torch.Tensor:
    """The head's ``loss_from_hidden_states`` through :func:`fused_causal_lm_loss` for a bias-free ``nn.Linear``."""
    if type(self.lm_head) is not nn.Linear or self.lm_head.bias is not None or not default_loss(self):
        return type(self).loss_from_hidden_states(self, hidden_states, labels, **kwargs)
    return fused_causal_lm_loss(hidden_states, self.lm_head.weight, labels, vocab_size=self.config.vocab_size,
                                **kwargs)


def attach_fast_paths(model: nn.Module) -> nn.Module:
    """Attach the speed paths to a causal-LM ``model``, as the Trainer attaches Liger's: forwards and methods set on
    the instances (``partial``, so the model still pickles and deep-copies); the classes, the state dict and the
    book's code stay as they are. Called again when ``lm_head`` is replaced (``set_output_embeddings``)."""
    for module in model.model.trf_blocks.modules():
        if type(module) is nn.Linear:
            module.forward = partial(one_row_linear_forward, module)
    head = model.lm_head
    if type(head) is nn.Linear:
        head.cpu_decode_copy = getattr(head, "cpu_decode_copy", True)
        head._decode_weight = head._decode_weight_key = None
        head.forward = partial(decoding_head_forward, head)
    model.loss_from_logits = partial(chunked_loss_from_logits, model)
    model.loss_from_hidden_states = partial(fused_loss_from_hidden_states, model)
    return model
