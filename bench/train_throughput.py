"""Benchmark: training-step throughput of hfgpt's GPTScratchForCausalLM against transformers' GPT2LMHeadModel.

One training step is forward + loss + backward + AdamW step + zero_grad on the same random token batch. Both models
have the same sizes (GPT-2's architecture: qkv bias, tied embeddings, GELU tanh, pre-LayerNorm) and start from the
same weights (ours is converted from the GPT-2 model with ``hfgpt.convert.from_hf_gpt2``); each is built with
``attn_implementation="eager"`` and ``"sdpa"``, every model from its own config. hfgpt trains through its fused
linear + loss (``skip_logits_in_training``; ``--no-fused-loss``: logits, then the chunked loss, as a plain
``model(**batch)``).

bf16 rows (``-bf16``, sdpa): the same step under ``torch.autocast("cpu", dtype=torch.bfloat16)`` for both models, fp32
master weights and AdamW state. The variants and large square fp32 and bf16 ``torch.mm`` (this machine's matmul
ceilings) are timed in interleaved rounds (a, b, c, ..., mm fp32, mm bf16, a, b, ...); the median over rounds is
reported. The headline ratios are hfgpt's best fp32 variant against GPT-2's best, and hfgpt bf16 against hfgpt fp32
and GPT-2 bf16. Then hfgpt sdpa trains ``--loss-steps`` steps in fp32 and in bf16 from the same seed on batches of a
fixed random Markov chain (learnable: each token has 4 possible successors; a 20-step warm-up and clipping to norm 1,
as the recipes train), and the two final losses are compared.

Achieved FLOP/s use nanoGPT's ``estimate_mfu`` count (PaLM appendix B): ``6 N + 12 L H Q T`` flops per token, N =
parameters without the position embeddings (the token embedding counts: it is also the output layer).

Peak memory: each variant runs a few steps again in a fresh subprocess (glibc's dynamic mmap threshold off, see
``bench/peak_memory.py``): after building its model it resets the kernel's peak-RSS mark, then trains; "peak MiB" is
the process's peak resident set during training, "+train MiB" what training added over the resident set just before
it (activations, gradients, AdamW state, the allocator's slack). Where the mark cannot be reset (not Linux), the
columns are left out.

    python bench/train_throughput.py                       # 4 layers, 256 wide, 4 heads, vocab 8192, ctx 256, batch 8
    python bench/train_throughput.py --n-layer 6 --n-embd 384 --n-head 6 --dropout 0.1
    python bench/train_throughput.py --profile             # also a torch.profiler table of hfgpt's best variant
    python bench/train_throughput.py --no-bf16             # fp32 rows only
    python bench/train_throughput.py --quick               # smoke test: tiny sizes, 2 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_key, "1")

VARIANTS = ("hfgpt-sdpa", "hfgpt-eager", "gpt2-sdpa", "gpt2-eager")
BF16_VARIANTS = ("hfgpt-sdpa-bf16", "gpt2-sdpa-bf16")


def build_models(args, variants=VARIANTS) -> dict:
    """The requested variants, all with the same weights (GPT-2 built first, seeded; hfgpt converted from it)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from hfgpt.convert import from_hf_gpt2

    def gpt2_config():
        return GPT2Config(
            vocab_size=args.vocab_size, n_positions=args.context, n_embd=args.n_embd, n_layer=args.n_layer,
            n_head=args.n_head, resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
            bos_token_id=0, eos_token_id=0, pad_token_id=0,
        )  # fmt: skip

    torch.manual_seed(0)
    reference = GPT2LMHeadModel(gpt2_config())
    models = {}
    for name in variants:
        family, impl = name.split("-")[:2]
        if family == "gpt2":
            model = GPT2LMHeadModel(gpt2_config())
            model.load_state_dict(reference.state_dict())
            model.set_attn_implementation(impl)
        else:
            model = from_hf_gpt2(reference)  # a fresh config per model: the attention choice is per config
            model.set_attn_implementation(impl)
            model.skip_logits_in_training = args.fused_loss  # the training step needs only the loss
        models[name] = model.train()
    return models


def make_batch(args):
    import torch

    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, args.vocab_size, (args.batch_size, args.context), generator=generator)


