"""Never lose a run: a second run into a used output folder is refused (the first run's files byte-identical), an
explicit overwrite keeps checkpoint rotation to the new run, and kills during a checkpoint write, during the final
save and among the final renames are recovered (real recipes, real SIGKILL in subprocesses)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, alpaca_tokenizer, save_tiny_checkpoint
from test_pretrain import RECIPE, RUN_TIMEOUT, TINY, corpus, read_json, run, subprocess_env  # noqa: F401

from hfgpt.training.outputs import COMPLETE_MARKER, STAGING_DIR, publish, recover_final_save

STEPS = ["--max_steps", "3", "--save_steps", "1", "--save_total_limit", "2", "--eval_steps", "3",
         "--logging_steps", "1"]


def tree(folder) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256 of its bytes)."""
    digests = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def pretrain_argv(corpus, out, *extra):
    return ["--train_file", corpus, *TINY, "--output_dir", str(out), *STEPS, *extra]


def run_pretrain_in_process(argv):
    from hfgpt.training.pretrain import ARGUMENT_TYPES, pretrain
    from hfgpt.training.recipe_cli import run_recipe

    return run_recipe(ARGUMENT_TYPES, pretrain, argv=argv, prog="pretrain.py")


@pytest.fixture(scope="module")
def first_run(corpus, tmp_path_factory):
    """A finished 3-step pretraining run (checkpoint-2, checkpoint-3 and the final model) and its files' digests."""
    out = tmp_path_factory.mktemp("first") / "run"
    run_pretrain_in_process(pretrain_argv(corpus, out))
    return out, tree(out)


