"""Share a trained model on the Hugging Face Hub: the upload folder, its model card, and the push.

:func:`build_upload_folder` writes exactly what is uploaded: the weights re-saved with ``save_pretrained`` (so the
modeling code travels along), the tokenizer, the metrics and a model card (an adapter card for a LoRA adapter).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from huggingface_hub import HfApi, ModelCard, ModelCardData

from .errors import HfgptFileNotFoundError, HfgptInputError
from .training.outputs import RUN_ARTEFACTS

ARCHITECTURES = {  # -> (pipeline tag, Auto class)
    "GPTScratchForCausalLM": ("text-generation", "AutoModelForCausalLM"),
    "GPTScratchForSequenceClassification": ("text-classification", "AutoModelForSequenceClassification"),
    "GPTScratchModel": ("feature-extraction", "AutoModel"),
}

CARD_HEADER = """---
{{ card_data }}
---

# {{ repo_id }}
"""
CARD_TEMPLATE = CARD_HEADER + """
{{ summary }}

The architecture is the GPT of Sebastian Raschka's *Build a Large Language Model (From Scratch)*, implemented by
hfgpt as a native `transformers` model. The folder carries its own modeling code, so it loads
without installing hfgpt.

## Usage

```python
{{ usage }}
```

## Model

{{ config_table }}

## Training
{{ training }}
"""

ADAPTER_TEMPLATE = CARD_HEADER + """
A LoRA adapter (peft) for [{{ base_model }}](https://huggingface.co/{{ base_model }}), trained with hfgpt.

## Usage

```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification

base = AutoModelForSequenceClassification.from_pretrained("{{ base_model }}", trust_remote_code=True)
model = PeftModel.from_pretrained(base, "{{ repo_id }}")
```

## Adapter

{{ config_table }}
"""


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _run_metrics(folder: str) -> dict:
    for name in ("all_results.json", "eval_results.json", "test_results.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return _read_json(path)
    return {}


def _table(rows: dict, head: str = "setting") -> str:
    """A Markdown table of ``name -> value`` rows."""
    return f"| {head} | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


def _architecture(config: dict) -> tuple[str, str]:
    """The pipeline tag and Auto class of a saved model's ``config.json`` (a causal LM when it names none)."""
    return ARCHITECTURES.get((config.get("architectures") or [None])[0], ARCHITECTURES["GPTScratchForCausalLM"])


def _usage(repo_id: str, pipeline_tag: str, auto: str) -> str:
    lines = [
        f"from transformers import {auto}, AutoTokenizer, pipeline",
        "",
        f'model = {auto}.from_pretrained("{repo_id}", trust_remote_code=True)',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)',
    ]
    if pipeline_tag == "text-generation":
        lines += ['generate = pipeline("text-generation", model=model, tokenizer=tokenizer)',
                  'print(generate("Every effort moves you", max_new_tokens=40)[0]["generated_text"])']
    elif pipeline_tag == "text-classification":
        lines += ['classify = pipeline("text-classification", model=model, tokenizer=tokenizer)',
                  'print(classify("You won a free prize! Reply now"))']
    return "\n".join(lines)


def model_card(folder: str, repo_id: str, datasets: list[str] | None = None, summary: str | None = None) -> ModelCard:
    """The model card for a saved hfgpt model folder (its config.json, and the run's metrics when present)."""
    config = _read_json(os.path.join(folder, "config.json"))
    pipeline_tag, auto = _architecture(config)
    metrics = {k: v for k, v in _run_metrics(folder).items() if isinstance(v, (int, float))}
    metric_names = sorted({k.split("_", 1)[1] for k in metrics if k.startswith(("eval_", "test_")) and
                           not k.endswith(("runtime", "per_second"))})
    card_data = ModelCardData(library_name="transformers", pipeline_tag=pipeline_tag, license="apache-2.0",
                              tags=["hfgpt", "gpt2", "from-scratch", "custom_code", pipeline_tag],
                              datasets=datasets or None, metrics=metric_names or None)
    keys = ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "qkv_bias", "tie_word_embeddings",
            "embd_pdrop", "attn_pdrop", "resid_pdrop")
    rows = {f"`{k}`": config[k] for k in keys if k in config}
    if config.get("id2label"):
        rows["labels"] = ", ".join(str(v) for v in config["id2label"].values())
    if metrics:
        training = "Metrics of the run that produced this model:\n\n" + _table(
            {f"`{k}`": f"{v:.4g}" for k, v in sorted(metrics.items())}, head="metric")
    else:
        training = "No run metrics were found next to the model."
    if os.path.isfile(os.path.join(folder, "loss_curve.png")):
        training += "\n\n![loss curve](loss_curve.png)"
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        repo_id=repo_id,
        summary=summary or f"A {pipeline_tag} model with {config.get('n_layer')} layers, {config.get('n_embd')} wide.",
        usage=_usage(repo_id, pipeline_tag, auto),
        config_table=_table(rows),
        training=training,
    )


