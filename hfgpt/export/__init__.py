"""Export a saved hfgpt model for the runtimes people serve GPTs with.

* :func:`export_gguf`: a llama.cpp ``gpt2``-architecture GGUF (llama.cpp, ``llama-server``, Ollama), written with the
  ``gguf`` package as llama.cpp's own ``convert_hf_to_gguf.py`` writes GPT-2, plus an Ollama ``Modelfile`` for an
  instruction-tuned model;
* :func:`export_onnx`: ``model.onnx`` (logits for ``input_ids`` and ``attention_mask``) for onnxruntime.

Both need the ``export`` extra (``pip install "hfgpt[export]"``), imported only when a function is called.
"""

from __future__ import annotations

from .gguf import export_gguf
from .onnx import export_onnx

__all__ = ["export_gguf", "export_onnx"]
