"""Benchmark: time to a target validation loss, the speedrun figure, through the real pretraining recipe.

Runs :func:`hfgpt.training.pretrain.pretrain` (the main job: the embedded default corpus, its byte-level BPE of
vocabulary 8000 and its seeded validation split, preset ``laptop``, windows of 128, three epochs) with an evaluation
every ``--eval-every`` steps and a Trainer callback that stops training at the first evaluation whose ``eval_loss``
is at or below ``--target-loss`` (default 4.184 nats/token: the default main job's final validation loss before
issue #16). It reports

- wall time to the target, from the Trainer's ``on_train_begin`` to the evaluation that reached it (training steps
  and the evaluations on the way, each with the recipe's sample continuation), and the same without the evaluations;
  the steps and training tokens taken;
- the final validation loss and bits per byte (the recipe's ``eval_bits_per_byte``), with the unigram and xz
  baselines on the same split (``eval_unigram_bits_per_byte``, ``eval_xz_bits_per_byte``: :mod:`hfgpt.evaluation.language_model`).

Every argument this script does not know goes to the recipe's ``HfArgumentParser`` (after this script's defaults,
so it wins): ``--learning_rate 3e-3``, ``--bf16 true``, ``--preset mini``, any recipe or ``TrainingArguments`` flag.
Loss per token compares runs with the same tokenizer only (keep ``--vocab_size``); bits per byte compares any two.

    python bench/time_to_loss.py                                  # the main job, stopping at 4.184
    python bench/time_to_loss.py --no-stop                        # to the end of the epoch: time to target + final
    python bench/time_to_loss.py --learning_rate 3e-3 --bf16 true --json runs/ttl.json
    python bench/time_to_loss.py --quick                          # smoke test: tiny model, small corpus, 30 steps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_key, "1")

DEFAULT_TARGET = 4.184  # nats/token: the default main job's final validation loss before issue #16
QUICK_RECIPE_ARGS = [
    "--preset", "tiny", "--config_overrides", "n_layer=2,n_embd=64,n_head=2", "--vocab_size", "400",
    "--max_length", "64", "--max_corpus_chars", "200000", "--max_steps", "30", "--per_device_train_batch_size", "8",
    "--warmup_steps", "3", "--sample_max_new_tokens", "4", "--dataloader_num_workers", "0",
]  # fmt: skip
QUICK_TARGET = 5.2  # the quick model passes it at its second evaluation (step 20), before its last


def stop_at_loss_callback(target: float, tokens_per_step: int, stop: bool):
    """A ``TrainerCallback`` that times the run and, at the first evaluation with ``eval_loss <= target``, records
    step, tokens and times (and stops training if ``stop``). Evaluations (with the callbacks before this one: the
    recipe's sample and loss plot) are timed from the end of the step before them, so they can be taken out."""
    from transformers import TrainerCallback

    class StopAtLoss(TrainerCallback):
        def __init__(self):
            self.start = self.step_end = None
            self.eval_seconds = 0.0
            self.reached = None
            self.history = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = self.step_end = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_end = time.perf_counter()

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.start is None or metrics is None or "eval_loss" not in metrics:
                return  # the recipe's final evaluation, after training
            now = time.perf_counter()
            self.eval_seconds += now - self.step_end
            self.step_end = now  # a second evaluation after the same step is not counted twice
            entry = {"step": state.global_step, "tokens": state.global_step * tokens_per_step,
                     "eval_loss": metrics["eval_loss"], "eval_bits_per_byte": metrics.get("eval_bits_per_byte"),
                     "wall_s": now - self.start, "train_s": now - self.start - self.eval_seconds}
            self.history.append(entry)
            if self.reached is None and metrics["eval_loss"] <= target:
                self.reached = entry
                control.should_training_stop = stop

        def on_train_end(self, args, state, control, **kwargs):
            self.start = None

    return StopAtLoss()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Other arguments go to the recipe.")
    parser.add_argument("--target-loss", type=float, default=None,
                        help=f"validation loss to reach, nats/token (default {DEFAULT_TARGET}; {QUICK_TARGET} with "
                             "--quick)")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default 25; 10 "
                                                                      "with --quick)")
    parser.add_argument("--no-stop", dest="stop", action="store_false",
                        help="train to the end of the schedule (the time to target is still recorded)")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny model, 200k characters, 30 steps")
    args, recipe_argv = parser.parse_known_args(argv)
    target = args.target_loss if args.target_loss is not None else QUICK_TARGET if args.quick else DEFAULT_TARGET
    eval_every = args.eval_every or (10 if args.quick else 25)

    import torch
    import transformers
    from transformers import HfArgumentParser

    from hfgpt.training.pretrain import ARGUMENT_TYPES, pretrain

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="time_to_loss-") as scratch:
        defaults = ["--output_dir", scratch, "--eval_strategy", "steps", "--eval_steps", str(eval_every),
                    "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"]
        full_argv = [*defaults, *(QUICK_RECIPE_ARGS if args.quick else []), *recipe_argv]
        model_args, data_args, training_args = HfArgumentParser(ARGUMENT_TYPES).parse_args_into_dataclasses(
            args=full_argv)
        tokens_per_step = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                           * max(1, training_args.world_size) * data_args.max_length)
        callback = stop_at_loss_callback(target, tokens_per_step, args.stop)
        metrics = pretrain(model_args, data_args, training_args, extra_callbacks=[callback])
    total_s = time.perf_counter() - started

    reached = callback.reached
    final = {key: metrics.get(key) for key in ("eval_loss", "eval_bits_per_byte", "eval_unigram_loss",
                                               "eval_unigram_bits_per_byte", "eval_xz_bits_per_byte")}
    steps = metrics.get("train_tokens", 0) // tokens_per_step

    def fmt(value, spec=".3f"):
        return "n/a" if value is None else format(value, spec)

    print()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); bf16 {training_args.bf16}")
    print(f"recipe: {model_args.preset} {model_args.config_overrides or ''}, vocab {model_args.vocab_size}, "
          f"windows {data_args.max_length}, batch {tokens_per_step // data_args.max_length} "
          f"({tokens_per_step} tokens/step), lr {training_args.learning_rate}; evaluation every {eval_every} steps; "
          f"overrides: {' '.join(recipe_argv) or 'none'}")
    print(f"target: eval_loss <= {target} nats/token")
    if reached is not None:
        print(f"time to target: {reached['wall_s']:.1f} s wall ({reached['train_s']:.1f} s without evaluations), "
              f"step {reached['step']}, {reached['tokens']:,} tokens, eval_loss {reached['eval_loss']:.4f}, "
              f"{fmt(reached['eval_bits_per_byte'])} bits/byte")
    else:
        best = min(callback.history, key=lambda e: e["eval_loss"], default=None)
        print("time to target: not reached"
              + ("" if best is None else f" (best eval_loss {best['eval_loss']:.4f} at step {best['step']}, "
                                         f"{best['wall_s']:.1f} s)"))
    print(f"final: eval_loss {fmt(final['eval_loss'], '.4f')} nats/token, {fmt(final['eval_bits_per_byte'])} "
          f"bits/byte after {steps} steps ({metrics.get('train_runtime', 0):.1f} s train_runtime, "
          f"{total_s:.1f} s the whole recipe)")
    print(f"baselines, same validation split: unigram {fmt(final['eval_unigram_bits_per_byte'])} bits/byte "
          f"({fmt(final['eval_unigram_loss'])} nats/token); xz -9e {fmt(final['eval_xz_bits_per_byte'])} bits/byte "
          "(validation text given the training text)")
    if args.json:
        result = {
            "target_loss": target, "reached": reached is not None, "time_to_target": reached,
            "eval_every": eval_every, "stopped_at_target": args.stop and reached is not None,
            "final": final, "steps": steps, "tokens_per_step": tokens_per_step,
            "train_runtime_s": metrics.get("train_runtime"), "recipe_s": total_s, "evaluations": callback.history,
            "recipe_argv": full_argv[len(defaults):], "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(), "bf16": training_args.bf16,
        }  # fmt: skip
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
