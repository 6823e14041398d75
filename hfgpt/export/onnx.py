"""ONNX export for onnxruntime: the causal LM's logits for ``input_ids`` and ``attention_mask``.

optimum's exporter does not support transformers 5, so ``torch.onnx.export(..., dynamo=True)`` writes the graph, with
dynamic batch and sequence axes, no KV cache and logits as the only output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

from ..errors import HfgptInputError

INPUT_NAMES = ("input_ids", "attention_mask")


def _logits_module(model):
    """``model`` as a module returning only logits, without a cache (what the ONNX graph computes)."""
    import torch

    class CausalLMLogits(torch.nn.Module):
        def __init__(self, causal_lm):
            super().__init__()
            self.causal_lm = causal_lm

        def forward(self, input_ids, attention_mask):
            return self.causal_lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return CausalLMLogits(model).eval()


@contextlib.contextmanager
def _quiet_exporter():
    """torch's exporter warns about things that do not concern this graph."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used")
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            yield
    finally:
        registration.setLevel(level)


def export_onnx(folder_or_model, out_dir, tokenizer=None, overwrite: bool = False) -> str:
    """Export ``folder_or_model`` to ``out_dir/model.onnx``, with its ``config.json`` and tokenizer beside it: inputs
    ``input_ids`` and ``attention_mask`` (int64, dynamic ``[batch, sequence]``), output float32 ``logits``."""
    import torch

    from ..convert import load_causal_lm
    from ..tokenization import has_tokenizer_files, load_tokenizer

    out_dir = os.fspath(out_dir)
    path = os.path.join(out_dir, "model.onnx")
    if os.path.exists(path) and not overwrite:
        raise HfgptInputError(f"{path!r} exists: choose another folder or pass overwrite=True (--overwrite).")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    elif tokenizer is None and isinstance(folder_or_model, (str, os.PathLike)) \
            and os.path.isdir(folder_or_model) and has_tokenizer_files(folder_or_model):
        tokenizer = load_tokenizer(folder_or_model)
    model = load_causal_lm(folder_or_model).eval()
    c = model.config

    batch, sequence = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1, max=c.n_positions)
    example = torch.randint(0, c.vocab_size, (2, min(8, c.n_positions)))
    dynamic = {name: {0: batch, 1: sequence} for name in INPUT_NAMES}
    os.makedirs(out_dir, exist_ok=True)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(_logits_module(model), (example, torch.ones_like(example)),
                                    input_names=list(INPUT_NAMES), output_names=["logits"], dynamic_shapes=dynamic,
                                    dynamo=True, verbose=False)
    program.save(path)
    c.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return path


__all__ = ["export_onnx"]
