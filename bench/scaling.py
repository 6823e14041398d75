"""Benchmark: training-step tokens/s and memory of hfgpt against context length and model size, eager vs SDPA.

One training step is forward + next-token loss + backward (``zero_grad(set_to_none=True)`` after it; no optimizer
step: AdamW's state is parameter-sized and does not depend on the context, so leaving it out shows the activations
more clearly). fp32, batch ``--batch-size`` (default 1), dropout 0 (SDPA with dropout takes a slow path on CPU), GPT-2's
vocabulary (50,257) unless ``--vocab-size``. Sizes are hfgpt presets (``tiny``, ``mini``, ``small``, ``124M``, ...),
each with ``n_positions`` = the largest context. For every size and context the eager model (the book's attention:
the full ``T x T`` score matrix, softmax, weights @ values) and the SDPA model (``scaled_dot_product_attention``,
whose CPU kernel works on blocks and keeps only the output and the log-sum-exp for the backward) start from the same
weights and are timed in interleaved steps (warm-up step, then eager, sdpa, eager, sdpa, ...; median). The number of
timed steps per point adapts to its cost (``--point-seconds``, at most ``--steps``, at least 1), so a 124M step at
context 1024 (~10 s on 2 cores) is timed once or twice.

Memory, two figures per point, both measured outside the timed steps, in fresh subprocesses:

* ``peak MiB``: what one training step adds to the process's peak resident set (Linux ``VmHWM``) over the resident
  memory just before it (model built, batch made, ``gc.collect()`` + glibc ``malloc_trim(0)``): activations,
  gradients (parameter-sized, about the same at every context), the logits and their gradient, temporaries and
  allocator slack. The real cost, as the operating system sees it. One subprocess per size x attention runs the
  contexts in increasing order and resets the high-water mark before each (writing 5 to ``/proc/self/clear_refs``,
  Linux >= 4.0); where that reset is not available, one subprocess per point, using ``ru_maxrss``. Each
  subprocess first runs an 8-token step, so one-time costs (library loading, thread pools) are not counted, and
  runs with glibc's dynamic mmap threshold off (``MALLOC_MMAP_THRESHOLD_=65536``, ``MALLOC_TRIM_THRESHOLD_``), so
  freed blocks go back to the OS at once and the resident set follows the live tensors: with glibc's defaults the
  same point varied by ~50 MiB from run to run, with these settings it repeats to the MiB.
* ``act MiB`` / ``act KiB/tok``: the bytes autograd keeps for the backward (every tensor saved by a
  ``torch.autograd.graph.saved_tensors_hooks`` pack hook during the forward, each storage counted once, parameters
  excluded): exact and noise-free. Eager attention saves its ``T x T`` weights per head and layer, so its total grows
  with the square of the context (its per-token figure grows linearly); SDPA's per-token figure stays flat.

Writes ``scaling.md`` (the table) and ``scaling.png`` (tokens/s and peak memory against context, one line per
size x attention) to ``--out-dir``.

    python bench/scaling.py                                    # tiny mini small 124M x 128 256 512 1024, ~5 min
    python bench/scaling.py --sizes mini small --contexts 256 512 1024 2048 --batch-size 2
    python bench/scaling.py --quick --out-dir /tmp/scaling     # smoke test: tiny, contexts 32 64, 1 step
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_key, "1")

from peak_memory import MALLOC_ENV, can_reset_peak, maxrss_mib, reset_peak, status_mib, trim  # noqa: E402 (bench/)

ATTNS = ("eager", "sdpa")


# --------------------------------------------------------------------------------------------------- models, steps
def build_model(args, size: str, attn: str):
    """A seeded random-init hfgpt model of preset ``size`` (same weights for both attentions), in train mode."""
    import torch

    import hfgpt

    torch.manual_seed(args.seed)
    config = hfgpt.GPTScratchConfig.from_preset(
        size, n_positions=args.n_positions, vocab_size=args.vocab_size, drop_rate=0.0,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    model = hfgpt.GPTScratchForCausalLM(config)
    model.set_attn_implementation(attn)
    return model.train()


def make_batch(args, context: int):
    import torch

    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, args.vocab_size, (args.batch_size, context), generator=generator)


def train_step(model, batch) -> float:
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.item()


def train_step_saved_bytes(model, batch) -> int:
    """One training step that also returns the bytes autograd saved for its backward (unique storages, parameters
    excluded). The pack hook only records sizes (it returns the tensor itself), so the step's memory is unchanged."""
    import torch

    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs and ptr != 0:
            storages[ptr] = max(storages.get(ptr, 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


# ------------------------------------------------------------------------------------------------- memory children
def memory_child(args) -> None:
    """Fresh process: build one size x attention, then per context (increasing): baseline, one step (counting the
    bytes saved for its backward), peak. Prints one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    size, attn = args.memory_child.split(":")
    model = build_model(args, size, attn)
    # A short warm-up step first (8 tokens: its peak stays far below any measured one), so one-time costs (lazy
    # library loading, thread pools, first allocations) do not count against the first context.
    train_step_saved_bytes(model, make_batch(args, 8))
    results = []
    for context in args.contexts:
        batch = make_batch(args, context)
        trim()
        if args.reset_peak:
            reset_peak()
            before = status_mib("VmRSS")
        else:  # one context per process: ru_maxrss (KiB on Linux) before and after
            before = maxrss_mib()
        activations = train_step_saved_bytes(model, batch)
        if args.reset_peak:
            peak = status_mib("VmHWM")
        else:
            peak = maxrss_mib()
        results.append({"context": context, "before_mib": before, "peak_mib": peak,
                        "step_mib": peak - before, "act_bytes": activations})  # fmt: skip
    print(json.dumps(results))


def measure_memory(args, size: str, attn: str, reset_peak: bool) -> dict:
    """{context: figures} for one size x attention, from fresh subprocesses."""
    common = [
        f"--vocab-size={args.vocab_size}", f"--batch-size={args.batch_size}", f"--seed={args.seed}",
        f"--threads={args.threads}", f"--n-positions={args.n_positions}",
    ]  # fmt: skip
    groups = [args.contexts] if reset_peak else [[c] for c in args.contexts]
    out = {}
    for contexts in groups:
        command = [sys.executable, os.path.abspath(__file__), "--memory-child", f"{size}:{attn}", *common,
                   "--contexts", *map(str, contexts)] + (["--reset-peak"] if reset_peak else [])  # fmt: skip
        # glibc's dynamic mmap threshold off: freed blocks go back to the OS at once, so the resident set follows the
        # live tensors (with glibc's default, the same point varied by ~50 MiB from run to run)
        env = dict(os.environ, **MALLOC_ENV)
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"memory subprocess {size}:{attn} {contexts} failed:\n{done.stderr[-2000:]}")
        for row in json.loads(done.stdout.strip().splitlines()[-1]):
            out[row["context"]] = row
    return out


# ------------------------------------------------------------------------------------------------------ reporting
def growth(values: dict, contexts) -> float:
    """Log-log slope of ``values`` from the smallest to the largest context (1 = linear, 2 = quadratic)."""
    lo, hi = min(contexts), max(contexts)
    if lo == hi or values[lo] <= 0:
        return float("nan")
    return math.log(values[hi] / values[lo]) / math.log(hi / lo)


def markdown(args, rows, header_lines, summary_lines) -> str:
    lines = ["# Training-step scaling: context length x model size, eager vs SDPA attention", ""]
    lines += [f"- {line}" for line in header_lines]
    lines += ["", "| size | params | context | attention | tokens/s | ms/step | sdpa/eager tokens/s | peak MiB "
              "| act MiB | act KiB/token |", "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        mem = (f"{r['peak_mib']:.0f} | {r['act_mib']:.1f} | {r['act_kib_per_token']:.1f}"
               if r.get("act_mib") is not None else "- | - | -")  # fmt: skip
        ratio = f"{r['sdpa_over_eager']:.2f}x" if r["attn"] == "sdpa" else ""
        lines.append(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {r['context']} | {r['attn']} | "
                     f"{r['tokens_per_s']:,.0f} | {r['ms_per_step']:.0f} | {ratio} | {mem} |")  # fmt: skip
    lines += [""] + [f"- {line}" for line in summary_lines]
    lines += ["", "tokens/s: batch x context / median seconds of a forward + loss + backward step. peak MiB: what one",
              "step adds to the peak resident set (fresh subprocess, high-water mark reset before the step). act: the",
              "bytes autograd saves for the backward (parameters excluded); KiB/token divides by batch x context.",
              "![tokens/s and peak memory against context](scaling.png)", ""]  # fmt: skip
    return "\n".join(lines)


def plot(rows, sizes, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_speed, ax_mem, ax_act) = plt.subplots(1, 3, figsize=(17, 4.8))
    colors = plt.get_cmap("tab10")
    for i, size in enumerate(sizes):
        for attn in ATTNS:
            points = [r for r in rows if r["size"] == size and r["attn"] == attn]
            contexts = [r["context"] for r in points]
            style = dict(color=colors(i), linestyle="--" if attn == "eager" else "-",
                         marker="s" if attn == "eager" else "o", label=f"{size} {attn}")  # fmt: skip
            ax_speed.plot(contexts, [r["tokens_per_s"] for r in points], **style)
            if all(r.get("peak_mib") is not None for r in points):
                ax_mem.plot(contexts, [max(r["peak_mib"], 0.1) for r in points], **style)
            if all(r.get("act_kib_per_token") is not None for r in points):
                ax_act.plot(contexts, [r["act_kib_per_token"] for r in points], **style)
    for ax in (ax_speed, ax_mem, ax_act):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens)")
        ax.grid(True, which="both", alpha=0.3)
    contexts = sorted({r["context"] for r in rows})
    for ax in (ax_speed, ax_mem, ax_act):
        ax.set_xticks(contexts, [str(c) for c in contexts])
    ax_speed.set_ylabel("training tokens/s (forward + backward)")
    ax_speed.set_title("Throughput")
    ax_mem.set_ylabel("peak memory added by one step (MiB)")
    ax_mem.set_title("Peak memory (GPT-2 vocabulary: the logits dominate)")
    ax_act.set_ylabel("activations saved for the backward per token (KiB)")
    ax_act.set_title("Saved activations per token: eager grows with context")
    ax_speed.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mini", "small", "124M"], help="hfgpt presets")
    parser.add_argument("--contexts", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--steps", type=int, default=5, help="most timed steps per attention per point (median)")
    parser.add_argument("--point-seconds", type=float, default=4.0,
                        help="timing budget per point; a point whose step is slower gets 1 timed step each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory subprocesses")
    parser.add_argument("--out-dir", help="where scaling.md/.png go (default docs/; with --quick a new temporary folder)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, vocab 512, contexts 32 64, 1 step")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--reset-peak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n-positions", type=int, help=argparse.SUPPRESS)  # the parent's, so children build the same
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.contexts, args.vocab_size, args.steps, args.point_seconds = ["tiny"], [32, 64], 512, 1, 0
    args.contexts = sorted(set(args.contexts))
    if args.out_dir is None:
        args.out_dir = tempfile.mkdtemp(prefix="hfgpt-scaling-") if args.quick else os.path.join(ROOT, "docs")
    args.n_positions = args.n_positions or max(args.contexts)
    if args.memory_child:
        memory_child(args)
        return 0

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    reset_peak = can_reset_peak()
    started = time.perf_counter()
    rows = []
    for size in args.sizes:
        models = {"sdpa": build_model(args, size, "sdpa")}
        models["eager"] = copy.deepcopy(models["sdpa"])  # its own config object: the attention choice is per config
        models["eager"].set_attn_implementation("eager")
        n_params = sum(p.numel() for p in models["sdpa"].parameters())
        memory = {attn: measure_memory(args, size, attn, reset_peak) for attn in ATTNS} if args.memory else {}
        for context in args.contexts:
            batch = make_batch(args, context)
            warm, losses = {}, {}
            for attn in ATTNS:  # warm-up step, also the cost estimate
                t = time.perf_counter()
                losses[attn] = train_step(models[attn], batch)
                warm[attn] = time.perf_counter() - t
            steps = max(1, min(args.steps, int(args.point_seconds / sum(warm.values()))))
            seconds = {attn: [] for attn in ATTNS}
            for _ in range(steps):
                for attn in ATTNS:
                    t = time.perf_counter()
                    train_step(models[attn], batch)
                    seconds[attn].append(time.perf_counter() - t)
            tokens = args.batch_size * context
            speed = {attn: tokens / statistics.median(seconds[attn]) for attn in ATTNS}
            if abs(losses["eager"] - losses["sdpa"]) > 1e-3:
                print(f"ERROR: {size} context {context}: eager loss {losses['eager']:.5f} != sdpa {losses['sdpa']:.5f}")
                return 1
            for attn in ATTNS:
                row = {"size": size, "params": n_params, "context": context, "attn": attn, "steps": steps,
                       "tokens_per_s": speed[attn], "ms_per_step": 1000 * statistics.median(seconds[attn]),
                       "sdpa_over_eager": speed["sdpa"] / speed["eager"], "loss": losses[attn]}  # fmt: skip
                if memory:
                    m = memory[attn][context]
                    row.update(peak_mib=m["step_mib"], act_mib=m["act_bytes"] / 2**20,
                               act_kib_per_token=m["act_bytes"] / 1024 / tokens)  # fmt: skip
                rows.append(row)
            print(f"  {size:>6} ctx {context:5}: " + ", ".join(
                f"{attn} {speed[attn]:8,.0f} tok/s" + (f" {memory[attn][context]['step_mib']:7.0f} MiB peak "
                                                        f"{memory[attn][context]['act_bytes'] / 2**20:7.1f} MiB act"
                                                        if memory else "")
                for attn in ATTNS) + f" ({steps} timed step{'s' * (steps > 1)})", flush=True)  # fmt: skip
        del models
    total = time.perf_counter() - started

    header = [
        f"date {datetime.datetime.now().isoformat(timespec='seconds')}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, fp32",
        f"batch {args.batch_size}, vocabulary {args.vocab_size}, dropout 0, forward + loss + backward (no optimizer "
        f"step); timed steps interleaved eager/sdpa, median, at most {args.steps} per point; run took {total:.0f} s",
        "peak memory: " + ("one fresh subprocess per size x attention, VmHWM reset before each context"
                           if reset_peak else "one fresh subprocess per point, ru_maxrss") if args.memory
        else "memory not measured (--no-memory)",
    ]  # fmt: skip
    summary = []
    for size in args.sizes:
        by = {attn: {r["context"]: r for r in rows if r["size"] == size and r["attn"] == attn} for attn in ATTNS}
        lo, hi = min(args.contexts), max(args.contexts)
        line = (f"{size}: sdpa/eager tokens/s {by['sdpa'][lo]['sdpa_over_eager']:.2f}x at context {lo}, "
                f"{by['sdpa'][hi]['sdpa_over_eager']:.2f}x at {hi}")  # fmt: skip
        if args.memory and lo != hi:
            act = {attn: {c: r["act_mib"] for c, r in by[attn].items()} for attn in ATTNS}
            per_tok = {attn: {c: r["act_kib_per_token"] for c, r in by[attn].items()} for attn in ATTNS}
            extra = {c: act["eager"][c] - act["sdpa"][c] for c in args.contexts}  # what eager saves beyond sdpa
            line += (f"; activations grow as context^{growth(act['eager'], args.contexts):.2f} (eager) vs "
                     f"^{growth(act['sdpa'], args.contexts):.2f} (sdpa), per token "
                     f"{per_tok['eager'][lo]:.0f} -> {per_tok['eager'][hi]:.0f} KiB (eager) vs "
                     f"{per_tok['sdpa'][lo]:.0f} -> {per_tok['sdpa'][hi]:.0f} KiB (sdpa); eager's extra "
                     f"activations (eager - sdpa) {extra[lo]:.1f} -> {extra[hi]:.1f} MiB, as context"
                     f"^{growth(extra, args.contexts):.2f}; peak memory at {hi}: "
                     f"eager {by['eager'][hi]['peak_mib']:.0f} MiB, sdpa {by['sdpa'][hi]['peak_mib']:.0f} MiB")  # fmt: skip
        summary.append(line)

    text = markdown(args, rows, header, summary)
    os.makedirs(args.out_dir, exist_ok=True)
    md_path, png_path = os.path.join(args.out_dir, "scaling.md"), os.path.join(args.out_dir, "scaling.png")
    with open(md_path, "w") as f:
        f.write(text)
    plot(rows, args.sizes, png_path)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=2)
    print()
    print(text)
    print(f"wrote {md_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
