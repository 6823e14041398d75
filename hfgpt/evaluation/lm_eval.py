"""lm-evaluation-harness on a saved hfgpt folder (an ordinary ``hf`` model to lm-eval), with hfgpt's own offline
perplexity tasks: :data:`TASKS_DIR`'s ``hfgpt_english``, and :func:`write_perplexity_task` over any documents
(``hfgpt_heldout``: the pretraining validation split, so lm-eval's ``token_perplexity`` and the recipe's
``eval_perplexity`` score the same text). lm-eval is optional, imported here only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import HfgptInputError
from ..training.outputs import LM_EVAL_FILE as RESULTS_FILE  # one of the run artefacts

logger = logging.getLogger("hfgpt.lm_eval")

TASKS_DIR = Path(__file__).with_name("lm_eval_tasks")
SHIPPED_TASKS = ("hfgpt_english",)
HELDOUT_TASK = "hfgpt_heldout"  # written by the pretraining recipe from its validation split
HEADLINE_METRICS = ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "acc", "acc_norm")


def _require_lm_eval():
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise HfgptInputError("lm-evaluation-harness is not installed: pip install 'hfgpt[lm-eval]'") from None


def parse_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (duplicates and blanks dropped)."""
    items = tasks.split(",") if isinstance(tasks, str) else list(tasks or [])
    return list(dict.fromkeys(item.strip() for item in items if item and item.strip()))


def _task_manager(tasks: list[str], include_path, metadata: dict | None = None):
    """A TaskManager that knows ``tasks``: hfgpt's folder alone when enough (indexing lm-eval's tasks takes ~20 s)."""
    from lm_eval.tasks import TaskManager

    paths = [str(TASKS_DIR), *(os.fspath(p) for p in ([include_path] if isinstance(include_path, (str, os.PathLike))
                                                       else include_path or []))]
    manager = TaskManager(include_path=paths, include_defaults=False, metadata=metadata)
    if all(name in manager.all_tasks for name in tasks):
        return manager
    ours = [name for name in tasks if name.startswith("hfgpt_") and name not in manager.all_tasks]
    if ours:  # no need to index lm-eval's own tasks to know these are not hfgpt's
        raise HfgptInputError(f"unknown lm-eval task(s) {ours}: hfgpt's tasks are {[*SHIPPED_TASKS, HELDOUT_TASK]} "
                              f"({HELDOUT_TASK} only in the pretraining recipe, or from write_perplexity_task).")
    manager = TaskManager(include_path=paths, metadata=metadata)
    unknown = [name for name in tasks if name not in manager.all_tasks]
    if unknown:
        raise HfgptInputError(f"unknown lm-eval task(s) {unknown}: see `lm_eval ls tasks` for lm-eval's own, or "
                              f"{list(SHIPPED_TASKS)} (hfgpt's, offline).")
    return manager


def check_tasks(tasks: str | Sequence[str], include_path=None, allow: Iterable[str] = ()) -> list[str]:
    """The task names, checked before anything slow runs (``allow``: names the caller writes later)."""
    names = parse_tasks(tasks)
    if not names:
        raise HfgptInputError(f"no lm-eval task named in {tasks!r}: pass e.g. {SHIPPED_TASKS[0]}")
    _require_lm_eval()
    _task_manager([name for name in names if name not in set(allow)], include_path)
    return names


