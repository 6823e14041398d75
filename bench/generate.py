"""Benchmark: greedy ``generate()`` tokens/s of hfgpt's GPTScratchForCausalLM with its KV cache.

The book's protocol (chapter 4/5 ``generate_text_simple``): the prompt "Hello, I am" (GPT-2 BPE ids
[15496, 11, 314, 716]), greedy decoding, 200 new tokens, batch 1; also batch 8 (the prompt repeated). Every variant
produces exactly ``--max-new-tokens`` tokens (``min_new_tokens = max_new_tokens``: the end-of-text token cannot stop
a row early). The variants, all with the same random (seeded) weights, eval mode, fp32 unless named ``-bf16``:

* ``hfgpt-cached``: GPTScratchForCausalLM, ``use_cache=True`` (a transformers ``DynamicCache``);
* ``gpt2-cached``: transformers' ``GPT2LMHeadModel`` with the same weights (``hfgpt.convert.to_hf_gpt2``), cached;
* ``hfgpt-uncached``: GPTScratchForCausalLM with ``use_cache=False``: every step re-reads the whole sequence, as the
  book's ``generate_text_simple`` does;
* ``hfgpt-cached-bf16`` and ``gpt2-cached-bf16``: the two cached models with their weights cast to bf16
  (``model.to(torch.bfloat16)``), at ``--bf16-batch-sizes`` (default batch 1);
* ``hfgpt-compiled`` (and ``hfgpt-compiled-bf16``): hfgpt with transformers' compiled decoding, a static KV cache
  (``cache_implementation="static"``) and ``compile_config=CompileConfig(fullgraph=True)``; transformers compiles
  the decoding step only on accelerators unless the config's ``_compile_all_devices`` is set, as here. At
  ``--compile-batch-sizes`` (default batch 1; not in ``--quick``; it needs a C++ compiler for inductor). Its warm-up
  is a full-length call (the compile; a different cache length would compile again), and its tokens are compared
  with hfgpt-cached's and reported, not an error (fused kernels may round differently).

Tokens/s = new tokens x batch / wall seconds of one ``generate()`` call (prefill included). The cached variants run
``--rounds`` interleaved rounds (a, b, a, b, ...), the uncached one only in the first ``--uncached-rounds`` rounds
(it is ~6x slower at batch 1 and far slower at batch 8); the median per variant and batch size is reported. The
generated token ids must be identical across the three fp32 variants at the top (greedy decoding of one model); if
they are not, an ERROR line names the first differing position and the top-2 logit margin there (a tiny margin
means a float tie, a large one a real bug), and the exit code is 1. The bf16 pair is compared with each other the
same way, but a difference is reported, not an error: bf16 rounds differently in the two models' kernels, so a
near-tie can flip.

Decoding at the memory limit: at batch 1 each new token reads every weight once, so the machine's memory bandwidth
bounds it. The bandwidth is measured in the same run (before and after the timed rounds): ``dst.copy_(src)`` of
``--bandwidth-mib`` MiB, counting read + write bytes (2 x size / seconds), best of the copies; a read-only figure
(``src.sum()``) is printed beside it. Bytes read per token = every parameter except the token and position embedding
tables (one row of each is read: negligible), the tied output matrix counted once (hfgpt reads its decoding copy of
the same size), at the weights' dtype; the KV cache read is not counted (its average per token is printed). The limit
is bandwidth / bytes per token (x batch), and each cached variant's tokens/s is printed as a fraction of it.

    python bench/generate.py                                # 124M, 200 new tokens, batch 1 and 8 (~11 min, 2 cores)
    python bench/generate.py --batch-sizes 1 --uncached-rounds 3 --json results.json
    python bench/generate.py --uncached-batch-sizes 1      # skip the slowest part (uncached at batch 8)
    python bench/generate.py --compile-batch-sizes          # without the static cache + compile runs
    python bench/generate.py --batch-sizes 1 --uncached-rounds 0 --compile-batch-sizes --profile  # + profiler tables
    python bench/generate.py --quick                        # smoke test: tiny preset, 8 new tokens, 1 round
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_key, "1")

PROMPT = [15496, 11, 314, 716]  # "Hello, I am" in GPT-2 BPE
VARIANTS = ("hfgpt-cached", "gpt2-cached", "hfgpt-uncached")  # fp32, compared token for token
BF16_VARIANTS = ("hfgpt-cached-bf16", "gpt2-cached-bf16")
COMPILED_VARIANTS = ("hfgpt-compiled", "hfgpt-compiled-bf16")


def build_models(args) -> dict:
    """hfgpt (seeded random init) and GPT2LMHeadModel converted from it; one model object serves both hfgpt
    variants (``use_cache`` is a generate() argument). With bf16 variants, also bf16 copies of both."""
    import copy

    import torch

    import hfgpt
    from hfgpt.convert import to_hf_gpt2

    torch.manual_seed(args.seed)
    config = hfgpt.GPTScratchConfig.from_preset(args.preset, drop_rate=0.0)
    ours = hfgpt.GPTScratchForCausalLM(config).eval()
    ours.set_attn_implementation(args.attn)
    theirs = to_hf_gpt2(ours).eval()
    theirs.set_attn_implementation(args.attn)
    models = {"hfgpt": ours, "gpt2": theirs}
    if args.bf16_batch_sizes:
        models.update({f"{k}-bf16": copy.deepcopy(m).to(torch.bfloat16) for k, m in list(models.items())})
    return models


def memory_bandwidth(mib: int, repeats: int) -> dict:
    """GB/s (1e9 bytes) of ``dst.copy_(src)`` on ``mib`` MiB, counting read + write (best and median of ``repeats``),
    and of ``src.sum()`` (read only, best). Both tensors are written once first, so no page fault is timed."""
    import torch

    src = torch.ones(mib * 2**20 // 4)
    dst = torch.zeros_like(src)
    nbytes = src.numel() * src.element_size()
    copies, reads = [], []
    for _ in range(repeats + 1):  # the first of each is a warm-up
        start = time.perf_counter()
        dst.copy_(src)
        copies.append(time.perf_counter() - start)
        start = time.perf_counter()
        src.sum()
        reads.append(time.perf_counter() - start)
    copies, reads = copies[1:], reads[1:]
    return {"copy_best": 2 * nbytes / min(copies) / 1e9, "copy_median": 2 * nbytes / statistics.median(copies) / 1e9,
            "read_best": nbytes / min(reads) / 1e9, "mib": mib, "repeats": repeats}  # fmt: skip


def weight_bytes_per_token(model) -> int:
    """Bytes of the weights one decoding step reads: every parameter except the token and position embedding tables
    (one row each is read), with the output matrix once (tied to the token embedding or not)."""
    params = {id(p): p for p in model.parameters()}
    params.pop(id(model.get_input_embeddings().weight))
    params.pop(id(model.model.embeddings.pos_emb.weight))
    head = model.get_output_embeddings().weight
    params[id(head)] = head
    return sum(p.numel() * p.element_size() for p in params.values())


def generation_config(model, new_tokens: int, mode: str):
    """Greedy, exactly ``new_tokens``; ``mode``: "cached" (DynamicCache), "uncached", or "compiled" (static cache +
    torch.compile of the decoding step)."""
    from transformers import CompileConfig, GenerationConfig

    c = model.config
    compiled = {}
    if mode == "compiled":
        compile_config = CompileConfig(fullgraph=True)
        compile_config._compile_all_devices = True  # transformers' switch to compile on CPU too
        compiled = dict(cache_implementation="static", compile_config=compile_config)
    return GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
        use_cache=mode != "uncached", eos_token_id=c.eos_token_id,
        pad_token_id=c.pad_token_id if c.pad_token_id is not None else c.eos_token_id, bos_token_id=c.bos_token_id,
        **compiled,
    )  # fmt: skip


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU ($CXX, else the first of g++, clang++, c++ on the PATH)."""
    import shutil

    return os.environ.get("CXX") or next(filter(None, map(shutil.which, ("g++", "clang++", "c++"))), None)


