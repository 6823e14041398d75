"""Scoring a language model: perplexity, bits per byte, baselines, and the recipes' evaluation steps.

Bits per byte (total nats / ln 2 / the UTF-8 bytes scored) does not depend on the tokenizer, so it compares models
with different vocabularies, and a model with a compressor. Baselines a trained model must beat: a unigram model
(token frequencies, no context) and xz (the bits for the validation text once it has seen the training text).
"""

from __future__ import annotations

import logging
import lzma
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger("hfgpt.evaluation")

XZ_PRESET = 9 | lzma.PRESET_EXTREME  # xz -9e: a 64 MiB dictionary, the strongest standard setting
XZ_DICTIONARY_BYTES = 64 * 2**20  # what preset 9 can look back over: older training text cannot help it


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run reports inf instead of raising OverflowError."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def _token_arrays(windows, column: str):
    for start in range(0, len(windows), 4096):
        yield np.asarray(windows[start : start + 4096][column], dtype=np.int64)


def unigram_loss(train_windows, eval_windows, vocab_size: int, column: str = "input_ids") -> float:
    """Cross-entropy (nats/token) on ``eval_windows`` of ``train_windows``' add-one-smoothed token frequencies."""
    counts = np.ones(vocab_size, dtype=np.float64)  # add-one smoothing: unseen tokens keep a small probability
    for block in _token_arrays(train_windows, column):
        counts += np.bincount(block.ravel(), minlength=vocab_size)[:vocab_size]
    log_probs = np.log(counts / counts.sum())
    total, n = 0.0, 0
    for block in _token_arrays(eval_windows, column):
        targets = block[:, 1:].ravel()
        total -= float(log_probs[targets].sum())
        n += targets.size
    return total / n if n else math.nan


def token_byte_lengths(tokenizer) -> np.ndarray:
    """The UTF-8 bytes of text each token id stands for (0 for special tokens). Exact for byte-level BPE (each character
    of a token string is one byte, by GPT-2's ``bytes_to_unicode``); else the bytes of each token decoded alone."""
    from tokenizers import decoders
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    byte_level = isinstance(backend.decoder, decoders.ByteLevel)
    byte_chars = set(bytes_to_unicode().values())
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    lengths = np.zeros(len(tokenizer), dtype=np.int64)
    for token, i in tokenizer.get_vocab().items():
        if i in special:
            continue
        if byte_level and all(ch in byte_chars for ch in token):
            lengths[i] = len(token)
        elif byte_level:  # an added (non-special) token is stored as plain text
            lengths[i] = len(token.encode("utf-8"))
        else:
            lengths[i] = len(tokenizer.convert_tokens_to_string([token]).encode("utf-8"))
    return lengths


def scored_tokens_and_bytes(windows, byte_lengths: np.ndarray, column: str = "input_ids") -> tuple[int, int]:
    """``(tokens, bytes)`` the causal-LM loss on ``windows`` averages over: each window's tokens but its first."""
    tokens, n_bytes = 0, 0
    for block in _token_arrays(windows, column):
        targets = block[:, 1:]
        tokens += targets.size
        n_bytes += int(byte_lengths[targets].sum())
    return tokens, n_bytes


def bits_per_byte(nats_per_token: float, tokens: int, n_bytes: int) -> float:
    """A mean loss in nats/token over ``tokens`` as bits per byte of their ``n_bytes``: total nats / ln 2 / bytes."""
    if n_bytes <= 0:
        return math.nan
    return nats_per_token * tokens / math.log(2) / n_bytes


def _joined_bytes(texts) -> bytes:
    return "\n".join(text for text in texts if text).encode("utf-8")


def last_documents(dataset, column: str = "text", max_bytes: int = XZ_DICTIONARY_BYTES) -> list[str]:
    """The last documents of an in-memory ``Dataset`` that together reach ``max_bytes`` of UTF-8 text, in order."""
    kept, total, end = [], 0, len(dataset)
    while end > 0 and total < max_bytes:
        start = max(0, end - 1000)
        for text in reversed(dataset[start:end][column]):
            kept.append(text or "")
            total += len(kept[-1].encode("utf-8"))
            if total >= max_bytes:
                break
        end = start
    return kept[::-1]