def write_perplexity_task(documents: Iterable[str], out_dir: str | os.PathLike, name: str = HELDOUT_TASK) -> Path:
    """A self-contained task folder (``lm_eval --include_path``): ``hfgpt_english`` over ``documents``, as ``name``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"text": text}, ensure_ascii=False) for text in documents if text and text.strip()]
    if not rows:
        raise HfgptInputError(f"no text for the lm-eval task {name!r}: all documents are empty")
    template = (TASKS_DIR / "hfgpt_english.yaml").read_text(encoding="utf-8")
    yaml_text = template.replace("task: hfgpt_english", f"task: {name}").replace(
        "data_file: hfgpt_english.jsonl", f"data_file: {name}.jsonl")
    header = f"# hfgpt.evaluation.lm_eval.write_perplexity_task: {len(rows)} document(s) in {name}.jsonl.\n"
    yaml_text = header + "\n".join(line for line in yaml_text.splitlines() if not line.startswith("#")) + "\n"
    (out / f"{name}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    shutil.copyfile(TASKS_DIR / "utils.py", out / "utils.py")
    (out / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
    return out


def run_lm_eval(folder: str | os.PathLike, tasks: str | Sequence[str], include_path=None, batch_size: int = 8,
                device: str = "cpu", limit: int | float | None = None, log_samples: bool = False, **kwargs) -> dict:
    """``lm_eval.simple_evaluate(**kwargs)`` of the model in ``folder`` on ``tasks``; returns lm-eval's results dict."""
    folder = os.fspath(folder)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise HfgptInputError(f"no saved model in {folder!r} (no config.json): pass a recipe's output_dir")
    names = parse_tasks(tasks)
    if not names:
        raise HfgptInputError(f"no lm-eval task named in {tasks!r}: pass e.g. {SHIPPED_TASKS[0]}")
    _require_lm_eval()
    import lm_eval

    model_args = {"pretrained": folder, "trust_remote_code": True}
    manager = _task_manager(names, include_path, metadata=dict(model_args))  # tasks see the tokenizer (counts)
    return lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=names, batch_size=batch_size,
                                   device=device, limit=limit, log_samples=log_samples, task_manager=manager,
                                   bootstrap_iters=0, **kwargs)


def headline_metrics(results: dict) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` for the metrics worth a log line (perplexities, bits per byte, accuracy)."""
    table = {}
    for task, values in results["results"].items():
        table[task] = {key.split(",")[0]: value for key, value in values.items()
                       if key.split(",")[0] in HEADLINE_METRICS and isinstance(value, (int, float))}
    return table


def save_results(results: dict, path: str | os.PathLike) -> Path:
    """lm-eval's results without the per-document samples, as JSON, written atomically (temporary file + rename)."""
    from lm_eval.utils import handle_non_serializable

    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    kept = {key: value for key, value in results.items() if key != "samples"}
    partial.write_text(json.dumps(kept, indent=2, default=handle_non_serializable, ensure_ascii=False),
                       encoding="utf-8")
    os.replace(partial, path)
    return path


def evaluate_saved_run(output_dir: str | os.PathLike, tasks: Sequence[str], documents: Iterable[str] | None = None,
                       batch_size: int = 8) -> dict:
    """The pretraining recipe's ``--lm_eval_tasks`` step, after the final save; returns :func:`headline_metrics`."""
    output_dir = Path(output_dir)
    drop_results(output_dir)
    include = None
    if HELDOUT_TASK in tasks:
        include = write_perplexity_task(documents or [], output_dir / "lm_eval_tasks")
    results = run_lm_eval(output_dir, tasks, include_path=include, batch_size=batch_size)
    save_results(results, output_dir / RESULTS_FILE)
    headline = headline_metrics(results)
    for task, values in headline.items():
        logger.info("lm-eval %s: %s", task, ", ".join(f"{key} {value:.4g}" for key, value in sorted(values.items())))
    return headline


def drop_results(output_dir: str | os.PathLike) -> None:
    """Remove ``lm_eval_results.json`` and the ``lm_eval_tasks`` folder an earlier run left in ``output_dir``."""
    output_dir = Path(output_dir)
    (output_dir / RESULTS_FILE).unlink(missing_ok=True)
    shutil.rmtree(output_dir / "lm_eval_tasks", ignore_errors=True)


__all__ = ["HELDOUT_TASK", "RESULTS_FILE", "SHIPPED_TASKS", "TASKS_DIR", "check_tasks", "drop_results",
           "evaluate_saved_run", "headline_metrics", "parse_tasks", "run_lm_eval", "save_results",
           "write_perplexity_task"]
