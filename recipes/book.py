"""The whole book in one command: tokenizer + pretraining -> spam filter -> instruction fine-tuning -> preference
tuning -> held-out evaluation -> a report card (OUT/report.md), each stage one of the recipes run with its flags.

    python recipes/book.py --output_dir runs/book --data_dir DIR     # DIR: SMSSpamCollection, instruction-data.json,
                                                                     # instruction-data-with-preference.json
    python recipes/book.py --quick --output_dir /tmp/book            # every stage on tiny settings (minutes)
    python recipes/book.py --base_model openai-community/gpt2-medium # no pretraining: fine-tune the book's GPT-2
    python spaces_demo/app.py --from runs/book                       # the Space on the results

A rerun skips the stages whose folder holds a finished run, continues or replaces an unfinished one, and rewrites
the report. Each recipe's log is OUT/logs/<stage>.log. See docs/journey.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the hfgpt beside this file, however it is run

from hfgpt.errors import HfgptInputError  # noqa: E402
from hfgpt.training.outputs import (  # noqa: E402
    RESPONSES_FILE,
    last_complete_checkpoint,
    recover_final_save,
    run_contents,
)

from book_report import HEADLINES, write_report  # noqa: E402  (the report card, beside this file)

SPAM_FILE, INSTRUCTIONS_FILE, PREFERENCES_FILE = ("SMSSpamCollection", "instruction-data.json",
                                                  "instruction-data-with-preference.json")
INSTRUCTIONS_URL = ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/"
                    + INSTRUCTIONS_FILE)
SPAM_FLAGS = ["--mode", "full", "--target_fpr", "0.005"]  # recipes/reproduce_spam.sh's, as is its lr for a --base_model
BASE_MODEL_SPAM = ["--learning_rate", "3e-4"]
# The main job's small model catches more spam on the natural mix at a larger lr (docs/journey.md).
SMALL_MODEL_SPAM = ["--learning_rate", "1e-3"]
SMALL_MODEL_INSTRUCTIONS = ["--mask_prompt", "--learning_rate", "1e-3", "--num_train_epochs", "5"]  # the README's
# The book's DPO lr (5e-6) is for gpt2-medium; the main job's small model needs a larger one (docs/preferences.md).
SMALL_MODEL_PREFERENCES = ["--learning_rate", "3e-4"]
QUICK = {  # tiny settings: every stage in seconds (the test suite runs them)
    "pretrain": ["--preset", "tiny", "--vocab_size", "1000", "--max_corpus_chars", "40000", "--max_length", "128",
                 "--max_steps", "8", "--eval_steps", "4", "--save_steps", "4", "--per_device_train_batch_size", "8"],
    "spam-full": ["--max_steps", "3", "--per_device_train_batch_size", "4"],
    "spam-all": ["--max_steps", "3", "--per_device_train_batch_size", "4"],
    "instructions": ["--max_steps", "3", "--per_device_train_batch_size", "4", "--max_test_samples", "4",
                     "--max_new_tokens", "12"],
    "preferences": ["--max_steps", "2", "--per_device_train_batch_size", "2", "--sample_prompts", "2",
                    "--max_new_tokens", "12"],
}
SAMPLE_ANSWERS = 3  # test instructions shown before / after fine-tuning



def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", default="runs/book", help="Where every stage's folder and report.md go.")
    parser.add_argument("--data_dir", help=f"A folder holding {SPAM_FILE}, {INSTRUCTIONS_FILE} and {PREFERENCES_FILE}; "
                                           "default: each downloaded once into the cache.")
    parser.add_argument("--quick", action="store_true", help="Every stage on tiny settings (tests, a first look).")
    parser.add_argument("--base_model", help="Skip pretraining: fine-tune this model (e.g. "
                                             "openai-community/gpt2-medium, with internet) with the recipes' defaults.")
    parser.add_argument("--judge_url", help="An OpenAI-compatible API that scores the responses (the recipes' flag).")
    parser.add_argument("--judge_model_name", help="The model behind --judge_url.")
    return parser.parse_args(argv)


def book_files(data_dir: str | None) -> dict[str, str]:
    """The three data files: from ``--data_dir``, else downloaded once into the datasets cache (the recipes' own
    downloads). A missing one raises one line naming the file and the flag, before any stage runs."""
    names = {"spam": SPAM_FILE, "instructions": INSTRUCTIONS_FILE, "preferences": PREFERENCES_FILE}
    if data_dir is not None:
        for name in names.values():
            if not os.path.isfile(os.path.join(data_dir, name)):
                raise HfgptInputError(f"{name} is missing from --data_dir {data_dir!r}: put the book's {name} there "
                                      f"(or leave out --data_dir to download it).")
        return {key: os.path.join(data_dir, name) for key, name in names.items()}
    from hfgpt.data.preferences import download_book_preferences
    from hfgpt.data.spam import download_sms_spam
    from hfgpt.data.text import download_once

    files = {}
    for key, download in (("spam", download_sms_spam), ("preferences", download_book_preferences),
                          ("instructions", lambda: download_once(INSTRUCTIONS_URL, INSTRUCTIONS_FILE))):
        try:
            files[key] = download()
        except (ConnectionError, HfgptInputError, OSError):
            raise HfgptInputError(f"could not download {names[key]} (offline?); pass --data_dir DIR with {names[key]} "
                                  f"in it.") from None
    return files


def stages(args, files: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """``(name, title, recipe argv)`` for each training stage, in order; the folder is OUT/<name>."""
    out = Path(args.output_dir)
    base = args.base_model or str(out / "pretrain")
    judge = [f for flag in ("judge_url", "judge_model_name") if getattr(args, flag)
             for f in (f"--{flag}", getattr(args, flag))]
    plan = [] if args.base_model else [("pretrain", "Tokenizer + pretraining", ["recipes/pretrain.py"])]
    spam_lr = BASE_MODEL_SPAM if args.base_model else SMALL_MODEL_SPAM
    plan += [
        ("spam-full", "Spam filter, the book's protocol", ["recipes/finetune_spam.py", "--model_name_or_path", base,
                                                           "--data_file", files["spam"], *SPAM_FLAGS, *spam_lr,
                                                           "--num_train_epochs", "5"]),
        ("spam-all", "Spam filter, the natural mix", ["recipes/finetune_spam.py", "--model_name_or_path", base,
                                                      "--data_file", files["spam"], *SPAM_FLAGS, *spam_lr,
                                                      "--no_balance", "--class_weighting", "--num_train_epochs", "2"]),
        ("instructions", "Instruction fine-tuning", ["recipes/finetune_instructions.py", "--model_name_or_path", base,
                                                     "--data_file", files["instructions"], *judge,
                                                     *([] if args.base_model else SMALL_MODEL_INSTRUCTIONS)]),
        ("preferences", "Preference tuning (DPO)", ["recipes/finetune_preferences.py", "--model_name_or_path",
                                                    str(out / "instructions"), "--data_file", files["preferences"],
                                                    *judge, *([] if args.base_model else SMALL_MODEL_PREFERENCES)]),
    ]
    return [(name, title, [*argv, "--output_dir", str(out / name), *(QUICK[name] if args.quick else [])])
            for name, title, argv in plan]


def finished(folder: Path) -> bool:
    """A recipe's folder holds a finished run: its final save was published (metrics and a loadable model)."""
    recover_final_save(str(folder))  # completes a publish a kill interrupted
    return (folder / "all_results.json").is_file() and any((folder / f).is_file() for f in
                                                              ("config.json", "adapter_config.json"))