def copy_of(first_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(first_run[0], out)
    return out


# ------------------------------------------------------------------------------------------------ protection
def test_first_run_layout(first_run):
    out, files = first_run
    assert {"config.json", "model.safetensors", "tokenizer.json", "all_results.json", "trainer_state.json"} <= set(files)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert not (out / STAGING_DIR).exists()
    assert read_json(out / "all_results.json")["eval_loss"] > 0


@pytest.mark.parametrize("recipe", ["pretrain", "finetune_spam", "finetune_instructions"])
def test_second_run_is_refused_and_the_first_is_untouched(recipe, first_run, corpus, sms_file, tmp_path, capsys):
    import importlib
    import json

    from conftest import INSTRUCTION_RECORDS

    out = copy_of(first_run, tmp_path)
    before = tree(out)
    module = importlib.import_module(f"hfgpt.training.{recipe}")
    fn = getattr(module, recipe)
    records = tmp_path / "records.json"
    records.write_text(json.dumps(INSTRUCTION_RECORDS))
    argv = {
        "pretrain": pretrain_argv(corpus, out),
        "finetune_spam": ["--model_name_or_path", str(out), "--data_file", sms_file, "--output_dir", str(out)],
        "finetune_instructions": ["--model_name_or_path", str(out), "--data_file", str(records),
                                  "--output_dir", str(out)],
    }[recipe]
    from hfgpt.training.recipe_cli import run_recipe

    with pytest.raises(SystemExit) as exit_info:
        run_recipe(module.ARGUMENT_TYPES, fn, argv=argv, prog=f"{recipe}.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"--output_dir {str(out)!r} already holds a run" in err
    assert "--overwrite_output_dir" in err and "--resume_from_checkpoint last" in err
    assert tree(out) == before == first_run[1]


def test_overwrite_replaces_the_run_and_rotation_keeps_to_the_new_one(first_run, corpus, tmp_path, caplog):
    out = copy_of(first_run, tmp_path)
    run_pretrain_in_process(pretrain_argv(corpus, out, "--max_steps", "2", "--overwrite_output_dir", "--seed", "7"))
    # The old run's checkpoint-3 would sort as the newest by step: removed up front, not left to the rotation.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert read_json(out / "trainer_state.json")["global_step"] == 2
    assert "removing the previous run's checkpoint-2, checkpoint-3" in caplog.text
    assert tree(out)["model.safetensors"] != first_run[1]["model.safetensors"]


def test_resume_continues_a_finished_run(first_run, corpus, tmp_path):
    out = copy_of(first_run, tmp_path)
    run_pretrain_in_process(pretrain_argv(corpus, out, "--max_steps", "4", "--resume_from_checkpoint", "last"))
    assert read_json(out / "trainer_state.json")["global_step"] == 4
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]


# ------------------------------------------------------------------------------------------------ kills
KILLING_RUN = """\
import os, signal, sys, runpy
import transformers
{patch}
sys.argv = [{recipe!r}, *{argv!r}]
runpy.run_path({recipe!r}, run_name="__main__")
"""

KILL_IN_CHECKPOINT_WRITE = """\
original = transformers.Trainer._save_rng_state
def killing(self, output_dir):  # model and optimizer are written, trainer_state.json is not yet
    if output_dir.endswith("checkpoint-2"):
        print("KILLING during the write of", output_dir, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, output_dir)
transformers.Trainer._save_rng_state = killing
"""

KILL_IN_FINAL_SAVE = """\
original = transformers.PreTrainedTokenizerBase.save_pretrained
def killing(self, save_directory, *args, **kwargs):  # the new weights are staged, tokenizer and metrics are not
    if "{staging}" in str(save_directory):
        print("KILLING during the final save into", save_directory, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, save_directory, *args, **kwargs)
transformers.PreTrainedTokenizerBase.save_pretrained = killing
"""


def killed_run(tmp_path, patch, argv, log_name):
    script = KILLING_RUN.format(patch=patch, recipe=RECIPE, argv=argv)
    rc, output = run([sys.executable, "-c", script], tmp_path, log_name)
    assert rc == -signal.SIGKILL and "KILLING" in output, output[-5000:]
    return output


def test_kill_during_a_checkpoint_write_resumes_from_the_last_complete_one(corpus, tmp_path):
    out = tmp_path / "run"
    argv = pretrain_argv(corpus, out, "--save_total_limit", "3")
    killed_run(tmp_path, KILL_IN_CHECKPOINT_WRITE, argv, "killed.log")
    assert (out / "checkpoint-2" / "model.safetensors").is_file()  # half a checkpoint: weights, no state
    assert not (out / "checkpoint-2" / "trainer_state.json").exists()
    assert not (out / "model.safetensors").exists()

    rc, output = run([sys.executable, RECIPE, *argv, "--resume_from_checkpoint", "last", "--log_level", "info"],
                     tmp_path, "resumed.log")
    assert rc == 0, output[-5000:]
    assert f"Skipping {out / 'checkpoint-2'}" in output
    assert "global step 1" in output  # resumed from checkpoint-1, the last complete one
    assert read_json(out / "trainer_state.json")["global_step"] == 3
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()  # rewritten whole this time


def test_kill_during_the_final_save_keeps_the_previous_model(first_run, corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    out = copy_of(first_run, tmp_path)
    # (loss_curve.png is the running job's progress plot, redrawn at each evaluation: not part of the saved model)
    previous = {name: digest for name, digest in first_run[1].items()
                if not name.startswith("checkpoint-") and name != "loss_curve.png"}
    argv = pretrain_argv(corpus, out, "--overwrite_output_dir", "--seed", "7")
    killed_run(tmp_path, KILL_IN_FINAL_SAVE.format(staging=STAGING_DIR), argv, "killed.log")
    assert (out / STAGING_DIR / "model.safetensors").is_file()  # it died with the new weights staged
    now = tree(out)
    assert {name: now[name] for name in previous} == previous  # the previous model, tokenizer, metrics: intact
    model = AutoModelForCausalLM.from_pretrained(out)  # and it loads, whole
    assert model.num_parameters() > 0

    rc, output = run([sys.executable, RECIPE, *argv], tmp_path, "rerun.log")
    assert rc == 0, output[-5000:]
    assert "Removing an unfinished final save" in output
    assert not (out / STAGING_DIR).exists()
    assert tree(out)["model.safetensors"] != previous["model.safetensors"]


def test_a_kill_among_the_final_renames_is_never_half_loaded_and_is_completed(tmp_path):
    from transformers import AutoModelForCausalLM

    out, old = save_tiny_checkpoint(tmp_path / "run", alpaca_tokenizer())
    staging = tmp_path / "run" / STAGING_DIR
    _, new = save_tiny_checkpoint(staging, alpaca_tokenizer(), n_layer=1)
    (staging / COMPLETE_MARKER).write_text("")
    script = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {REPO_ROOT!r})\n"
        "from hfgpt.training.outputs import publish\n"
        "calls, original = [], os.replace\n"
        "def replace(*args):\n"
        "    calls.append(args)\n"
        "    if len(calls) == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    original(*args)\n"
        "os.replace = replace\n"
        f"publish({str(staging)!r}, {out!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env(tmp_path), timeout=RUN_TIMEOUT)
    assert done.returncode == -signal.SIGKILL
    with pytest.raises((OSError, ValueError), match="config.json"):  # neither the old model nor a mix of old and new
        AutoModelForCausalLM.from_pretrained(out)

    recover_final_save(out)
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert loaded.config.n_layer == 1 and not staging.exists()
    for name, tensor in new.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)


