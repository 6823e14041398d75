"""FSDP 2 (``recipes/accelerate/fsdp.yaml``) on two CPU processes (gloo), against one process on the same batches.

What this stack does (torch 2.13, accelerate 1.16, transformers 5.24): torch's ``fully_shard`` runs on CPU with gloo,
but accelerate makes a run FSDP only on an accelerator, so ``accelerate launch --config_file fsdp.yaml`` on a CPU-only
machine silently trains with DDP (the first test pins that down). ``tests/fsdp_probe.py --probe_lift_cpu_gate`` lets
the real recipe take the path a GPU run takes; the other tests check what it did: every rank holds half of every
parameter, the training losses equal one process's, and the final model is a full state dict that loads.

What the recipe does under FSDP, checked here: every rank generates the evaluation sample (FSDP gathers the weights
in every forward, so rank 0 alone would wait forever), the final save switches to ``FULL_STATE_DICT`` (with the yaml's
``SHARDED_STATE_DICT`` the Trainer would save no model), and the saved folder carries hfgpt's code (``save_pretrained``
on torch's wrapped class ``FSDPGPTScratchForCausalLM`` would record and copy torch's files instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT
from test_pretrain import TINY, accelerate_launch, free_port, read_json, run, subprocess_env

FSDP_YAML = os.path.join(REPO_ROOT, "recipes", "accelerate", "fsdp.yaml")
PROBE = os.path.join(REPO_ROOT, "tests", "fsdp_probe.py")
RECIPE = os.path.join(REPO_ROOT, "recipes", "pretrain.py")
MAX_STEPS, GLOBAL_BATCH = 3, 8
# The same run for both: dropout 0, a fixed seed, one loss logged per step, one checkpoint, the final evaluation.
FLAGS = [*TINY, "--config_overrides", "n_layer=2,n_embd=32,n_head=2,drop_rate=0.0", "--max_steps", str(MAX_STEPS),
         "--logging_steps", "1", "--eval_strategy", "no", "--save_steps", str(MAX_STEPS), "--seed", "7",
         "--sample_max_new_tokens", "4", "--bf16", "false", "--use_muon", "false"]  # fp32 AdamW in both runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from pydoc_data.topics import topics

    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(topics[name] for name in sorted(topics))[:40_000], encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def fsdp_run(corpus, tmp_path_factory):
    """The shipped fsdp.yaml with what a CPU needs on the command line: 2 processes, fp32."""
    tmp = tmp_path_factory.mktemp("fsdp")
    cmd = accelerate_launch("--config_file", FSDP_YAML, "--num_processes", "2", "--mixed_precision", "no",
                            "--main_process_port", str(free_port()), PROBE, "--probe_lift_cpu_gate", *FLAGS,
                            "--train_file", corpus, "--output_dir", str(tmp / "run"),
                            "--per_device_train_batch_size", str(GLOBAL_BATCH // 2))
    rc, output = run(cmd, tmp, "fsdp.log")
    assert rc == 0, output[-5000:]
    return tmp


@pytest.fixture(scope="module")
def one_process_run(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one")
    cmd = [sys.executable, RECIPE, *FLAGS, "--train_file", corpus, "--output_dir", str(tmp / "run"),
           "--per_device_train_batch_size", str(GLOBAL_BATCH)]
    rc, output = run(cmd, tmp, "one.log")
    assert rc == 0, output[-5000:]
    return tmp


def logged_losses(run_dir) -> list[tuple[int, float]]:
    history = read_json(run_dir / "run" / "trainer_state.json")["log_history"]
    return [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]


def test_accelerate_drops_fsdp_on_cpu(tmp_path):
    """accelerate 1.16 on a CPU-only machine: gloo processes (MULTI_CPU) get no FSDP plugin from the FSDP env that
    ``accelerate launch --config_file fsdp.yaml`` exports, so the Trainer would wrap the model in DDP instead.
    When accelerate shards on CPU this fails: then drop ``--probe_lift_cpu_gate`` from the probe and this test."""
    code = textwrap.dedent("""
        from accelerate import Accelerator
        from accelerate.utils import DistributedType
        accelerator = Accelerator(cpu=True)
        print(accelerator.distributed_type, getattr(accelerator.state, "fsdp_plugin", None))
        assert accelerator.distributed_type == DistributedType.MULTI_CPU
        assert getattr(accelerator.state, "fsdp_plugin", None) is None
    """)
    env = subprocess_env(tmp_path)
    env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), ACCELERATE_USE_FSDP="true", FSDP_VERSION="2")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_fsdp_shards_every_parameter(fsdp_run):
    ranks = [read_json(fsdp_run / f"fsdp_rank{r}.json") for r in (0, 1)]
    for rank, record in enumerate(ranks):
        assert record["rank"] == rank and record["world_size"] == record["args_world_size"] == 2
        assert record["backend"] == "gloo"
        assert record["distributed_type"] == "DistributedType.FSDP" and record["fsdp_version"] == 2
        assert record["model_class"] == "FSDPGPTScratchForCausalLM"
        # dim-0 shards: each rank holds ceil(rows / 2) rows or the rest
        for name, (full, local) in record["parameters"].items():
            assert 0 < local < full, (name, full, local)
    for name, (full, _) in ranks[0]["parameters"].items():
        assert ranks[0]["parameters"][name][1] + ranks[1]["parameters"][name][1] == full, name
    # A checkpoint during training keeps the yaml's sharded state dict (distributed checkpoint files).
    checkpoint = fsdp_run / "run" / f"checkpoint-{MAX_STEPS}"
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir() and (checkpoint / "trainer_state.json").is_file()


def test_fsdp_loss_equals_one_process(fsdp_run, one_process_run):
    fsdp, one = logged_losses(fsdp_run), logged_losses(one_process_run)
    assert [step for step, _ in fsdp] == [step for step, _ in one] == list(range(1, MAX_STEPS + 1))
    assert [loss for _, loss in fsdp] == pytest.approx([loss for _, loss in one], rel=1e-4)
    # the same global batches: tokens counted over both ranks
    tokens = MAX_STEPS * GLOBAL_BATCH * 32
    assert read_json(fsdp_run / "run" / "train_results.json")["train_tokens"] == tokens
    assert read_json(one_process_run / "run" / "train_results.json")["train_tokens"] == tokens


def test_fsdp_final_model_is_full_and_loads(fsdp_run, one_process_run):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    saved = load_file(fsdp_run / "run" / "model.safetensors")
    reference = load_file(one_process_run / "run" / "model.safetensors")
    # The gathered state dict also holds the tied head (a second copy of the token embedding, tied again on load).
    assert set(saved) - set(reference) <= {"lm_head.weight"} and set(reference) <= set(saved)
    if "lm_head.weight" in saved:
        assert torch.equal(saved["lm_head.weight"], saved["model.embeddings.tok_emb.weight"])
    for name, tensor in reference.items():  # full shapes, and the weights one process trained
        assert saved[name].shape == tensor.shape, name
        torch.testing.assert_close(saved[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    model = AutoModelForCausalLM.from_pretrained(fsdp_run / "run")
    assert type(model).__name__ == "GPTScratchForCausalLM"
    assert model.lm_head.weight is model.model.embeddings.tok_emb.weight
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.isfinite(model(ids, labels=ids).loss)


def test_fsdp_final_folder_carries_hfgpt_code(fsdp_run):
    folder = fsdp_run / "run"
    auto_map = read_json(folder / "config.json")["auto_map"]
    assert auto_map["AutoModelForCausalLM"] == "modeling_gpt_scratch.GPTScratchForCausalLM"
    assert (folder / "modeling_gpt_scratch.py").is_file()
    assert not list(folder.glob("_fsdp*.py"))


def test_fsdp_yaml_names_the_model_block():
    """The wrap policy's class name must be a module the model lists as unsplittable (a typo shards nothing)."""
    import yaml

    from hfgpt import GPTScratchForCausalLM

    with open(FSDP_YAML) as f:
        config = yaml.safe_load(f)
    fsdp = config["fsdp_config"]
    assert config["distributed_type"] == "FSDP" and fsdp["fsdp_version"] == 2
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] in GPTScratchForCausalLM._no_split_modules
