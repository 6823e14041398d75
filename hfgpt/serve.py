"""``hfgpt serve FOLDER``: transformers' own OpenAI-compatible server on an hfgpt folder. ``transformers serve`` looks
the config's architecture up on the transformers module (``ModelLoader._load_model``), where no remote-code class is;
this loader puts hfgpt's causal LM there first, in the process the server spawns for the model."""

from __future__ import annotations

import os

import transformers
from transformers.cli.serving.model_manager import ModelLoader

from .errors import HfgptInputError
from .modeling_gpt_scratch import GPTScratchForCausalLM


class HfgptModelLoader(ModelLoader):
    """transformers serve's loader, with hfgpt's causal LM found by its architecture name."""

    def _load_model(self, model_id: str, **kwargs):
        setattr(transformers, GPTScratchForCausalLM.__name__, GPTScratchForCausalLM)
        return super()._load_model(model_id, **kwargs)


def serve(folder: str, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    """Serve ``folder`` (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/health``) until
    interrupted; ``options`` are ``transformers serve``'s own (``continuous_batching``, ``device``, ``dtype``, ...)."""
    from transformers.utils.import_utils import is_serve_available

    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise HfgptInputError(f"{folder!r} is not a saved model folder (no config.json).")
    if not is_serve_available():
        raise HfgptInputError("serving needs fastapi, uvicorn, pydantic and openai: pip install 'hfgpt[serve]'.")
    from transformers.cli import serve as serve_command
    from transformers.cli.serving import model_manager

    model_manager.ModelLoader = HfgptModelLoader  # what Serve builds its loader from
    serve_command.Serve(force_model=os.path.abspath(folder), host=host, port=port, **options)