def test_a_full_disk_during_the_final_save_keeps_the_previous_model(first_run, tmp_path, monkeypatch):
    """The save's OSError (here ENOSPC from the tokenizer write) reaches the user with a note; nothing is lost."""
    from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments

    from hfgpt import GPTScratchForCausalLM
    from hfgpt.training.common import final_save

    out = copy_of(first_run, tmp_path)
    before = tree(out)
    model = GPTScratchForCausalLM.from_pretrained(out)
    from hfgpt.tokenization import load_tokenizer

    trainer = Trainer(model=model, args=TrainingArguments(str(out), report_to="none", use_cpu=True),
                      processing_class=load_tokenizer(str(out)))

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left") as info:
        with final_save(trainer):
            trainer.save_model()
    assert any("the model that was there before is intact" in note for note in info.value.__notes__)
    assert tree(out) == before and trainer.args.output_dir == str(out)


def test_publish_replaces_a_sharded_model_without_leaving_old_shards(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                 "model.safetensors.index.json"):
        (out / name).write_text("old shard")
    staging = out / STAGING_DIR
    save_tiny_checkpoint(staging, alpaca_tokenizer())
    publish(str(staging), str(out))
    assert not list(out.glob("model-0000*")) and not (out / "model.safetensors.index.json").exists()
    assert (out / "model.safetensors").is_file() and not staging.exists()


def test_publish_drops_the_artefacts_of_an_earlier_run_that_the_new_save_does_not_replace(tmp_path):
    """A folder never pairs the new model with another model's plots, scores or merged checkpoint."""
    from hfgpt.training.outputs import RESPONSES_FILE

    out = tmp_path / "run"
    save_tiny_checkpoint(out, alpaca_tokenizer())
    for name in ("precision_recall.png", "lm_eval_results.json", RESPONSES_FILE, "all_results.json", "notes.txt"):
        (out / name).write_text("the earlier run's")
    for folder in ("merged", "lm_eval_tasks"):
        (out / folder).mkdir()
        (out / folder / "old.txt").write_text("the earlier run's")
    staging = out / STAGING_DIR
    save_tiny_checkpoint(staging, alpaca_tokenizer(), n_layer=1)
    (staging / "all_results.json").write_text("{}")
    publish(str(staging), str(out))
    assert (out / "all_results.json").read_text() == "{}" and (out / "notes.txt").is_file()  # not a run artefact
    for name in ("precision_recall.png", "lm_eval_results.json", RESPONSES_FILE, "merged", "lm_eval_tasks"):
        assert not (out / name).exists(), name
    assert (out / "model.safetensors").is_file() and not staging.exists()