def adapter_card(folder: str, repo_id: str) -> ModelCard:
    """The card of a peft LoRA adapter folder: names the base model it applies to."""
    adapter = _read_json(os.path.join(folder, "adapter_config.json"))
    base_model = adapter.get("base_model_name_or_path")
    if not base_model:
        raise HfgptInputError(f"{folder!r}: adapter_config.json names no base_model_name_or_path.")
    card_data = ModelCardData(library_name="peft", base_model=base_model, tags=["hfgpt", "lora", "peft"],
                              license="apache-2.0")
    keys = ("peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save")
    rows = {f"`{k}`": adapter[k] for k in keys if k in adapter}
    return ModelCard.from_template(card_data, template_str=ADAPTER_TEMPLATE, repo_id=repo_id, base_model=base_model,
                                   config_table=_table(rows))


def build_upload_folder(folder: str, repo_id: str, out_dir: str, datasets: list[str] | None = None) -> str:
    """Write into ``out_dir`` what ``push_to_hub`` uploads for the model (or adapter) in ``folder``, checked first."""
    if not os.path.isdir(folder):
        raise HfgptFileNotFoundError(f"No model folder at {folder!r}.")
    if os.path.abspath(out_dir) == os.path.abspath(folder):
        raise HfgptInputError(f"The upload folder must differ from the model folder ({folder!r}).")
    if os.path.isfile(os.path.join(folder, "adapter_config.json")):
        card = adapter_card(folder, repo_id)
        os.makedirs(out_dir, exist_ok=True)
        for name in os.listdir(folder):
            if os.path.isfile(os.path.join(folder, name)) and name != "README.md":
                shutil.copy2(os.path.join(folder, name), out_dir)
        card.save(os.path.join(out_dir, "README.md"))
        return out_dir
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise HfgptInputError(f"{folder!r} has no config.json: not a saved model folder.")

    import transformers

    from . import tokenization  # importing hfgpt registers the Auto classes
    from .checkpoints import check_weight_files, load_checkpoint_config

    config = load_checkpoint_config(folder)
    if config.model_type != "gpt_scratch":
        hint = f": convert it first (hfgpt convert --from gpt2 {folder} DEST)" if config.model_type == "gpt2" else "."
        raise HfgptInputError(f"{folder!r} holds a {config.model_type!r} model, not an hfgpt (gpt_scratch) one{hint}")
    check_weight_files(folder)
    auto = getattr(transformers, _architecture(config.to_dict())[1])
    model = auto.from_pretrained(folder)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)  # weights + configuration/modeling code + auto_map
    if tokenization.has_tokenizer_files(folder):
        tokenization.load_tokenizer(folder).save_pretrained(out_dir)
    for name in RUN_ARTEFACTS:  # the run's metrics, plots and responses, when present
        if os.path.isfile(os.path.join(folder, name)):
            shutil.copy2(os.path.join(folder, name), out_dir)
    model_card(folder, repo_id, datasets=datasets).save(os.path.join(out_dir, "README.md"))
    return out_dir


def push_to_hub(folder: str, repo_id: str, out_dir: str | None = None, private: bool = False,
                token: str | None = None, dry_run: bool = False, datasets: list[str] | None = None) -> list[str]:
    """Build the upload folder (``out_dir``, or a temporary one) and upload it (``dry_run``: only list); return its
    files."""
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="hfgpt-upload-") as temporary:
            return push_to_hub(folder, repo_id, temporary, private, token, dry_run, datasets)
    build_upload_folder(folder, repo_id, out_dir, datasets=datasets)
    files = sorted(os.path.relpath(os.path.join(root, f), out_dir)
                   for root, _, names in os.walk(out_dir) for f in names)
    if dry_run:
        return files
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=out_dir, commit_message="Upload hfgpt model")
    return files


def defer_trainer_push(training_args) -> bool:
    """Switch off the ``Trainer``'s own Hub upload (the bare output folder at every save) and say whether the user asked
    for one: the recipes upload once at the end through :func:`push_run`, with code, metrics and card."""
    wanted = bool(training_args.push_to_hub)
    training_args.push_to_hub = False
    return wanted


def push_run(folder: str, training_args, datasets: list[str] | None = None, dry_run: bool = False,
             out_dir: str | None = None) -> list[str]:
    """Upload a recipe's result folder to ``--hub_model_id`` (default: the output folder's name)."""
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    return push_to_hub(folder, repo_id, out_dir=out_dir, private=bool(training_args.hub_private_repo),
                       token=training_args.hub_token, dry_run=dry_run, datasets=datasets)


__all__ = ["build_upload_folder", "push_to_hub", "model_card", "adapter_card", "defer_trainer_push", "push_run"]