def continue_flags(folder: Path) -> list[str]:
    """An unfinished run in the folder: continue from its last complete checkpoint, else replace it."""
    if not run_contents(str(folder)):
        return []
    try:
        last_complete_checkpoint(str(folder))
        return ["--resume_from_checkpoint", "last"]
    except HfgptInputError:
        return ["--overwrite_output_dir"]


def run_stage(name: str, argv: list[str], out: Path) -> float:
    """Run one recipe in a subprocess, its output into OUT/logs/<name>.log; returns the seconds it took."""
    folder, log = out / name, out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log, "w") as f:
        result = subprocess.run([sys.executable, *argv, *continue_flags(folder)], cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"book.py: stage {name} failed (exit {result.returncode}); its log: {log}")
    return time.time() - started


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def evaluate(args, out: Path, files: dict[str, str]) -> dict:
    """Stage 5's own part: ROUGE-L of the instruction model's test responses and of the nearest-neighbour baseline,
    and the base model's answers to a few test instructions (the "before" of instruction fine-tuning)."""
    from hfgpt.data.instructions import clean_records, load_instruction_records, split_records
    from hfgpt.evaluation.generation import generate_responses
    from hfgpt.evaluation.generation import score_instruction_responses
    from hfgpt.training.common import FinetuneArguments, load_chat_model
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the stages' progress is in their logs; this one is short

    responses = read_json(out / "instructions" / RESPONSES_FILE, [])
    records, _ = clean_records(load_instruction_records(files["instructions"]))
    results = score_instruction_responses(responses, split_records(records)["train"])
    model, tokenizer = load_chat_model(FinetuneArguments(model_name_or_path=args.base_model or str(out / "pretrain")))
    before, _ = generate_responses(model, tokenizer, responses[:SAMPLE_ANSWERS], 12 if args.quick else 64,
                                   response_key="base_model_response")
    return {**results, "samples": before}


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.output_dir)
    try:
        files = book_files(args.data_dir)
    except HfgptInputError as err:
        print(f"book.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    out.mkdir(parents=True, exist_ok=True)
    times = read_json(out / "stage_times.json", {})
    plan = stages(args, files)
    for number, (name, title, argv_) in enumerate(plan, 1):
        if finished(out / name):
            print(f"[{number}/{len(plan) + 2}] {title}: finished earlier in {out / name}, skipped")
        else:
            print(f"[{number}/{len(plan) + 2}] {title} ...", flush=True)
            times[name] = run_stage(name, argv_, out)
            (out / "stage_times.json").write_text(json.dumps(times, indent=2))
        print(f"    {HEADLINES[name](read_json(out / name / 'all_results.json', {}))} ({times.get(name, 0):.0f} s)")
    evaluation_file, step = out / "evaluation.json", f"[{len(plan) + 1}/{len(plan) + 2}] Held-out evaluation"
    responses = out / "instructions" / RESPONSES_FILE
    if read_json(evaluation_file) is not None and evaluation_file.stat().st_mtime >= responses.stat().st_mtime:
        print(f"{step}: finished earlier in {evaluation_file}, skipped")
    else:
        print(f"{step} ...", flush=True)
        started = time.time()
        evaluation_file.write_text(json.dumps(evaluate(args, out, files), indent=2, ensure_ascii=False))
        times["evaluation"] = time.time() - started
        (out / "stage_times.json").write_text(json.dumps(times, indent=2))
    evaluation = read_json(evaluation_file)
    print(f"    ROUGE-L {evaluation['rouge_l']:.3f} (nearest neighbour {evaluation['nearest_neighbour_rouge_l']:.3f})")
    report = write_report(out, [(name, title) for name, title, _ in plan], evaluation, times, args)
    print(f"[{len(plan) + 2}/{len(plan) + 2}] Report card: {report}\n    The Space: python spaces_demo/app.py --from {out}")


if __name__ == "__main__":
    main()
