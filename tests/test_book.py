"""recipes/book.py: the whole book in one command (--quick) on small fake copies of the book's three data files: the
report card has every stage's section and figures, a rerun skips the finished stages, a missing file is one line."""

import json
import os
import subprocess
import sys

import pytest
from conftest import INSTRUCTION_RECORDS, REPO_ROOT, sms_messages

pytest.importorskip("trl")

BOOK = os.path.join(REPO_ROOT, "recipes", "book.py")
STAGES = ("pretrain", "spam-full", "spam-all", "instructions", "preferences")


def write_data_dir(folder, skip=()):
    """Small fake copies of SMSSpamCollection, instruction-data.json and instruction-data-with-preference.json."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "SMSSpamCollection": "\n".join(f"{label}\t{text}" for label, text in sms_messages(80, 40)) + "\n",
        "instruction-data.json": json.dumps(INSTRUCTION_RECORDS * 4),  # 40 train, 4 test, 4 validation
        "instruction-data-with-preference.json": json.dumps(
            [{**r, "chosen": r["output"], "rejected": f"Figure it out yourself. {r['output'].lower()}"}
             for r in INSTRUCTION_RECORDS] * 3),
    }
    for name, text in files.items():
        if name not in skip:
            (folder / name).write_text(text)
    return folder


def book(*args):
    return subprocess.run([sys.executable, BOOK, "--quick", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    out = root / "out"
    result = book("--output_dir", str(out), "--data_dir", str(write_data_dir(root / "data")))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result


def test_each_stage_prints_its_name_time_and_headline(journey):
    _, result = journey
    for words in ("Tokenizer + pretraining ...", "bits per byte", "Spam filter, the book's protocol ...",
                  "book-protocol test accuracy", "natural test FPR", "Instruction fine-tuning ...",
                  "response loss", "Preference tuning (DPO) ...", "reward margin", "Held-out evaluation ...",
                  "ROUGE-L", "Report card:", "spaces_demo/app.py --from"):
        assert words in result.stdout, (words, result.stdout)


def test_report_card_has_every_stage_with_its_figures_and_anchors(journey):
    out, _ = journey
    report = (out / "report.md").read_text()
    for heading in ("## Tokenizer + pretraining", "## Spam filter", "## Instruction fine-tuning",
                    "## Preference tuning (DPO)", "## Held-out evaluation", "## Time per stage", "## The Space"):
        assert heading in report, heading
    for figure in ("validation bits per byte", "xz -9e", "unigram", "book 95.67%", "natural mix: test FPR",
                   "natural mix: test recall", "natural mix: test F1", "SVM", "validation response loss",
                   "test ROUGE-L F1", "nearest neighbour", "reward margin", "preference accuracy", "1.975",
                   "not on the same scale", "before:", "after:", "reference:"):
        assert figure in report, figure
    assert "missed** by" in report  # tiny settings miss the targets, and the card says by how much
    spam = json.loads((out / "spam-full" / "all_results.json").read_text())  # the book's figure is argmax accuracy
    assert f"| book protocol: test accuracy (argmax, the book's rule) | {100 * spam['test_argmax_accuracy']:.2f}% |" \
        in report
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert 0 <= evaluation["rouge_l"] <= 1 and 0 < evaluation["nearest_neighbour_rouge_l"] <= 1
    for line in report.splitlines():  # every plot the card links exists, relative to the card
        if line.startswith("!["):
            assert (out / line.split("](")[1].rstrip(")")).is_file(), line
    assert "](pretrain/loss_curve.png)" in report and "](preferences/preference_curve.png)" in report


def test_rerun_skips_finished_stages_and_rewrites_the_report(journey, tmp_path):
    out, _ = journey
    (out / "report.md").unlink()
    weights = {name: os.path.getmtime(out / name / "model.safetensors") for name in STAGES}
    result = book("--output_dir", str(out), "--data_dir", str(write_data_dir(tmp_path / "data")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("finished earlier") == len(STAGES) + 1, result.stdout  # + the evaluation
    assert {name: os.path.getmtime(out / name / "model.safetensors") for name in STAGES} == weights
    assert "## Preference tuning (DPO)" in (out / "report.md").read_text()


def test_missing_data_file_is_one_line_before_any_stage(tmp_path):
    data = write_data_dir(tmp_path / "data", skip=("instruction-data.json",))
    result = book("--output_dir", str(tmp_path / "out"), "--data_dir", str(data))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "instruction-data.json" in lines[0] and "--data_dir" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_offline_without_data_dir_names_the_file_and_the_flag(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, BOOK, "--quick", "--output_dir", str(tmp_path / "out")], env=env,
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SMSSpamCollection" in lines[0] and "--data_dir" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