def run_generate(model, input_ids, gen_config):
    """One greedy generate() call: (seconds, output ids)."""
    import torch

    attention_mask = torch.ones_like(input_ids)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(input_ids, attention_mask=attention_mask, generation_config=gen_config)
        seconds = time.perf_counter() - start
    return seconds, out


MATMUL_OPS = ("aten::addmm", "aten::mm", "aten::mv", "aten::addmv", "aten::addmv_", "aten::bmm", "aten::baddbmm")


def profile_decoding(model, input_ids, new_tokens: int, weight_bytes: int, label: str, rows: int = 15) -> None:
    """A torch.profiler table of one cached greedy generate() of ``new_tokens`` tokens, and the rate at which the
    matrix products stream the weights (weight bytes per token / their self time per token)."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    gen_config = generation_config(model, new_tokens, "cached")
    run_generate(model, input_ids, gen_config)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds, _ = run_generate(model, input_ids, gen_config)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    per_token = matmul / 1e6 / new_tokens
    print(f"\nprofile, {label}, batch {input_ids.shape[0]}, {new_tokens} new tokens "
          f"({new_tokens / seconds:.1f} tokens/s under the profiler): matrix products ({', '.join(MATMUL_OPS)}) "
          f"{100 * matmul / total:.0f}% of the self CPU time, {1000 * per_token:.1f} ms per token: they stream the "
          f"weights at {weight_bytes / per_token / 1e9:.1f} GB/s")
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows))


def first_difference(model, a, b, prompt_len: int) -> str:
    """Where two outputs first differ, and the reference model's top-2 logit margin at that step (uncached)."""
    import torch

    diff = (a != b).nonzero()
    row, col = (int(v) for v in diff[0])
    with torch.inference_mode():
        logits = model(a[row : row + 1, :col], use_cache=False).logits[0, -1]
    top = torch.topk(logits.float(), 2)
    return (f"row {row}, new token {col - prompt_len} ({int(a[row, col])} vs {int(b[row, col])}), "
            f"top-2 logit margin there {float(top.values[0] - top.values[1]):.3g}")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="124M", help="hfgpt size preset (default 124M: the book's GPT-2 small)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the cached variants (median)")
    parser.add_argument("--uncached-rounds", type=int, default=1,
                        help="rounds that also run hfgpt with use_cache=False (0: skip it)")  # fmt: skip
    parser.add_argument("--uncached-batch-sizes", type=int, nargs="+",
                        help="batch sizes of the uncached variant (default: all of --batch-sizes; at 124M batch 8 "
                             "it is the longest part of the run, ~4 min on 2 cores)")  # fmt: skip
    parser.add_argument("--bf16-batch-sizes", type=int, nargs="*", default=[1],
                        help="batch sizes of the bf16-weight variants (default 1; none: skip them)")  # fmt: skip
    parser.add_argument("--compile-batch-sizes", type=int, nargs="*", default=[1],
                        help="batch sizes of the static cache + torch.compile variants (default 1; none: skip; "
                             "bf16 only where --bf16-batch-sizes has the batch size too)")  # fmt: skip
    parser.add_argument("--bandwidth-mib", type=int, default=1024,
                        help="size of the tensor copied to measure the memory bandwidth (default 1 GiB)")  # fmt: skip
    parser.add_argument("--bandwidth-repeats", type=int, default=5, help="timed copies, before and after the rounds")
    parser.add_argument("--warmup-tokens", type=int, default=8, help="one untimed generate() of this length each")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="attention of both models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--profile", action="store_true", help="also torch.profiler tables of hfgpt's cached decoding "
                        "at batch 1 (fp32, and bf16 with bf16 variants) and the rate its matrix products reach")
    parser.add_argument("--profile-tokens", type=int, default=32, help="new tokens of the profiled generate()")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny preset, 8 new tokens, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.max_new_tokens, args.rounds, args.warmup_tokens = "tiny", 8, 1, 2
        args.bandwidth_mib, args.bandwidth_repeats, args.compile_batch_sizes = 32, 3, []
    compile_skipped = "--quick" if args.quick else None
    if args.compile_batch_sizes and cxx_compiler() is None:
        args.compile_batch_sizes, compile_skipped = [], "no C++ compiler for inductor"
    args.uncached_rounds = min(args.uncached_rounds, args.rounds)
    if args.uncached_batch_sizes is None:
        args.uncached_batch_sizes = list(args.batch_sizes)

    import torch
    import transformers

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)

    models = build_models(args)
    n_params = sum(p.numel() for p in models["hfgpt"].parameters())
    batch_sizes = sorted(set(args.batch_sizes) | set(args.bf16_batch_sizes) | set(args.compile_batch_sizes))

    def runs(variant, batch) -> bool:
        if variant in COMPILED_VARIANTS:
            bf16_ok = not variant.endswith("bf16") or batch in args.bf16_batch_sizes
            return batch in args.compile_batch_sizes and bf16_ok
        if variant in BF16_VARIANTS:
            return batch in args.bf16_batch_sizes
        if variant == "hfgpt-uncached":
            return args.uncached_rounds > 0 and batch in args.uncached_batch_sizes and batch in args.batch_sizes
        return batch in args.batch_sizes

    variants = [v for v in VARIANTS + BF16_VARIANTS + COMPILED_VARIANTS if any(runs(v, b) for b in batch_sizes)]
    fp32_variants = [v for v in VARIANTS if v in variants]  # compared token for token (exit 1 if they differ)

    def setup(variant, batch, new_tokens):
        family, mode, *dtype = variant.split("-")
        model = models["-".join([family, *dtype])]
        return model, generation_config(model, new_tokens, mode)

    bandwidth_runs = [memory_bandwidth(args.bandwidth_mib, args.bandwidth_repeats)]
    prompts = {b: torch.tensor([PROMPT] * b) for b in batch_sizes}
    compile_seconds = {}
    for batch in batch_sizes:  # warm-up: first-call costs (allocations, thread pools) stay out of the timings
        for variant in (v for v in variants if runs(v, batch)):
            compiled = variant in COMPILED_VARIANTS  # compiles for this cache length: warm up at the full length
            model, gen_config = setup(variant, batch, args.max_new_tokens if compiled else args.warmup_tokens)
            elapsed, _ = run_generate(model, prompts[batch], gen_config)
            if compiled:
                compile_seconds[(variant, batch)] = elapsed

    seconds = {(v, b): [] for v in variants for b in batch_sizes if runs(v, b)}
    outputs = {}
    started = time.perf_counter()
    for round_index in range(args.rounds):
        for batch in batch_sizes:
            for variant in (v for v in variants if runs(v, batch)):
                if variant == "hfgpt-uncached" and round_index >= args.uncached_rounds:
                    continue
                model, gen_config = setup(variant, batch, args.max_new_tokens)
                elapsed, out = run_generate(model, prompts[batch], gen_config)
                seconds[(variant, batch)].append(elapsed)
                outputs.setdefault((variant, batch), out)
    total = time.perf_counter() - started
    bandwidth_runs.append(memory_bandwidth(args.bandwidth_mib, args.bandwidth_repeats))
    bandwidth = max(bandwidth_runs, key=lambda r: r["copy_best"])

    tokens_per_s = {key: args.max_new_tokens * key[1] / statistics.median(s) for key, s in seconds.items()}
    bytes_per_token = {"fp32": weight_bytes_per_token(models["hfgpt"])}
    if args.bf16_batch_sizes:
        bytes_per_token["bf16"] = weight_bytes_per_token(models["hfgpt-bf16"])
    config = models["hfgpt"].config  # the KV cache a step reads, averaged over the new tokens (not counted)
    kv_bytes_fp32 = 2 * config.n_layer * config.n_embd * 4 * (len(PROMPT) + (args.max_new_tokens - 1) / 2)

    print(f"date {datetime.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, "
          f"Python {platform.python_version()}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, fp32 weights (the -bf16 rows: model.to(torch.bfloat16))")
    print(f"model: hfgpt preset {args.preset} ({n_params:,} parameters, random init seed {args.seed}), "
          f"attention {args.attn}; GPT2LMHeadModel with the same weights")
    print(f"greedy, prompt {PROMPT}, {args.max_new_tokens} new tokens (min_new_tokens = max_new_tokens); "
          f"rounds: cached {args.rounds}, uncached {args.uncached_rounds}, interleaved, median; "
          f"timed part {total:.0f} s")
    print()
    header = f"{'variant':18}" + "".join(f"{f'batch {b} tok/s':>16}" for b in batch_sizes)
    print(header)
    for variant in variants:
        print(f"{variant:18}" + "".join(f"{tokens_per_s[(variant, b)]:16,.1f}" if runs(variant, b) else f"{'-':>16}"
                                        for b in batch_sizes))
    print()

    print(f"memory bandwidth (dst.copy_(src) of {args.bandwidth_mib} MiB, read + write bytes counted): "
          f"best {bandwidth['copy_best']:.1f} GB/s, median {bandwidth['copy_median']:.1f} GB/s of "
          f"{args.bandwidth_repeats} copies (best before / after the rounds: "
          f"{' / '.join(format(r['copy_best'], '.1f') for r in bandwidth_runs)}); read only (src.sum()): best "
          f"{bandwidth['read_best']:.1f} GB/s")
    print("weights read per token: " + ", ".join(f"{n / 1e6:.1f} MB {d}" for d, n in bytes_per_token.items())
          + " (every parameter but the token and position embedding tables, the tied output matrix once; the KV "
          f"cache read, not counted, averages {kv_bytes_fp32 / 1e6:.1f} MB/token in fp32)")
    fractions = {}
    for variant in (v for v in variants if v != "hfgpt-uncached"):
        family, mode, *dtype = variant.split("-")
        dtype = dtype[0] if dtype else "fp32"
        label = f"{family} {dtype}" + (" static cache + compile" if mode == "compiled" else "")
        for batch in (b for b in batch_sizes if runs(variant, b)):
            limit = bandwidth["copy_best"] * 1e9 / bytes_per_token[dtype] * batch
            fraction = tokens_per_s[(variant, batch)] / limit
            fractions.setdefault(variant, {})[str(batch)] = fraction
            target = " (target >= 80%)" if batch == 1 else ""
            print(f"fraction of the memory limit, batch {batch}: {label} {100 * fraction:.0f}% "
                  f"({tokens_per_s[(variant, batch)]:,.1f} of {limit:,.1f} tok/s){target}")
    bf16_over_fp32 = {}
    for batch in args.bf16_batch_sizes:
        pairs = [(f, f"{f}-cached") for f in ("hfgpt", "gpt2") if (f"{f}-cached", batch) in tokens_per_s]
        bf16_over_fp32[str(batch)] = {f: tokens_per_s[(f"{v}-bf16", batch)] / tokens_per_s[(v, batch)]
                                      for f, v in pairs}  # fmt: skip
        if pairs:
            print(f"ratio batch {batch}: bf16 / fp32 tokens/s = "
                  + ", ".join(f"{f} {r:.2f}x" for f, r in bf16_over_fp32[str(batch)].items()) + " (target >= 1.7x)")

    ratios = {}
    for batch in args.batch_sizes:
        ours = tokens_per_s[("hfgpt-cached", batch)]
        vs_gpt2 = ours / tokens_per_s[("gpt2-cached", batch)]
        line = f"ratio batch {batch}: hfgpt-cached / gpt2-cached = {vs_gpt2:.2f}x (target >= 1.0x)"
        ratios[batch] = {"hfgpt_cached_over_gpt2_cached": vs_gpt2}
        if ("hfgpt-uncached", batch) in tokens_per_s:
            vs_uncached = ours / tokens_per_s[("hfgpt-uncached", batch)]
            line += f", hfgpt-cached / hfgpt-uncached = {vs_uncached:.2f}x (target >= 5x)"
            ratios[batch]["hfgpt_cached_over_hfgpt_uncached"] = vs_uncached
        print(line)

    ok = True
    for batch in args.batch_sizes:
        reference = outputs[("hfgpt-cached", batch)]
        expected_shape = (batch, len(PROMPT) + args.max_new_tokens)
        for variant in (v for v in fp32_variants if runs(v, batch)):
            out = outputs[(variant, batch)]
            if tuple(out.shape) != expected_shape:
                ok = False
                print(f"ERROR: {variant} batch {batch} returned shape {tuple(out.shape)}, expected {expected_shape}")
            elif not torch.equal(out, reference):
                ok = False
                where = first_difference(models["hfgpt"], reference, out, len(PROMPT))
                print(f"ERROR: {variant} batch {batch} generated different tokens than hfgpt-cached: {where}")
    if ok:
        print(f"tokens identical across {', '.join(fp32_variants)} at batch sizes "
              f"{', '.join(map(str, args.batch_sizes))}"
              + (f" (uncached at {', '.join(map(str, args.uncached_batch_sizes))})" if args.uncached_rounds else "")
              + f"; first new tokens (batch {args.batch_sizes[0]} row 0): "
              f"{outputs[('hfgpt-cached', args.batch_sizes[0])][0, len(PROMPT) : len(PROMPT) + 12].tolist()}")

    bf16_identical = {}  # reported, not an error: bf16 rounding in different kernels can flip a near-tie
    for batch in args.bf16_batch_sizes:
        ours, theirs = outputs[("hfgpt-cached-bf16", batch)], outputs[("gpt2-cached-bf16", batch)]
        bf16_identical[str(batch)] = same = tuple(ours.shape) == tuple(theirs.shape) and torch.equal(ours, theirs)
        where = "" if same else ": " + first_difference(models["hfgpt-bf16"], ours, theirs, len(PROMPT))
        line = f"bf16 greedy tokens, batch {batch}: hfgpt-cached-bf16 and gpt2-cached-bf16 " + (
            "identical" if same else f"differ{where}")
        if ("hfgpt-cached", batch) in outputs:
            fp32 = outputs[("hfgpt-cached", batch)][:, len(PROMPT) :]
            agree = (fp32 == ours[:, len(PROMPT) :]).cumprod(-1).sum(-1).min()
            line += f"; hfgpt bf16 follows hfgpt fp32 for the first {int(agree)} of {args.max_new_tokens} new tokens"
        print(line)

    compiled_over_cached, compiled_identical = {}, {}
    if compile_skipped:
        print(f"static cache + compile: not measured ({compile_skipped})")
    for variant, batch in ((v, b) for v in variants if v in COMPILED_VARIANTS for b in batch_sizes if runs(v, b)):
        dynamic = variant.replace("compiled", "cached")
        ratio = tokens_per_s[(variant, batch)] / tokens_per_s[(dynamic, batch)]
        out, reference = outputs[(variant, batch)], outputs[(dynamic, batch)]
        same = torch.equal(out, reference)
        compiled_over_cached.setdefault(variant, {})[str(batch)] = ratio
        compiled_identical.setdefault(variant, {})[str(batch)] = same
        model = models[variant.replace("-compiled", "")]
        where = "" if same else ": " + first_difference(model, reference, out, len(PROMPT))
        print(f"static cache + compile, batch {batch}: {variant} / {dynamic} = {ratio:.2f}x "
              f"(first call, compile included: {compile_seconds[(variant, batch)]:.0f} s); tokens "
              + ("identical to the dynamic cache's" if same else f"differ from the dynamic cache's{where}"))

    if args.profile:
        prompt, tokens = torch.tensor([PROMPT]), min(args.profile_tokens, args.max_new_tokens)
        for name in ("hfgpt", "hfgpt-bf16"):
            if name in models:
                profile_decoding(models[name], prompt, tokens, weight_bytes_per_token(models[name]), name)

    if args.json:
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "preset": args.preset, "parameters": n_params, "attn": args.attn, "prompt": PROMPT,
            "max_new_tokens": args.max_new_tokens, "rounds": args.rounds, "uncached_rounds": args.uncached_rounds,
            "tokens_per_s": {v: {str(b): tokens_per_s[(v, b)] for b in batch_sizes if runs(v, b)} for v in variants},
            "seconds": {v: {str(b): seconds[(v, b)] for b in batch_sizes if runs(v, b)} for v in variants},
            "ratios": {str(b): r for b, r in ratios.items()},
            "tokens_identical": ok,
            "memory_bandwidth_gb_s": bandwidth, "memory_bandwidth_runs": bandwidth_runs,
            "weight_bytes_per_token": bytes_per_token, "kv_cache_bytes_per_token_fp32": kv_bytes_fp32,
            "fraction_of_memory_limit": fractions, "bf16_over_fp32": bf16_over_fp32,
            "bf16_tokens_identical": bf16_identical,
            "compiled_over_cached": compiled_over_cached, "compiled_tokens_identical": compiled_identical,
            "compile_seconds": {f"{v} batch {b}": t for (v, b), t in compile_seconds.items()},
            "compile_skipped": compile_skipped,
        }  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
