"""Smoke tests of the benchmark scripts: each runs in a subprocess with ``--quick`` and must exit 0 and print its
key lines. They check that the scripts work, not the figures (the test machines are shared and noisy).

All scripts are started at once, when the first test of this file runs, and each test waits for its own: the
runs are single-threaded (``OMP_NUM_THREADS=1``: on a 2-core machine shared with other jobs, OpenMP's spinning
threads make tiny ops hundreds of times slower) and together take ~30-40 s on 2 cores instead of ~70 s in a row.
``bench/demo_load.py --quick`` is covered by tests/test_demo.py.
"""

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

BENCH = os.path.join(REPO_ROOT, "bench")
TIMEOUT_S = 300

# script -> (arguments, lines its output must contain); "{out}" is this run's temporary folder
SCRIPTS = {
    "train_throughput": (
        ["--quick", "--profile"],
        ["ratio: hfgpt", "first-step losses", "+train MiB", "matmul ceiling bf16:", "ratio bf16: hfgpt-sdpa-bf16",
         "bf16 ceiling fraction:", "loss after 3 steps", "Self CPU time total"],
    ),  # fmt: skip
    "generate": (
        ["--quick", "--json", "{out}/generate.json", "--profile"],
        ["ratio batch 1: hfgpt-cached / gpt2-cached", "hfgpt-cached / hfgpt-uncached", "ratio batch 8",
         "tokens identical across hfgpt-cached, gpt2-cached, hfgpt-uncached", "transformers",
         "memory bandwidth (dst.copy_(src) of 32 MiB, read + write bytes counted)", "weights read per token",
         "fraction of the memory limit, batch 1: hfgpt fp32", "fraction of the memory limit, batch 1: gpt2 bf16",
         "ratio batch 1: bf16 / fp32 tokens/s = hfgpt", "bf16 greedy tokens, batch 1: hfgpt-cached-bf16 and",
         "static cache + compile: not measured (--quick)", "profile, hfgpt, batch 1",
         "profile, hfgpt-bf16, batch 1", "they stream the weights at"],
    ),  # fmt: skip
    "scaling": (
        ["--quick", "--out-dir", "{out}/scaling"],
        ["| size | params | context | attention |", "sdpa/eager tokens/s", "activations grow as context^",
         "wrote"],
    ),  # fmt: skip
    "data_pipeline": (["--quick"], ["speed-up, whole step", "speed-up, windowing stage"]),
    "time_to_loss": (
        ["--quick", "--json", "{out}/time_to_loss.json"],
        ["target: eval_loss <= 5.2 nats/token", "time to target: ", "final: eval_loss", "bits/byte",
         "baselines, same validation split: unigram", "xz -9e"],
    ),  # fmt: skip
    # written by another change; skipped while it does not exist. --no-compile: inductor on CPU needs a compiler.
    "gpu_train": (["--device", "cpu", "--quick", "--no-compile"], ["ratio: hfgpt / GPT2LMHeadModel", "(OK)"]),
}


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory):
    """Start every existing bench script (in parallel); {name: (process, stdout path, stderr path, out folder)}."""
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(TOKENIZERS_PARALLELISM="false", MPLBACKEND="Agg", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")])))  # fmt: skip
    runs = {}
    for name, (arguments, _) in SCRIPTS.items():
        script = os.path.join(BENCH, f"{name}.py")
        if not os.path.exists(script):
            continue
        stdout, stderr = out / f"{name}.out", out / f"{name}.err"
        with open(stdout, "w") as o, open(stderr, "w") as e:
            command = [sys.executable, script, *(a.format(out=out) for a in arguments)]
            runs[name] = (subprocess.Popen(command, stdout=o, stderr=e, env=env, cwd=REPO_ROOT), stdout, stderr, out)
    yield runs
    for process, *_ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_bench_quick(bench_runs, name):
    if name not in bench_runs:
        pytest.skip(f"bench/{name}.py does not exist")
    process, stdout_path, stderr_path, out = bench_runs[name]
    try:
        returncode = process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"bench/{name}.py --quick ran over {TIMEOUT_S} s")
    stdout, stderr = stdout_path.read_text(), stderr_path.read_text()
    assert returncode == 0, f"exit {returncode}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert "ERROR" not in stdout, stdout[-3000:]
    for line in SCRIPTS[name][1]:
        assert line in stdout, f"{line!r} missing from the output of bench/{name}.py:\n{stdout[-3000:]}"

    if name == "generate":
        import json

        result = json.loads((out / "generate.json").read_text())
        assert result["tokens_identical"] is True and result["max_new_tokens"] == 8
        assert set(result["tokens_per_s"]) == {"hfgpt-cached", "gpt2-cached", "hfgpt-uncached", "hfgpt-cached-bf16",
                                               "gpt2-cached-bf16"}  # fmt: skip
        assert result["memory_bandwidth_gb_s"]["copy_best"] > 0
        bytes_per_token = result["weight_bytes_per_token"]
        assert bytes_per_token["fp32"] == 2 * bytes_per_token["bf16"] > 0
        fractions = result["fraction_of_memory_limit"]
        assert set(fractions) == {"hfgpt-cached", "gpt2-cached", "hfgpt-cached-bf16", "gpt2-cached-bf16"}
        assert all(0 < f for by_batch in fractions.values() for f in by_batch.values())
        assert set(result["bf16_over_fp32"]["1"]) == {"hfgpt", "gpt2"}
        assert isinstance(result["bf16_tokens_identical"]["1"], bool)
    if name == "time_to_loss":
        import json
        import math

        result = json.loads((out / "time_to_loss.json").read_text())
        # the quick run passes its target at step 20 of 30, and the callback stops it there
        assert result["reached"] is True and result["time_to_target"]["step"] == result["steps"] == 20, result
        assert [e["step"] for e in result["evaluations"]] == [10, 20]
        final = result["final"]
        for key in ("eval_loss", "eval_bits_per_byte", "eval_unigram_bits_per_byte", "eval_xz_bits_per_byte"):
            assert math.isfinite(final[key]) and final[key] > 0, (key, final)
        assert final["eval_bits_per_byte"] == pytest.approx(result["time_to_target"]["eval_bits_per_byte"])
    if name == "scaling":
        markdown = (out / "scaling" / "scaling.md").read_text()
        rows = [line for line in markdown.splitlines() if line.startswith("| tiny |")]
        assert len(rows) == 4 and sum("| eager |" in r for r in rows) == 2 and sum("| sdpa |" in r for r in rows) == 2
        assert (out / "scaling" / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