def xz_bits_per_byte(train_texts, validation_texts, preset: int = XZ_PRESET) -> float:
    """The compressor baseline: ``(len(xz(train + val)) - len(xz(train))) * 8 / len(val)`` bits per byte, with the last
    :data:`XZ_DICTIONARY_BYTES` of training text (preset 9 cannot look further back), in two threads."""
    train = _joined_bytes(train_texts)[-XZ_DICTIONARY_BYTES:]
    validation = _joined_bytes(validation_texts)
    if not validation:
        return math.nan
    with ThreadPoolExecutor(2) as pool:
        alone, both = pool.map(lambda data: len(lzma.compress(data, preset=preset)),
                               [train, train + b"\n" + validation])
    return (both - alone) * 8 / len(validation)


# ------------------------------------------------------------------------------------------------ the recipes' steps
@dataclass
class LanguageModelBaselines:
    """A validation split's yardsticks, measured before training: tokens and bytes, unigram loss, xz bits per byte."""

    tokens: int
    n_bytes: int
    unigram_loss: float
    xz_bits_per_byte: float | None = None

    @classmethod
    def measure(cls, texts, windows, tokenizer, vocab_size: int, text_column: str = "text", xz: bool = True):
        """From the ``train`` / ``validation`` splits of the ``texts`` and of their token ``windows``."""
        tokens, n_bytes = scored_tokens_and_bytes(windows["validation"], token_byte_lengths(tokenizer))
        baselines = cls(tokens, n_bytes, unigram_loss(windows["train"], windows["validation"], vocab_size))
        logger.info("Validation: %d scored tokens, %d bytes of text (%.2f bytes/token). Unigram baseline: loss %.3f "
                    "(perplexity %.1f), %.3f bits/byte", tokens, n_bytes, n_bytes / tokens, baselines.unigram_loss,
                    perplexity(baselines.unigram_loss), baselines.bits_per_byte(baselines.unigram_loss))
        if xz:
            baselines.xz_bits_per_byte = xz_bits_per_byte(last_documents(texts["train"], text_column),
                                                          texts["validation"][text_column])
            logger.info("xz baseline (lzma preset 9e, validation given training text): %.3f bits/byte",
                        baselines.xz_bits_per_byte)
        return baselines

    def bits_per_byte(self, loss: float) -> float:
        return bits_per_byte(loss, self.tokens, self.n_bytes)

    def metrics(self, prefix: str = "eval") -> dict:
        values = {f"{prefix}_unigram_loss": self.unigram_loss,
                  f"{prefix}_unigram_perplexity": perplexity(self.unigram_loss),
                  f"{prefix}_unigram_bits_per_byte": self.bits_per_byte(self.unigram_loss)}
        if self.xz_bits_per_byte is not None:
            values[f"{prefix}_xz_bits_per_byte"] = self.xz_bits_per_byte
        return values


def evaluate_language_model(trainer, baselines: LanguageModelBaselines | None = None, lm_eval_tasks=(),
                            documents=None) -> dict:
    """The pretraining recipe's evaluation of its saved model: ``Trainer.evaluate`` beside the ``baselines`` (in
    ``eval_results.json``), then lm-eval's ``lm_eval_tasks`` on the main process (``documents``: the held-out text)."""
    metrics = trainer.evaluate()
    metrics["eval_perplexity"] = perplexity(metrics["eval_loss"])
    if baselines is not None:
        metrics.update(baselines.metrics())
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    if lm_eval_tasks and trainer.is_world_process_zero():
        from .lm_eval import evaluate_saved_run

        headline = evaluate_saved_run(trainer.args.output_dir, lm_eval_tasks, documents,
                                      batch_size=trainer.args.per_device_eval_batch_size)
        lm_eval_metrics = {f"lm_eval_{task}_{name}": value for task, values in headline.items()
                           for name, value in values.items()}
        trainer.log_metrics("lm_eval", lm_eval_metrics)
        metrics.update(lm_eval_metrics)
    return metrics


def evaluate_losses(trainer, items: list[dict], prefix: str) -> dict:
    """Loss and perplexity on the responses only and on the whole text (the book's ``calc_loss_loader``, chapter 7)."""
    from ..data.instructions import InstructionDataset

    metrics = {}
    for name, mask in (("response", True), ("full", False)):
        result = trainer.evaluate(InstructionDataset(items, mask_prompt=mask), metric_key_prefix="eval")
        metrics[f"{prefix}_{name}_loss"] = result["eval_loss"]
        metrics[f"{prefix}_{name}_perplexity"] = perplexity(result["eval_loss"])
    return metrics
