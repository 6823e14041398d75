"""Trainer callbacks for the book's training-loop extras (chapter 5): ``generate_and_print_sample`` and
``plot_losses`` as callbacks, so the loop stays the Trainer's."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from transformers import TrainerCallback


class SampleGenerationCallback(TrainerCallback):
    """The book's ``generate_and_print_sample`` after each evaluation, seeded in a forked RNG (training's untouched)."""

    def __init__(self, tokenizer, prompt: str = "Every effort moves you", max_new_tokens: int = 40,
                 do_sample: bool = True, top_k: int | None = 40, temperature: float = 0.8, seed: int = 123):
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.generation_kwargs = dict(do_sample=True, top_k=top_k, temperature=temperature) if do_sample else \
            dict(do_sample=False)
        self.seed = seed

    def generate(self, model) -> str:
        """The sample text; the model is put back in training mode afterwards."""
        unwrapped = getattr(model, "module", model)
        was_training = unwrapped.training
        unwrapped.eval()
        inputs = self.tokenizer(self.prompt, return_tensors="pt").to(unwrapped.device)
        budget = unwrapped.config.n_positions - inputs.input_ids.shape[1]
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            out = unwrapped.generate(**inputs, max_new_tokens=max(1, min(self.max_new_tokens, budget)),
                                     pad_token_id=self.tokenizer.pad_token_id, **self.generation_kwargs)
        unwrapped.train(was_training)
        return self.tokenizer.decode(out[0], skip_special_tokens=True)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        # A sharded (FSDP) model gathers its weights in every forward, so every rank must generate; otherwise rank 0.
        if model is not None and (state.is_world_process_zero or _is_sharded(model)):
            text = self.generate(model)
            if state.is_world_process_zero:
                print(f"\n[sample @ step {state.global_step}] {text!r}\n", flush=True)


def _is_sharded(model) -> bool:
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    return isinstance(getattr(model, "module", model), (FSDPModule, FullyShardedDataParallel))


def plot_loss_curve(log_history: list[dict], tokens_per_step: int, path: str, title: str = "Training loss",
                    baseline: tuple[str, float] | None = None) -> str | None:
    """The book's ``plot_losses``: train and validation loss against tokens seen, as a PNG at ``path`` (perplexity on
    the right axis; ``baseline`` = (label, loss) a dashed line). None before any loss."""
    train = [(e["step"] * tokens_per_step, e["loss"]) for e in log_history if "loss" in e and "step" in e]
    val = [(e["step"] * tokens_per_step, e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", color="tab:orange")
        to_perplexity = (lambda y: torch.tensor(y).exp().numpy(), lambda p: torch.tensor(p).log().numpy())
        ax.secondary_yaxis("right", functions=to_perplexity).set_ylabel("perplexity")
    if baseline is not None:
        ax.axhline(baseline[1], linestyle="--", color="gray", label=baseline[0])
    ax.set(xlabel="tokens seen", ylabel="cross-entropy loss (nats)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass(eq=False)
class LossCurveCallback(TrainerCallback):
    """Writes ``loss_curve.png`` after every evaluation, so a run killed midway still leaves its curve."""

    tokens_per_step: int
    filename: str = "loss_curve.png"
    title: str = "Training loss"
    baseline: tuple[str, float] | None = None

    def on_evaluate(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_loss_curve(state.log_history, self.tokens_per_step, os.path.join(args.output_dir, self.filename),
                            self.title, self.baseline)

    on_train_end = on_evaluate


@dataclass(eq=False)
class BitsPerByteCallback(TrainerCallback):
    """Adds ``eval_bits_per_byte`` wherever ``eval_loss`` is logged, from the scored ``tokens`` and their
    ``n_bytes``."""

    tokens: int
    n_bytes: int

    def on_log(self, args, state, control, logs=None, **kwargs):
        from ..evaluation.language_model import bits_per_byte

        if logs is not None and "eval_loss" in logs:
            logs["eval_bits_per_byte"] = bits_per_byte(logs["eval_loss"], self.tokens, self.n_bytes)
            last = state.log_history[-1] if state.log_history else {}
            if last.get("eval_loss") == logs["eval_loss"]:  # Trainer.log appended a copy just before on_log
                last["eval_bits_per_byte"] = logs["eval_bits_per_byte"]