def markov_batch(args, step: int):
    """Batch ``step`` of a fixed random Markov chain: each token id has 4 possible successors (a learnable stream)."""
    import torch

    table = torch.randint(0, args.vocab_size, (args.vocab_size, 4), generator=torch.Generator().manual_seed(99))
    generator = torch.Generator().manual_seed(10_000 + step)
    tokens = [torch.randint(0, args.vocab_size, (args.batch_size,), generator=generator)]
    choices = torch.randint(0, 4, (args.batch_size, args.context - 1), generator=generator)
    for position in range(args.context - 1):
        tokens.append(table[tokens[-1], choices[:, position]])
    return torch.stack(tokens, dim=1)


def make_step(model, batch, args, bf16: bool = False, lr: float = 1e-4, warmup_steps: int = 0,
              max_grad_norm: float | None = None):
    """One training step; ``batch`` is a tensor or a function of the step number. ``warmup_steps``: a linear warm-up
    of the learning rate; ``max_grad_norm``: gradient clipping (as the Trainer's defaults, for the loss comparison)."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, fused=args.fused_adamw)
    warmup = None  # the timed steps keep a constant learning rate
    if warmup_steps:
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warmup_steps))
    steps_done = [0]

    def step() -> float:
        ids = batch(steps_done[0]) if callable(batch) else batch
        steps_done[0] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if warmup is not None:
            warmup.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def matmul_flops(size: int, repeats: int = 5, dtype=None) -> float:
    """FLOP/s of one large square ``torch.mm`` (fp32, or ``dtype``; best of ``repeats``): this machine's practical
    ceiling."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def bf16_support() -> str:
    import torch

    features = [name for name, present in (("AVX512-BF16", torch.cpu._is_avx512_bf16_supported()),
                                           ("AMX", torch.cpu._is_amx_tile_supported())) if present]
    return ", ".join(features) + " on this CPU" if features else "no native bf16 on this CPU: emulated"


def memory_child(args) -> None:
    """Run in a fresh process: build one variant, train ``--memory-steps`` steps, print the peak RSS figures."""
    import torch

    from peak_memory import reset_peak, status_mib, trim

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = build_models(args, [args.memory_child])[args.memory_child]
    batch = make_batch(args)
    step = make_step(model, batch, args, bf16=args.memory_child.endswith("-bf16"))
    trim()
    if not reset_peak():
        print(json.dumps(None))
        return
    before = status_mib("VmRSS")
    for _ in range(args.memory_steps):
        step()
    print(json.dumps({"before_mib": before, "peak_mib": status_mib("VmHWM")}))


