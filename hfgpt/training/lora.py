"""LoRA with peft, shared by the fine-tuning recipes (the book's appendix E writes ``LinearWithLoRA`` by hand).
:func:`save_merged` folds the adapters back into the weights: an ordinary checkpoint that loads without peft."""

from __future__ import annotations

import logging

logger = logging.getLogger("hfgpt.lora")

DEFAULT_TARGETS = "qkv,out_proj,fc_in,fc_out"


def apply_lora(model, r: int = 16, alpha: int = 16, dropout: float = 0.0, target_modules: str = DEFAULT_TARGETS,
               task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None):
    """Wrap ``model`` in a ``PeftModel`` with LoRA adapters; only the adapters (and ``modules_to_save``) train."""
    from peft import LoraConfig, get_peft_model  # lazily: peft costs seconds to import

    targets = [name.strip() for name in target_modules.split(",") if name.strip()]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        modules_to_save=modules_to_save, task_type=task_type)
    try:
        model = get_peft_model(model, config)
    except ValueError as err:
        raise ValueError(f"--lora_target_modules {target_modules!r}: {err}") from None
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def save_merged(peft_model, tokenizer, folder: str) -> str:
    """Fold the adapters into the base weights (``peft_model`` is spent) and save a plain model and tokenizer."""
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    logger.info("Saved the model with merged LoRA weights to %s", folder)
    return folder


__all__ = ["DEFAULT_TARGETS", "apply_lora", "save_merged"]
