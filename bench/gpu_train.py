"""Benchmark: GPT-2 124M training throughput on one GPU, hfgpt's GPTScratchForCausalLM against transformers'
GPT2LMHeadModel, in the same process with the same setup.

Setup (both models): GPT-2 124M (12 layers, 768 wide, 12 heads, context 1024), the same initial weights (hfgpt's
is converted from the GPT-2 with ``hfgpt.convert.from_hf_gpt2``), sdpa attention, dropout 0, bf16 autocast, TF32
matmuls (``torch.set_float32_matmul_precision("high")``), ``torch.compile`` of the whole model (forward + loss),
fused AdamW (nanoGPT's settings: lr 6e-4, betas 0.9/0.95, weight decay 0.1 on 2-D weights), the same random token
batches. hfgpt pads its vocabulary 50,257 -> 50,304 rows (``pad_vocab_size_multiple=64``, as nanoGPT;
``--no-pad-vocab`` to switch off); GPT2LMHeadModel keeps 50,257. One step = ``--grad-accum`` forward/backward
passes of ``--batch-size`` x context tokens, then the optimizer step.

Procedure: each model is built, compiled and warmed up on its own (its first step's time includes compilation;
its peak CUDA memory is measured then, with the other model not yet on the GPU), then the models are timed in
interleaved rounds (ABAB..., the order flipping every round) of ``--steps`` steps each; the median over rounds is
reported. Figures are printed as they come, so a failure of the GPT-2 reference keeps hfgpt's.

MFU (nanoGPT's ``estimate_mfu``, PaLM appendix B): tokens/s x (6 N + 12 L H Q T) / peak, N = the parameters of the
unpadded model without the position embeddings (the same count for both models, so the MFU ratio is the tokens/s
ratio); peak = dense bf16 tensor-core FLOP/s from the GPU's name (H100 SXM / H200 989e12, H100 NVL 835e12,
H100 PCIe 756e12, A100 312e12), or ``--peak-flops``.

    PYTHONPATH=. python bench/gpu_train.py                            # batch 16 x 1024: ~95 s on an H100
    PYTHONPATH=. python bench/gpu_train.py --batch-size 32 --grad-accum 2 --json gpu_train.json
    python bench/gpu_train.py --device cpu --quick --no-compile       # smoke test on a CPU (seconds)

Measured (H100 80GB HBM3, torch 2.11.0+cu130, transformers 5.17.0, defaults): hfgpt 377,754 tokens/s (43.4 ms/step,
MFU 32.7%, peak 11.5 GiB), GPT2LMHeadModel 318,731 tokens/s (51.4 ms/step, MFU 27.6%, peak 11.1 GiB): 1.19x.
hfgpt unpadded (``--no-pad-vocab``, a separate run): 362,259 tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_key, "1")

# Dense bf16 tensor-core peak (no sparsity), by a piece of torch.cuda.get_device_name(); first match wins.
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
)


def say(text: str = "") -> None:
    print(text, flush=True)


def peak_flops_for(name: str) -> float | None:
    for piece, flops in PEAK_BF16_FLOPS:
        if piece.lower() in name.lower():
            return flops
    return None


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)  # fmt: skip
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per forward/backward (default 16)")
    parser.add_argument("--grad-accum", type=int, default=1, help="forward/backward passes per optimizer step")
    parser.add_argument("--context", type=int, default=1024, help="tokens per sequence (default 1024)")
    parser.add_argument("--n-layer", type=int, default=12)
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--n-head", type=int, default=12)
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--dropout", type=float, default=0.0, help="all dropouts, both models (default 0)")
    parser.add_argument("--pad-vocab", dest="pad_vocab", type=int, nargs="?", const=64, default=64, metavar="MULTIPLE",
                        help="hfgpt's pad_vocab_size_multiple (default 64: 50,257 -> 50,304 rows)")  # fmt: skip
    parser.add_argument("--no-pad-vocab", dest="pad_vocab", action="store_const", const=None,
                        help="hfgpt with exactly vocab-size rows, as GPT2LMHeadModel")  # fmt: skip
    parser.add_argument("--attn", default="sdpa", help="attn_implementation of both models (default sdpa)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="bf16 autocast (default) or fp32")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager models, no torch.compile")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune (default: none)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--no-fused-adamw", dest="fused_adamw", action="store_false", help="AdamW's foreach version")
    parser.add_argument("--models", default="hfgpt,gpt2", help="comma-separated, run in this order (default both)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per model per round (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the compiling one (default 3)")
    parser.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s for MFU (default: from GPU name)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 with --quick on a CPU)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the settings and results as JSON")
    parser.add_argument("--profile", type=int, nargs="?", const=3, default=0, metavar="STEPS",
                        help="after the rounds, profile STEPS (default 3) steps of each model with torch.profiler and "
                             "print where the device time goes (matmuls, attention, fused elementwise, optimizer)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 layers, 64 wide, vocab 1000 (hfgpt: 1024 rows), context 64, batch 4, "
                             "2 rounds of 2 steps")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.n_layer, args.n_embd, args.n_head, args.vocab_size = 2, 64, 2, 1000
        args.context, args.batch_size = min(args.context, 64), min(args.batch_size, 4)
        args.steps, args.rounds, args.warmup = min(args.steps, 2), min(args.rounds, 2), min(args.warmup, 1)
        if args.device == "cpu" and args.threads is None:
            args.threads = 1  # tiny matrices gain nothing from threads, and on a busy machine OpenMP's spin badly
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = set(args.models) - {"hfgpt", "gpt2"}
    if unknown or not args.models:
        parser.error(f"--models takes hfgpt and/or gpt2, got {args.models}")
    for name in ("batch_size", "grad_accum", "context", "steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


class Runner:
    """One model with its optimizer and (compiled) training step; records its figures."""

    def __init__(self, name: str, label: str):
        self.name, self.label = name, label
        self.model = self.optimizer = self.forward = None
        self.result: dict = {"model": label, "tokens_per_s": [], "error": None}

    def fail(self, stage: str, error: BaseException) -> None:
        self.result["error"] = f"{stage}: {type(error).__name__}: {error}"
        say(f"!! {self.name} failed during {stage}: {type(error).__name__}: {error}")
        say("".join(traceback.format_exception(type(error), error, error.__traceback__))[-4000:])

    @property
    def ok(self) -> bool:
        return self.result["error"] is None


def make_optimizer(model, args, device):
    """nanoGPT's AdamW: weight decay on the 2-D weights only, fused kernel."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=args.fused_adamw or None)


