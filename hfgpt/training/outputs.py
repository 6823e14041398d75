"""Never lose a run: the output folder is protected from a second run, resuming skips a half-written checkpoint,
and the final save is staged, then moved into place with renames (``config.json`` first out and last in, so a kill
among them leaves a folder ``from_pretrained`` refuses, never a mix, that the next run completes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil

from ..errors import HfgptInputError

logger = logging.getLogger("hfgpt.training")

STAGING_DIR = ".hfgpt-final-save"
COMPLETE_MARKER = ".complete"
# Files that make a folder loadable: removed first and moved in last when the final save is published.
GATE_FILES = ("config.json", "adapter_config.json")
WEIGHTS = re.compile(r"^(model|pytorch_model|adapter_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?$")
MERGED_DIR = "merged"  # a LoRA run's merged plain checkpoint
# What a run writes beside its model, in one list: the recipes name their files from here, the Hub upload copies them
# (hfgpt.hub), and publish removes the ones an earlier run left that the new final save does not replace.
RESPONSES_FILE = "instruction-data-with-response.json"  # the instruction recipe's test responses (the book's name)
CONFUSION_MATRIX_FILE = "confusion_matrix.png"  # the spam recipe's
NATURAL_CONFUSION_MATRIX_FILE = "natural_confusion_matrix.png"
PR_CURVE_FILE = "precision_recall.png"
DATA_REPORT_FILE = "data_report.json"
PREFERENCE_SAMPLES_FILE = "preference-samples.json"  # the preference recipe's
PREFERENCE_CURVE_FILE = "preference_curve.png"
LM_EVAL_FILE = "lm_eval_results.json"  # hfgpt.evaluation.lm_eval's
RUN_ARTEFACTS = ("all_results.json", "train_results.json", "eval_results.json", "test_results.json",
                 "trainer_state.json", "loss_curve.png", CONFUSION_MATRIX_FILE, NATURAL_CONFUSION_MATRIX_FILE,
                 PR_CURVE_FILE, DATA_REPORT_FILE, LM_EVAL_FILE, RESPONSES_FILE, PREFERENCE_SAMPLES_FILE,
                 PREFERENCE_CURVE_FILE)
RUN_FOLDERS = (MERGED_DIR, "lm_eval_tasks")
# Names whose presence means output_dir holds a run (with model weights and checkpoint-N folders).
RUN_MARKERS = (*GATE_FILES, "trainer_state.json", "all_results.json", STAGING_DIR)


def _checkpoints(output_dir: str) -> dict[int, str]:
    """The Trainer's ``checkpoint-N`` folders in ``output_dir``, by step."""
    steps = {}
    if os.path.isdir(output_dir):
        for name in os.listdir(output_dir):
            prefix, _, step = name.partition("-")
            if prefix == "checkpoint" and step.isdigit() and os.path.isdir(os.path.join(output_dir, name)):
                steps[int(step)] = os.path.join(output_dir, name)
    return steps


def run_contents(output_dir: str) -> list[str]:
    """What in ``output_dir`` belongs to an earlier run: a model, metrics, checkpoints or an unfinished final save."""
    if not os.path.isdir(output_dir):
        return []
    return sorted([*(name for name in os.listdir(output_dir) if name in RUN_MARKERS or WEIGHTS.match(name)),
                   *(os.path.basename(path) for path in _checkpoints(output_dir).values())])


def last_complete_checkpoint(output_dir: str, flag: str = "last") -> str:
    """The newest ``checkpoint-N`` in ``output_dir`` holding ``trainer_state.json``. The Trainer writes it last, so a
    run killed while saving leaves a newer folder without it, which transformers' ``get_last_checkpoint`` would pick."""
    steps = _checkpoints(output_dir)
    if not steps:
        raise HfgptInputError(f"--resume_from_checkpoint {flag}: no checkpoint-* folder in {output_dir!r}.")
    for step in sorted(steps, reverse=True):
        if os.path.isfile(os.path.join(steps[step], "trainer_state.json")):
            return steps[step]
        logger.warning("Skipping %s: no trainer_state.json (its run stopped while saving it)", steps[step])
    raise HfgptInputError(f"--resume_from_checkpoint {flag}: no complete checkpoint in {output_dir!r} (none has "
                          f"trainer_state.json).")


def resolve_resume(training_args) -> str | None:
    """``--resume_from_checkpoint last`` (or ``true``) means the newest complete checkpoint in ``output_dir``."""
    resume = training_args.resume_from_checkpoint
    if resume is None or str(resume).lower() in ("", "false", "none"):
        return None
    if str(resume).lower() in ("last", "true"):
        return last_complete_checkpoint(training_args.output_dir, flag=str(resume))
    if not os.path.isdir(resume):
        raise HfgptInputError(f"--resume_from_checkpoint: no checkpoint folder at {resume!r}.")
    return resume