def measure_memory(args, variant: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", variant, *args.forward_argv]
    from peak_memory import MALLOC_ENV

    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=dict(os.environ, **MALLOC_ENV))
    if done.returncode != 0:
        raise RuntimeError(f"memory subprocess for {variant} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def loss_after_steps(args, bf16: bool) -> float:
    """hfgpt sdpa trained ``--loss-steps`` steps on the Markov-chain batches (lr 1e-3 after a 20-step linear warm-up,
    gradients clipped to norm 1 as the recipes do; same seed and weights in fp32 and bf16): the mean loss of the last
    10 % of the steps (at least 1). Without warm-up and clipping the run sits on a plateau near ln(vocab) for a
    number of steps that rounding differences shift (chaotically), and the loss at step 200 then measures when it
    left the plateau, not the precision."""
    model = build_models(args, ["hfgpt-sdpa"])["hfgpt-sdpa"]
    step = make_step(model, lambda i: markov_batch(args, i), args, bf16=bf16, lr=1e-3, warmup_steps=20,
                     max_grad_norm=1.0)
    losses = [step() for _ in range(args.loss_steps)]
    tail = losses[-max(1, args.loss_steps // 10):]
    return sum(tail) / len(tail)


def profile(model, batch, args, bf16: bool = False, rows: int = 25) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    step = make_step(model, batch, args, bf16=bf16)
    step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.0, help="all three dropouts, both models (default 0.0)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the median is reported")
    parser.add_argument("--steps", type=int, default=3, help="training steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant before the rounds")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-fused-adamw", dest="fused_adamw", action="store_false",
                        help="use AdamW's for-loop implementation (both models) instead of the fused CPU kernel")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--no-fused-loss", dest="fused_loss", action="store_false",
                        help="hfgpt computes its logits, then the loss (as a plain model(**batch)), not the fused loss")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="skip the bf16 rows and the loss check")
    parser.add_argument("--loss-steps", type=int, default=200, help="steps of the fp32 vs bf16 loss comparison "
                        "(0: skip it)")
    parser.add_argument("--profile", action="store_true",
                        help="print torch.profiler tables of hfgpt's best fp32 variant (and of hfgpt bf16)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 layers, 64 wide, 2 rounds of 1 step")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_layer, args.n_embd, args.n_head, args.vocab_size = 2, 64, 2, 512
        args.context, args.batch_size = min(args.context, 64), min(args.batch_size, 4)
        args.rounds, args.steps, args.warmup, args.matmul_size, args.memory_steps = 2, 1, 1, 512, 1
        args.loss_steps = min(args.loss_steps, 3)
    # what the memory subprocesses get: the sizes, not the --quick switch (already applied above)
    args.forward_argv = [
        f"--n-layer={args.n_layer}", f"--n-embd={args.n_embd}", f"--n-head={args.n_head}",
        f"--vocab-size={args.vocab_size}", f"--context={args.context}", f"--batch-size={args.batch_size}",
        f"--dropout={args.dropout}", f"--threads={args.threads}", f"--memory-steps={args.memory_steps}",
    ] + ([] if args.fused_adamw else ["--no-fused-adamw"]) + ([] if args.fused_loss else ["--no-fused-loss"])
    if args.memory_child:
        memory_child(args)
        return 0

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    models = build_models(args, VARIANTS + (BF16_VARIANTS if args.bf16 else ()))
    batch = make_batch(args)
    steps = {name: make_step(model, batch, args, bf16=name.endswith("-bf16")) for name, model in models.items()}
    tokens_per_step = args.batch_size * args.context

    first_losses = {name: step() for name, step in steps.items()}  # same weights, same data: same loss
    for _ in range(args.warmup - 1):
        for step in steps.values():
            step()
    seconds = {name: [] for name in models}
    ceiling, ceiling_bf16 = [], []
    for _ in range(args.rounds):
        for name, step in steps.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[name].append((time.perf_counter() - t) / args.steps)
        ceiling.append(matmul_flops(args.matmul_size))
        if args.bf16:
            ceiling_bf16.append(matmul_flops(args.matmul_size, dtype=torch.bfloat16))

    med = statistics.median
    tokens_per_s = {name: tokens_per_step / med(s) for name, s in seconds.items()}
    peak = med(ceiling)
    from flops import flops_per_token

    n_params = sum(p.numel() for p in models["hfgpt-sdpa"].parameters()) - args.context * args.n_embd  # no pos_emb
    fpt = flops_per_token(n_params, args.n_layer, args.n_embd, args.context)
    measured = [name for name in models if not (args.quick and name.endswith("-bf16"))]  # --quick: fp32 only
    memory = {name: measure_memory(args, name) for name in measured} if args.memory else {}
    memory = {name: figures for name, figures in memory.items() if figures}  # None: peak mark not resettable
    final_losses = {}
    if args.bf16 and args.loss_steps > 0:
        final_losses = {"fp32": loss_after_steps(args, False), "bf16": loss_after_steps(args, True)}

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, fp32" + (f" and bf16 autocast ({bf16_support()})" if args.bf16 else ""))
    print(f"model: {args.n_layer} layers, {args.n_embd} wide, {args.n_head} heads, vocab {args.vocab_size}, "
          f"context {args.context}, batch {args.batch_size}, dropout {args.dropout}; "
          f"{sum(p.numel() for p in models['hfgpt-sdpa'].parameters()):,} parameters; "
          f"AdamW {'fused' if args.fused_adamw else 'for-loop'}; hfgpt loss "
          f"{'fused linear + loss' if args.fused_loss else 'logits + chunked loss'}")
    print(f"rounds: {args.rounds} x {args.steps} steps per variant, interleaved, median; "
          f"{fpt / 1e6:.1f} MFLOP per token (6N + 12LHQT)")
    print(f"matmul ceiling: {args.matmul_size}x{args.matmul_size} fp32 torch.mm, {peak / 1e9:.1f} GFLOP/s (median)")
    if args.bf16:
        peak_bf16 = med(ceiling_bf16)
        print(f"matmul ceiling bf16: {args.matmul_size}x{args.matmul_size} bf16 torch.mm, "
              f"{peak_bf16 / 1e9:.1f} GFLOP/s (median), {peak_bf16 / peak:.2f}x fp32")
    print("first-step losses (same weights and data): "
          + ", ".join(f"{name} {loss:.5f}" for name, loss in first_losses.items()))
    print(f"\n{'variant':16}{'tokens/s':>10}{'ms/step':>10}{'GFLOP/s':>10}{'% of mm':>9}{'peak MiB':>10}"
          f"{'+train MiB':>11}")
    for name in models:
        flops = tokens_per_s[name] * fpt
        mem = memory.get(name)
        mem_cols = f"{mem['peak_mib']:10.0f}{mem['peak_mib'] - mem['before_mib']:11.0f}" if mem else ""
        ceiling_of = peak_bf16 if name.endswith("-bf16") else peak  # % of its own precision's ceiling
        print(f"{name:16}{tokens_per_s[name]:10,.0f}{1000 * med(seconds[name]):10.1f}{flops / 1e9:10.1f}"
              f"{100 * flops / ceiling_of:8.1f}%{mem_cols}")

    ours = max(("hfgpt-sdpa", "hfgpt-eager"), key=tokens_per_s.get)
    theirs = max(("gpt2-sdpa", "gpt2-eager"), key=tokens_per_s.get)
    ratio = tokens_per_s[ours] / tokens_per_s[theirs]
    fraction = tokens_per_s[ours] * fpt / peak
    print(f"\nratio: hfgpt {ours} / GPT2LMHeadModel {theirs} = {ratio:.2f}x tokens/s (target >= 1.10x)")
    print(f"ratio same attention: sdpa {tokens_per_s['hfgpt-sdpa'] / tokens_per_s['gpt2-sdpa']:.2f}x, "
          f"eager {tokens_per_s['hfgpt-eager'] / tokens_per_s['gpt2-eager']:.2f}x")
    print(f"matmul ceiling fraction: hfgpt {100 * fraction:.1f}% (target >= 70%), "
          f"GPT2LMHeadModel {100 * tokens_per_s[theirs] * fpt / peak:.1f}%")
    if args.bf16:
        bf16_ours, bf16_theirs = tokens_per_s["hfgpt-sdpa-bf16"], tokens_per_s["gpt2-sdpa-bf16"]
        print(f"ratio bf16: hfgpt-sdpa-bf16 / hfgpt fp32 {ours} = {bf16_ours / tokens_per_s[ours]:.2f}x tokens/s "
              f"(target >= 1.8x); hfgpt-sdpa-bf16 / GPT2LMHeadModel gpt2-sdpa-bf16 = {bf16_ours / bf16_theirs:.2f}x "
              f"(target >= 1.2x)")
        print(f"bf16 ceiling fraction: hfgpt {100 * bf16_ours * fpt / peak_bf16:.1f}% (target >= 70%), "
              f"GPT2LMHeadModel {100 * bf16_theirs * fpt / peak_bf16:.1f}%")
    if final_losses:
        difference = (final_losses["bf16"] - final_losses["fp32"]) / final_losses["fp32"]
        print(f"loss after {args.loss_steps} steps (hfgpt sdpa, same seed, Markov-chain batches, lr 1e-3, 20 warm-up "
              f"steps, clipping 1.0, mean of the "
              f"last {max(1, args.loss_steps // 10)}): fp32 {final_losses['fp32']:.4f}, bf16 {final_losses['bf16']:.4f}"
              f", difference {100 * difference:+.2f}% (target within 1%)")
    if args.profile:
        profile(models[ours], batch, args)
        if args.bf16:
            profile(models["hfgpt-sdpa-bf16"], batch, args, bf16=True)
    fp32_losses = [first_losses[name] for name in VARIANTS]
    losses_agree = max(fp32_losses) - min(fp32_losses) < 1e-3
    if not losses_agree:
        print("ERROR: the variants' first-step losses differ: they do not compute the same model")
    bf16_close = all(abs(first_losses[name] - first_losses["hfgpt-sdpa"]) < 0.05 for name in models
                     if name.endswith("-bf16"))
    if not bf16_close:
        print("ERROR: a bf16 variant's first-step loss is not within 0.05 of fp32's")
    return 0 if losses_agree and bf16_close else 1


if __name__ == "__main__":
    sys.exit(main())