def make_step(runner: Runner, batches, args, device):
    import torch

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        for input_ids in batches:  # gradient accumulation: --grad-accum micro-batches
            with autocast:
                loss = runner.forward(input_ids=input_ids, labels=input_ids).loss
            (loss / len(batches)).backward()
        runner.optimizer.step()
        runner.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def static_bytes(runner: Runner) -> int:
    """Parameters + optimizer state, in bytes (what stays allocated between steps)."""
    total = sum(p.numel() * p.element_size() for p in runner.model.parameters())
    for state in runner.optimizer.state.values():
        total += sum(t.numel() * t.element_size() for t in state.values() if hasattr(t, "numel"))
    return total


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from flops import flops_per_token
    from hfgpt.convert import from_hf_gpt2

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        say("No CUDA device: pass --device cpu (with --quick for a smoke test).")
        return 2
    torch.set_float32_matmul_precision("high")  # TF32 for the fp32 matmuls that remain
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = args.peak_flops or (peak_flops_for(gpu_name) if gpu_name else None)
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "hfgpt_commit": git_commit(),
        "device": gpu_name or f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)",
        "peak_flops": peak,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                   memory_gib=round(props.total_memory / 2**30, 1))  # fmt: skip
    say(f"python {env['python']}, torch {env['torch']} (CUDA {env['cuda']}), transformers {env['transformers']}, "
        f"hfgpt {env['hfgpt_commit']}")  # fmt: skip
    say(f"device: {env['device']}" + (f", {env.get('sms')} SMs, {env.get('memory_gib')} GiB" if gpu_name else "")
        + (f"; peak {peak / 1e12:.0f} TFLOP/s bf16 dense" if peak else "; peak FLOP/s unknown (--peak-flops): no MFU"))
    tokens_per_step = args.batch_size * args.context * args.grad_accum
    compile_text = f"torch.compile({args.compile_backend}, mode={args.compile_mode})" if args.compile else "eager"
    say(f"setup: {args.n_layer} layers, {args.n_embd} wide, {args.n_head} heads, context {args.context}, vocab "
        f"{args.vocab_size} (hfgpt rows: {'x' + str(args.pad_vocab) if args.pad_vocab else 'unpadded'}), batch "
        f"{args.batch_size} x {args.grad_accum} accum = {tokens_per_step:,} tokens/step, {args.precision}, "
        f"attn {args.attn}, {compile_text}, AdamW {'fused' if args.fused_adamw else 'foreach'}, dropout {args.dropout}")
    say(f"timing: {args.rounds} interleaved rounds x {args.steps} steps per model, {args.warmup} warm-up steps; median")

    # The same initial weights for both: a seeded GPT-2 (on the CPU), hfgpt converted from it.
    gpt2_config = GPT2Config(
        vocab_size=args.vocab_size, n_positions=args.context, n_embd=args.n_embd, n_layer=args.n_layer,
        n_head=args.n_head, resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
    )  # fmt: skip
    reference = GPT2LMHeadModel(gpt2_config)
    n_params = sum(p.numel() for p in reference.parameters()) - reference.transformer.wpe.weight.numel()
    token_flops = flops_per_token(n_params, args.n_layer, args.n_embd, args.context)
    say(f"N = {n_params / 1e6:.2f}M parameters without position embeddings; {token_flops / 1e9:.3f} GFLOP/token "
        f"(6N + 12LHQT)")  # fmt: skip

    generator = torch.Generator().manual_seed(1234)
    batches = [torch.randint(0, args.vocab_size, (args.batch_size, args.context), generator=generator).to(device)
               for _ in range(args.grad_accum)]  # fmt: skip

    runners: dict[str, Runner] = {}
    for name in args.models:
        runner = runners[name] = Runner(name, "GPTScratchForCausalLM" if name == "hfgpt" else "GPT2LMHeadModel")
        try:
            if name == "hfgpt":
                model = from_hf_gpt2(reference, pad_vocab_size_multiple=args.pad_vocab)
                runner.result["embedding_rows"] = model.config.padded_vocab_size
            else:
                model = GPT2LMHeadModel(GPT2Config.from_dict(gpt2_config.to_dict()))  # its own config
                model.load_state_dict(reference.state_dict())
                runner.result["embedding_rows"] = model.config.vocab_size
            model.set_attn_implementation(args.attn)
            runner.model = model.to(device).train()
            runner.optimizer = make_optimizer(model, args, device)
            runner.forward = (torch.compile(model, backend=args.compile_backend, mode=args.compile_mode, dynamic=False)
                              if args.compile else model)  # fmt: skip
        except Exception as error:  # noqa: BLE001  (report, go on with the other model)
            runner.fail("setup", error)
            continue
        try:
            warm_up(runner, make_step(runner, batches, args, device), args, device)
        except Exception as error:  # noqa: BLE001
            runner.fail("compile / warm-up", error)
            runner.model = runner.forward = runner.optimizer = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        report_warm_up(runner, tokens_per_step)
    del reference

    live = [r for r in runners.values() if r.ok]
    steps = {r.name: make_step(r, batches, args, device) for r in live}
    for round_index in range(args.rounds):
        order = live if round_index % 2 == 0 else live[::-1]
        parts = []
        for runner in order:
            if not runner.ok:
                continue
            try:
                synchronize(device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    loss = steps[runner.name]()
                synchronize(device)
                seconds = time.perf_counter() - start
            except Exception as error:  # noqa: BLE001
                runner.fail(f"round {round_index + 1}", error)
                runner.model = runner.forward = runner.optimizer = None  # free its memory for the other model
                steps.pop(runner.name)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            tps = args.steps * tokens_per_step / seconds
            runner.result["tokens_per_s"].append(tps)
            runner.result["last_loss"] = float(loss)
            parts.append(f"{runner.name} {tps:,.0f} tok/s ({1000 * seconds / args.steps:.1f} ms/step)")
        say(f"round {round_index + 1}/{args.rounds}: " + " | ".join(parts))

    say()
    say(f"{'model':24}{'tokens/s':>12}{'ms/step':>10}{'TFLOP/s':>10}{'MFU':>8}{'peak GiB':>10}{'static GiB':>11}"
        f"{'1st step s':>11}{'first loss':>12}")  # fmt: skip
    for runner in runners.values():
        summarise(runner, tokens_per_step, token_flops, peak)
    hf, ref = runners.get("hfgpt"), runners.get("gpt2")
    ratio = None
    if hf and ref and hf.result.get("median_tokens_per_s") and ref.result.get("median_tokens_per_s"):
        ratio = hf.result["median_tokens_per_s"] / ref.result["median_tokens_per_s"]
        say(f"\nratio: hfgpt / GPT2LMHeadModel = {ratio:.3f}x tokens/s")
        if hf.result.get("first_loss") is not None and ref.result.get("first_loss") is not None:
            gap = abs(hf.result["first_loss"] - ref.result["first_loss"])
            say(f"first-step losses (same weights, same batch): differ by {gap:.4f}"
                + (" (OK)" if gap < 0.05 else " -- MORE THAN EXPECTED FROM bf16 ROUNDING"))  # fmt: skip
    failed = [r.name for r in runners.values() if not r.ok]
    if failed:
        say(f"failed: {', '.join(failed)} (see above)")
    if args.profile:
        for runner in live:
            if runner.ok:
                runner.result["profile"] = profile_breakdown(runner, steps[runner.name], args, device,
                                                             tokens_per_step, 6 * n_params)
    total = time.perf_counter() - started
    say(f"total time: {total:.0f} s")

    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        payload = {"env": env, "settings": settings, "tokens_per_step": tokens_per_step, "n_params": n_params,
                   "flops_per_token": token_flops, "ratio_hfgpt_over_gpt2": ratio, "total_s": total,
                   "results": {name: r.result for name, r in runners.items()}}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
        say(f"wrote {args.json}")
    return 1 if failed else 0


# Kernel name pieces -> what the kernel does; first match wins (cuBLAS / CUTLASS GEMMs, flash / cuDNN / efficient
# attention, the optimizer's fused kernels, Triton kernels that inductor generated for everything else).
KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "attention", "sdpa")),  # before matmul: cuDNN's flash kernels use wgmma too
    ("matmul", ("gemm", "nvjet", "xmma", "cutlass", "cublas", "wgmma", "aten::mm", "aten::addmm", "aten::bmm")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("fused elementwise (norms, GELU, loss, ...)", ("triton",)),
    ("copies / fills", ("memcpy", "memset", "copy", "fill")),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    for kind, pieces in KERNEL_KINDS:
        if any(piece in lowered for piece in pieces):
            return kind
    return "other"


def profile_breakdown(runner: Runner, step, args, device, tokens_per_step: int, matmul_flops_per_token: float) -> dict:
    """Profile ``args.profile`` steps; print the device (CUDA kernel) time per step by kind of kernel, the top
    kernels, how much of the step the device sat idle, and the TFLOP/s the matmuls alone reach (6 N flops per token
    are matmul work). On a CPU the same table is made from the operators' self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(args.profile):
            step()
        synchronize(device)
        wall = (time.perf_counter() - start) / args.profile
    by_kind: dict[str, float] = {}
    kernels = []
    for event in prof.key_averages():
        if cuda:
            if event.device_type != torch.autograd.DeviceType.CUDA:
                continue
            us = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
        else:
            if event.key.startswith(("ProfilerStep", "Optimizer.step", "Torch-Compiled", "CompiledFunction")):
                continue
            us = event.self_cpu_time_total
        if us <= 0:
            continue
        seconds = us / 1e6 / args.profile
        kind = kernel_kind(event.key)
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        kernels.append((seconds, event.key, kind))
    busy = sum(by_kind.values())
    what = "device (kernel) time" if cuda else "self CPU time"
    say(f"\nprofile of {runner.label} ({args.profile} steps under torch.profiler, {1000 * wall:.1f} ms/step wall): "
        f"{what} per step by kind")
    for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        say(f"  {kind:44}{1000 * seconds:9.2f} ms{100 * seconds / wall:7.1f}% of the step")
    if cuda:
        say(f"  {'device idle (launch gaps, host work)':44}{1000 * max(wall - busy, 0):9.2f} ms"
            f"{100 * max(wall - busy, 0) / wall:7.1f}% of the step")
    matmul = by_kind.get("matmul", 0.0)
    matmul_tflops = matmul_flops_per_token * tokens_per_step / matmul / 1e12 if matmul else None
    if matmul_tflops:
        say(f"  matmuls alone: {matmul_tflops:.3g} TFLOP/s (6N flops per token over their kernel time)")
    say("  top kernels:")
    for seconds, name, kind in sorted(kernels, reverse=True)[:12]:
        say(f"    {1000 * seconds:8.2f} ms  {kind[:9]:9}  {name[:110]}")
    return {"wall_ms": 1000 * wall, "busy_ms": 1000 * busy, "by_kind_ms": {k: 1000 * v for k, v in by_kind.items()},
            "matmul_tflops": matmul_tflops}


def warm_up(runner: Runner, step, args, device) -> None:
    """The first step (compiles) timed on its own, then ``--warmup`` steps; peak CUDA memory over all of them,
    counted from what was allocated before this model reached the GPU (the other model, if any, is not there yet
    or is only static: its parameters and optimizer state)."""
    import torch

    cuda = device.type == "cuda"
    if cuda:
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    # What other models hold (their weights and optimizer state, the batches); this model's weights are on the
    # GPU already, so take them out of the baseline.
    before = torch.cuda.memory_allocated(device) - sum(
        p.numel() * p.element_size() for p in runner.model.parameters()
    ) if cuda else 0  # fmt: skip
    start = time.perf_counter()
    first = step()
    runner.result["first_loss"] = float(first)  # float() synchronises
    runner.result["first_step_s"] = time.perf_counter() - start
    for _ in range(args.warmup):
        step()
    synchronize(device)
    if cuda:
        runner.result["peak_memory_gib"] = (torch.cuda.max_memory_allocated(device) - before) / 2**30
        runner.result["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
    runner.result["static_gib"] = static_bytes(runner) / 2**30


def report_warm_up(runner: Runner, tokens_per_step: int) -> None:
    r = runner.result
    memory = f", peak {r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else ""
    compiling = " (compiling)" if runner.forward is not runner.model else ""
    say(f"{runner.name}: first step {r['first_step_s']:.1f} s{compiling}, loss {r['first_loss']:.4f}{memory}, "
        f"weights+AdamW {r['static_gib']:.2f} GiB, {r['embedding_rows']:,} vocabulary rows")


def summarise(runner: Runner, tokens_per_step: int, flops_per_token: float, peak: float | None) -> None:
    r = runner.result
    if not r["tokens_per_s"]:
        say(f"{runner.label:24}{'failed' if r['error'] else 'no data':>12}")
        return
    tps = statistics.median(r["tokens_per_s"])
    r["median_tokens_per_s"] = tps
    r["ms_per_step"] = 1000 * tokens_per_step / tps
    r["achieved_flops"] = tps * flops_per_token
    r["mfu"] = r["achieved_flops"] / peak if peak else None
    mfu = f"{100 * r['mfu']:7.1f}%" if r["mfu"] is not None else f"{'n/a':>8}"
    peak_gib = f"{r['peak_memory_gib']:10.2f}" if "peak_memory_gib" in r else f"{'n/a':>10}"
    say(f"{runner.label:24}{tps:12,.0f}{r['ms_per_step']:10.1f}{r['achieved_flops'] / 1e12:10.2f}{mfu}{peak_gib}"
        f"{r['static_gib']:11.2f}{r['first_step_s']:11.1f}{r['first_loss']:12.4f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