def protect_output_dir(training_args, resume: str | None) -> None:
    """Refuse a folder holding another run unless this run continues it or replaces it (``--overwrite_output_dir``)."""
    output_dir = training_args.output_dir
    recover_final_save(output_dir, is_main=training_args.process_index == 0)
    found = run_contents(output_dir)
    if not found or resume is not None:
        return
    if not getattr(training_args, "overwrite_output_dir", False):
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise HfgptInputError(f"--output_dir {output_dir!r} already holds a run ({shown}); pass --overwrite_output_dir "
                              f"to replace it, --resume_from_checkpoint last to continue it, or choose another "
                              f"--output_dir.")
    old_checkpoints = [name for name in found if name.startswith("checkpoint-")]
    if old_checkpoints and training_args.process_index == 0:
        logger.warning("--overwrite_output_dir: removing the previous run's %s from %s (its final model stays until "
                       "this run's final save replaces it)", ", ".join(old_checkpoints), output_dir)
        for name in old_checkpoints:
            shutil.rmtree(os.path.join(output_dir, name))


@contextlib.contextmanager
def staged_output(trainer):
    """Inside the block ``trainer.args.output_dir`` is a staging folder; on success its files replace the final ones,
    on an exception it is removed and the previous model is untouched. Every process enters (a sharded model is
    gathered by all of them); the main process publishes."""
    args = trainer.args
    output_dir = args.output_dir
    staging = os.path.join(output_dir, STAGING_DIR)
    is_main = trainer.is_world_process_zero()
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)  # a kill during an earlier staging left it half-written
        os.makedirs(staging)
    trainer.accelerator.wait_for_everyone()
    args.output_dir = staging
    try:
        yield staging
        trainer.accelerator.wait_for_everyone()
    except BaseException as err:
        args.output_dir = output_dir
        if is_main:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(err, OSError):
                err.add_note(f"hfgpt: the final save into {output_dir!r} did not happen; the model that was there "
                             f"before is intact.")
        raise
    args.output_dir = output_dir
    if is_main:
        _sync_tree(staging)
        with open(os.path.join(staging, COMPLETE_MARKER), "w"):
            pass
        _fsync_dir(staging)
        publish(staging, output_dir)
    trainer.accelerator.wait_for_everyone()


def final_path(path: str) -> str:
    """Where a file written into the staging folder will be once the final save is published."""
    parts = os.path.normpath(path).split(os.sep)
    return os.sep.join(part for part in parts if part != STAGING_DIR) or path


def publish(staging: str, output_dir: str) -> None:
    """Move a complete staging folder's entries into ``output_dir`` (config files first out, last in)."""
    names = [name for name in os.listdir(staging) if name != COMPLETE_MARKER]
    for gate in GATE_FILES:  # the old model stops being loadable before any of its files change
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(output_dir, gate))
    new_weights = {name for name in names if WEIGHTS.match(name)}
    for name in set(os.listdir(output_dir)) - set(names):  # what the new save leaves of the old run's files
        path = os.path.join(output_dir, name)
        if name in RUN_FOLDERS and os.path.isdir(path):
            shutil.rmtree(path)
        elif name in RUN_ARTEFACTS or (new_weights and WEIGHTS.match(name)):  # old shards beside a new model too
            os.remove(path)
    for name in sorted(names, key=lambda n: n in GATE_FILES):
        source, target = os.path.join(staging, name), os.path.join(output_dir, name)
        if os.path.isdir(source) and os.path.isdir(target):  # a folder (e.g. merged/) cannot replace a full one
            shutil.rmtree(target)
        os.replace(source, target)
    _fsync_dir(output_dir)
    shutil.rmtree(staging)
    logger.info("Saved the final model into %s", output_dir)


def recover_final_save(output_dir: str, is_main: bool = True) -> None:
    """Finish a final save a kill interrupted among its renames, or drop one it interrupted while staging."""
    staging = os.path.join(output_dir, STAGING_DIR)
    if not is_main or not os.path.isdir(staging):
        return
    if os.path.isfile(os.path.join(staging, COMPLETE_MARKER)):
        logger.warning("Completing the final save of an earlier run into %s (it stopped while moving files)",
                       output_dir)
        publish(staging, output_dir)
    else:
        logger.warning("Removing an unfinished final save in %s (the model saved before it is intact)", staging)
        shutil.rmtree(staging)


def _sync_tree(folder: str) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(root)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):  # not every platform / filesystem can fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(records, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(records, f, indent=4, ensure_ascii=False)
    return path
