"""Reading a saved model folder (or Hub id): its config, its weight files, the model; a missing, wrong or broken
checkpoint is bad input, reported in one line before anything slow starts."""

from __future__ import annotations

import json
import os

from .errors import HfgptFileNotFoundError, HfgptInputError


def listing(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _config_problem(folder: str, error: BaseException) -> str:
    """Why ``AutoConfig`` could not read ``folder``'s config.json, in the user's terms."""
    from transformers import CONFIG_MAPPING

    config_file = os.path.join(folder, "config.json")
    if not os.path.isfile(config_file):
        return f"{folder!r} has no config.json: not a saved model folder ({_one_line(error)})"
    try:
        with open(config_file, encoding="utf-8") as f:
            model_type = json.load(f).get("model_type")
    except (ValueError, AttributeError) as bad:  # invalid JSON (with its line and column), or not an object
        return f"{config_file!r} is not a JSON object of model settings: {_one_line(bad)}"
    if model_type is not None and model_type not in CONFIG_MAPPING:
        return (f"{config_file!r} has model_type {model_type!r}, which transformers does not know: an hfgpt "
                "('gpt_scratch') or GPT-2 ('gpt2') checkpoint is expected")
    return f"{config_file!r} cannot be read: {_one_line(error)}"


def check_weight_files(folder: str) -> None:
    """A local model folder must hold weights, and each ``*.safetensors`` file a complete header: a broken download
    fails here, not deep inside ``from_pretrained`` after the data is read."""
    from safetensors import SafetensorError, safe_open

    if not os.path.isdir(folder):
        return  # a Hub id: its files are fetched by from_pretrained
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES):
        raise HfgptInputError(f"{folder!r} holds no weights (no {' / '.join(WEIGHT_FILES[::2])}): copy the whole "
                              "folder that save_pretrained wrote.")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            try:
                with safe_open(os.path.join(folder, name), framework="pt") as weights:
                    weights.keys()
            except (SafetensorError, OSError) as error:
                raise HfgptInputError(f"Cannot read the weights in {os.path.join(folder, name)!r}, a truncated or "
                                      f"corrupt file ({_one_line(error)}): copy or download the checkpoint "
                                      f"again.") from None


def load_checkpoint_config(path, where: str = ""):
    """``AutoConfig.from_pretrained(path)``; a bad ``config.json`` is bad input (``where`` follows the path in
    errors)."""
    from transformers import AutoConfig

    path = os.fspath(path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        if not os.path.isdir(path):
            raise HfgptFileNotFoundError(f"{path!r}{where} is not a model folder or a reachable Hub id: "
                                         f"{_one_line(error)}") from None
        raise HfgptInputError(_config_problem(path, error) + f"{where}.") from None
    return config


def load_folder(path, model_class, model_type: str, name: str, check=None):
    """``model_class.from_pretrained`` of a ``model_type`` folder; ``check`` sees its config before any weights."""
    from safetensors import SafetensorError

    config = load_checkpoint_config(path)
    if config.model_type != model_type:
        raise HfgptInputError(f"{os.fspath(path)!r} holds a {config.model_type!r} model, not a {name} one.")
    if check is not None:
        check(config)
    check_weight_files(path)
    try:
        model, info = model_class.from_pretrained(path, config=config, output_loading_info=True)
    except (OSError, SafetensorError) as error:
        raise HfgptInputError(f"Cannot read the weights in {os.fspath(path)!r}: {error}") from error
    if info["missing_keys"] or info["mismatched_keys"]:
        raise HfgptInputError(f"{os.fspath(path)!r} is not a complete {model_class.__name__} checkpoint: missing "
                              f"{listing(info['missing_keys'])}; mismatched "
                              f"{listing(k for k, *_ in info['mismatched_keys'])}.")
    return model
