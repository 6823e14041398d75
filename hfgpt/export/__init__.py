"""Export a saved hfgpt model for the runtimes people serve GPTs with: :func:`export_gguf` (llama.cpp, Ollama) and
:func:`export_onnx` (onnxruntime). Both need the ``export`` extra, imported only when a function is called."""

from __future__ import annotations

from .gguf import export_gguf
from .onnx import export_onnx

__all__ = ["export_gguf", "export_onnx"]
