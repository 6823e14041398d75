"""The pretraining recipe end to end: accelerate launch, 2-rank DDP on CPU, kill and resume, bad input.

Every run is tiny (2 layers, 32 wide, vocabulary 300, windows of 32 tokens, a 40 KB corpus from pydoc_data) and goes
through the real entry points: ``accelerate launch recipes/pretrain.py`` / ``python recipes/pretrain.py`` as
subprocesses, and ``recipes/pretrain.py``'s ``main`` in-process for the argument errors.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, free_port, pydoc_topics, save_tiny_checkpoint

RECIPE = os.path.join(REPO_ROOT, "recipes", "pretrain.py")
PROBE = os.path.join(REPO_ROOT, "tests", "ddp_probe.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN_TIMEOUT = 300  # seconds for any one subprocess: a hang fails the test instead of the CI job

TINY = [
    "--preset", "tiny",
    "--config_overrides", "n_layer=2,n_embd=32,n_head=2",
    "--vocab_size", "300",
    "--max_length", "32",
    "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "16",
    "--sample_max_new_tokens", "8",
    "--dataloader_num_workers", "0",
    "--report_to", "none",
    "--disable_tqdm", "true",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """~40 KB of English (CPython's pydoc topics), written once for the module."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[name] for name in sorted(topics))[:40_000]
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def subprocess_env(tmp_path) -> dict:
    """Offline, CPU only, and a private HF_HOME: no user accelerate config, no shared datasets cache."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_EVALUATE_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HOME=str(tmp_path / "hf_home"),
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
    )
    return env


def run(cmd, tmp_path, log_name):
    """Run to completion with a timeout; stdout+stderr go to a file (no pipe to fill up); returns (rc, output)."""
    log = tmp_path / log_name
    with open(log, "w") as out:
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(tmp_path), stdout=out,
                                  stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{cmd} ran past {RUN_TIMEOUT} s; output:\n{log.read_text()[-5000:]}")
    return proc.returncode, log.read_text()


def accelerate_launch(*flags) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", *flags]


def read_json(path):
    with open(path) as f:
        return json.load(f)


# ====================================================================================================================
# 1. accelerate launch, one process


def test_accelerate_launch_single_process(corpus, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import hfgpt

    out = tmp_path / "run"
    max_steps, batch, max_length = 6, 8, 32
    # No accelerate config exists (private HF_HOME): these four flags are what accelerate would otherwise warn
    # about and default (num_processes defaults to 0 there, which means the simple one-process launcher).
    cmd = accelerate_launch("--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
                            "--dynamo_backend", "no", RECIPE, *TINY, "--train_file", corpus, "--output_dir", str(out),
                            "--max_steps", str(max_steps), "--eval_steps", "3", "--save_steps", "3",
                            "--logging_steps", "2")
    rc, output = run(cmd, tmp_path, "launch.log")
    assert rc == 0, output[-5000:]
    assert "[sample @ step 3]" in output and f"[sample @ step {max_steps}]" in output, output[-3000:]
    assert "Traceback" not in output
    from hfgpt.training.common import cpu_has_native_bf16  # the run says its precision before anything else it prints

    precision = "Precision: bf16 autocast on the CPU" if cpu_has_native_bf16() else "Precision: fp32"
    assert output.index(precision) < output.index("[sample @ step 3]"), output[:3000]

    # A self-contained Hugging Face folder: weights, tokenizer, and the remote code behind auto_map.
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert isinstance(model, hfgpt.GPTScratchForCausalLM)
    assert (model.config.n_layer, model.config.n_embd, model.config.n_head) == (2, 32, 2)
    # The saved context is the trained one: the preset's 128 positions would leave 96 of them untrained.
    assert (model.config.n_positions, model.config.trained_context) == (max_length, None)
    assert "stay untrained" not in output
    assert model.config.vocab_size == len(tokenizer) <= 300 + 10
    for name in ("modeling_gpt_scratch.py", "configuration_gpt_scratch.py", "model.safetensors", "tokenizer.json"):
        assert (out / name).is_file(), name
    auto_map = read_json(out / "config.json")["auto_map"]
    assert auto_map["AutoConfig"].startswith("configuration_gpt_scratch.")
    assert auto_map["AutoModelForCausalLM"].startswith("modeling_gpt_scratch.")
    ids = tokenizer("The return value of a function", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(model(ids, labels=ids).loss)

    # Metrics: train, eval (with perplexity and the unigram baseline), and both together.
    train = read_json(out / "train_results.json")
    evaluation = read_json(out / "eval_results.json")
    both = read_json(out / "all_results.json")
    assert train["train_tokens"] == max_steps * batch * max_length
    assert math.isfinite(train["train_loss"])
    for key in ("eval_loss", "eval_perplexity", "eval_unigram_loss", "eval_unigram_perplexity"):
        assert key in evaluation and key in both, key
    assert evaluation["eval_perplexity"] == pytest.approx(math.exp(evaluation["eval_loss"]), rel=1e-9)
    assert evaluation["eval_unigram_perplexity"] == pytest.approx(math.exp(evaluation["eval_unigram_loss"]), rel=1e-9)
    assert 0 < evaluation["eval_unigram_loss"] < math.log(model.config.vocab_size)
    # Bits per byte: the same loss over the same tokens, per byte of their text (ASCII English: a token of this
    # 300-token byte-level BPE stands for more than one byte), beside the unigram and xz baselines on the same split.
    for key in ("eval_bits_per_byte", "eval_unigram_bits_per_byte", "eval_xz_bits_per_byte"):
        assert key in evaluation and key in both, key
    bytes_per_token = evaluation["eval_loss"] / math.log(2) / evaluation["eval_bits_per_byte"]
    assert 1.1 < bytes_per_token < 6, bytes_per_token
    assert evaluation["eval_unigram_bits_per_byte"] == pytest.approx(
        evaluation["eval_unigram_loss"] / math.log(2) / bytes_per_token, rel=1e-9)
    assert 0.5 < evaluation["eval_xz_bits_per_byte"] < 8
    assert "train_loss" in both
    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == max_steps
    evaluations = [entry for entry in state["log_history"] if "eval_loss" in entry]
    assert len(evaluations) == 2 and all("eval_bits_per_byte" in entry for entry in evaluations), evaluations

    png = (out / "loss_curve.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


# ====================================================================================================================
# 2. Two-rank DDP on CPU


def test_ddp_two_ranks(corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, os.path.dirname(PROBE))
    try:
        from ddp_probe import state_dict_hash
    finally:
        sys.path.remove(os.path.dirname(PROBE))

    out = tmp_path / "ddp"
    max_steps, accumulation = 4, 2
    cmd = accelerate_launch("--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                            "--dynamo_backend", "no", "--main_process_port", str(free_port()), PROBE, *TINY,
                            "--train_file", corpus, "--output_dir", str(out), "--max_steps", str(max_steps),
                            "--gradient_accumulation_steps", str(accumulation), "--per_device_train_batch_size", "4",
                            "--eval_steps", "4", "--save_steps", "4", "--logging_steps", "2")
    rc, output = run(cmd, tmp_path, "ddp.log")
    assert rc == 0, output[-5000:]

    ranks = [read_json(out / f"rank{r}.json") for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    for r in ranks:
        assert r["world_size"] == 2 and r["backend"] == "gloo"
        # The Trainer itself must know it is distributed (not two independent runs that share a process group).
        assert r["args_world_size"] == 2 and r["process_index"] == r["rank"]
        assert r["optimizer_steps"] == r["global_step"] == max_steps
        assert len(r["batches"]) == max_steps * accumulation  # one training forward per micro-batch
        assert r["final_weights"] != r["initial_weights"]
    # Each rank its own shard of the data; the same tokenizer; gradients all-reduced into the same weights.
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"]), "both ranks trained on the same batches"
    assert ranks[0]["tokenizer_vocab"] == ranks[1]["tokenizer_vocab"]
    assert ranks[0]["initial_weights"] == ranks[1]["initial_weights"]
    assert ranks[0]["final_weights"] == ranks[1]["final_weights"]
    # What rank 0 saved is what was trained; tokens count both ranks' batches.
    assert state_dict_hash(AutoModelForCausalLM.from_pretrained(out)) == ranks[0]["final_weights"]
    assert read_json(out / "train_results.json")["train_tokens"] == max_steps * accumulation * 4 * 2 * 32
    assert output.count("[sample @ step 4]") == 2  # main process only: once in training, once at the final eval


# ====================================================================================================================
# 3. Kill mid-training, resume from the last checkpoint


def _complete_checkpoints(out) -> list[int]:
    if not out.is_dir():
        return []
    steps = []
    for path in out.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.json").is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


LOSS_LINE = re.compile(r"^\{'loss': .*\}$", re.MULTILINE)  # what the Trainer prints at each logging step


def test_kill_and_resume(corpus, tmp_path):
    out = tmp_path / "resume"
    max_steps, save_steps, logging_steps = 40, 10, 5
    # Big enough (~0.1 s a step here) that the 30 steps after checkpoint-10 leave seconds to kill it mid-training.
    args = [RECIPE, *TINY, "--config_overrides", "n_layer=4,n_embd=128,n_head=4", "--per_device_train_batch_size",
            "16", "--max_length", "64", "--train_file", corpus, "--output_dir", str(out), "--max_steps",
            str(max_steps), "--save_steps", str(save_steps), "--eval_steps", "20", "--logging_steps",
            str(logging_steps), "--save_total_limit", "3"]

    # First run: SIGKILL once checkpoint-10 is complete (trainer_state.json is the last file the Trainer writes
    # there) and the next logging step has been printed, so the run is past its checkpoint when it dies.
    killed_log = tmp_path / "killed.log"
    with open(killed_log, "w") as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=subprocess_env(tmp_path), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT
            while not (_complete_checkpoints(out) and
                       len(LOSS_LINE.findall(killed_log.read_text())) > save_steps // logging_steps):
                if proc.poll() is not None:
                    pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed mid-training:\n"
                                f"{killed_log.read_text()[-5000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no checkpoint within {RUN_TIMEOUT} s:\n{killed_log.read_text()[-5000:]}")
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = _complete_checkpoints(out)
    resume_step = saved[-1]
    assert save_steps <= resume_step < max_steps, saved
    # It died mid-training: no final model, metrics or state at the top of output_dir.
    for name in ("model.safetensors", "all_results.json", "train_results.json", "trainer_state.json"):
        assert not (out / name).exists(), name

    # A run killed while writing a checkpoint leaves a newer folder without trainer_state.json: `last` skips it.
    partial = out / f"checkpoint-{resume_step + 1}"
    partial.mkdir(exist_ok=True)
    (partial / "config.json").write_text((out / f"checkpoint-{resume_step}" / "config.json").read_text())

    before = read_json(out / f"checkpoint-{resume_step}" / "trainer_state.json")["log_history"]
    rc, output = run([sys.executable, *args, "--resume_from_checkpoint", "last", "--log_level", "info"], tmp_path,
                     "resumed.log")
    assert rc == 0, output[-5000:]
    assert f"Skipping {partial}" in output
    assert re.search(rf"Resuming training from checkpoint with epoch \d+ and global step {resume_step}\b", output), \
        output[-5000:]
    assert "Fast-forwarding the dataloader" in output  # past the batches the checkpoint had already trained on

    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == max_steps
    logged = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged == list(range(logging_steps, max_steps + 1, logging_steps))  # each once: nothing trained twice
    # The history up to the checkpoint is the first run's, carried over; the rest was trained after resuming.
    assert state["log_history"][: len(before)] == before
    # Exact resumption (data order, RNG, optimizer, schedule): the steps that both runs trained after the
    # checkpoint printed the same loss, grad norm and learning rate.
    killed_after = LOSS_LINE.findall(killed_log.read_text())[resume_step // logging_steps:]
    resumed_lines = LOSS_LINE.findall(output)
    assert len(resumed_lines) == (max_steps - resume_step) // logging_steps
    assert killed_after == resumed_lines[: len(killed_after)]
    assert (out / "model.safetensors").is_file() and "eval_perplexity" in read_json(out / "all_results.json")


# ====================================================================================================================
# 4. The saved context is the trained one


@pytest.mark.parametrize("preset, overrides, window, expected", [
    ("laptop", None, 128, (128, None)),                      # the default run: the preset's 256 becomes the window
    ("124M", "n_layer=2", 64, (64, None)),
    ("tiny", "n_positions=96", 32, (96, 32)),                # asked for more: kept, and what was trained is recorded
    ("tiny", "n_positions=32", 32, (32, None)),
])  # fmt: skip
def test_a_new_model_has_the_context_it_trains(preset, overrides, window, expected):
    from hfgpt.training.pretrain import ModelArguments, build_config, planned_config

    model_args = ModelArguments(preset=preset, config_overrides=overrides)
    for config in (planned_config(model_args, window), build_config(model_args, window)):
        assert (config.n_positions, config.trained_context) == expected


def test_the_run_sets_the_dropout(tmp_path):
    """--drop_rate (default 0.0: the main job learns faster without dropout) shapes a new model and a continued one;
    a dropout given one by one in --config_overrides wins."""
    from hfgpt import GPTScratchConfig
    from hfgpt.tokenization import train_bpe_tokenizer
    from hfgpt.training.pretrain import ModelArguments, build_config, load_model

    def dropouts(config):
        return config.embd_pdrop, config.attn_pdrop, config.resid_pdrop

    assert dropouts(build_config(ModelArguments(), 128)) == (0.0, 0.0, 0.0)
    assert dropouts(build_config(ModelArguments(drop_rate=0.1), 128)) == (0.1, 0.1, 0.1)  # the book's
    assert dropouts(build_config(ModelArguments(config_overrides="attn_pdrop=0.2"), 128)) == (0.0, 0.2, 0.0)
    tokenizer = train_bpe_tokenizer(pydoc_topics(5), vocab_size=300, model_max_length=64)
    folder, _ = save_tiny_checkpoint(tmp_path, tokenizer, drop_rate=0.1)  # a checkpoint trained with the book's 0.1
    assert dropouts(GPTScratchConfig.from_pretrained(folder)) == (0.1, 0.1, 0.1)
    continued = load_model(ModelArguments(model_name_or_path=folder), tokenizer, 64)
    assert dropouts(continued.config) == (0.0, 0.0, 0.0)


def test_continued_training_records_the_longest_window(tmp_path):
    from hfgpt import GPTScratchConfig, GPTScratchForCausalLM
    from hfgpt.training.pretrain import record_trained_context

    config = GPTScratchConfig.from_preset("tiny", n_positions=96, trained_context=32)
    assert record_trained_context(config, 16).trained_context == 32      # a shorter window adds nothing
    assert record_trained_context(config, 64).trained_context == 64
    assert record_trained_context(config, 96).trained_context is None    # the whole context is trained now
    GPTScratchForCausalLM(GPTScratchConfig.from_preset("tiny", trained_context=32)).save_pretrained(tmp_path)
    assert GPTScratchConfig.from_pretrained(tmp_path).trained_context == 32  # saved and read back


# ====================================================================================================================
# 5. Bad input: one clear line and exit status 2, before any training


@pytest.fixture(scope="module")
def recipe_main():
    spec = importlib.util.spec_from_file_location("hfgpt_recipe_pretrain", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


BAD_INPUT = {
    # name: (extra flags, expected message, checked before the corpus is read)
    "empty corpus": (["--train_file", "{empty}"], "no text", False),
    "shorter than one window": (["--train_file", "{short}"], "fewer than max_length=32", False),
    "stride 0": (["--stride", "0"], "--stride must be a positive number", True),
    "max_length over n_positions": (["--max_length", "200", "--config_overrides", "n_positions=64"],
                                    "--max_length 200 is longer than the model's context (n_positions=64)", True),
    "missing train_file": (["--train_file", "{missing}"], "No file matches", False),  # found by the loader
    "unknown preset": (["--preset", "gigantic"], "Unknown preset 'gigantic'", True),
    "unknown config field": (["--config_overrides", "n_layers=2"], "unknown GPTScratchConfig fields: ['n_layers']",
                             True),
    "malformed config override": (["--config_overrides", "n_layer"], "look like name=value", True),
    "resume without checkpoint": (["--resume_from_checkpoint", "last"], "no checkpoint-* folder", True),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input(case, recipe_main, corpus, tmp_path, capsys, monkeypatch):
    import hfgpt.data

    flags, message, early = BAD_INPUT[case]
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("Hello, world.\n")
    paths = {"empty": tmp_path / "empty.txt", "short": tmp_path / "short.txt", "missing": tmp_path / "nope.txt"}
    flags = [flag.format(**paths) for flag in flags]
    if early:  # these must fail on the arguments alone, before a corpus is read or a tokenizer trained
        def no_corpus(*args, **kwargs):
            raise AssertionError("the corpus was read before the arguments were checked")

        monkeypatch.setattr(hfgpt.data, "load_text_datasets", no_corpus)
    out = tmp_path / "out"
    argv = ["--train_file", corpus, *TINY, "--output_dir", str(out), "--max_steps", "2", *flags]
    # (a later --flag overrides an earlier one, so each case's flags replace the defaults above)

    with pytest.raises(SystemExit) as exit_info:
        recipe_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("pretrain.py: error:")]
    assert len(lines) == 1 and message in lines[0], err[-3000:]
    assert "Traceback" not in err
    assert not out.exists() or not (list(out.glob("checkpoint-*")) or (out / "model.safetensors").exists())
