"""Quiet, correct defaults (issue 13, item 7): the main job's command prints no accelerate banner, a CPU run no
pin-memory warning, the saved tokenizer knows the model's context, and the saved folders' tokenizer loads in a
process without hfgpt.

One tiny real run (``accelerate launch --config_file recipes/accelerate/single_process.yaml recipes/pretrain.py``, a
private HOME and HF_HOME so no user accelerate config interferes) feeds most tests of this file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
from conftest import REPO_ROOT, pydoc_topics, save_tiny_checkpoint, tiny_config

SINGLE_PROCESS = os.path.join(REPO_ROOT, "recipes", "accelerate", "single_process.yaml")
BANNER = "were not passed to `accelerate launch` and had defaults used instead"
PIN_MEMORY = "'pin_memory' argument is set as true but no accelerator is found"
TOO_LONG = "longer than the specified maximum sequence length"
PROMPT = "Do you wish to run the custom code?"
N_POSITIONS = 96  # the run's context, on purpose neither the preset's (128) nor the window length (32)
TIMEOUT = 300


def launch_env(tmp_path) -> dict:
    """Offline, CPU only, and a private HOME and HF_HOME: no user accelerate config, no shared caches."""
    return dict(os.environ, HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf_home"), CUDA_VISIBLE_DEVICES="",
                PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def accelerate_launch(tmp_path, *args) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", *args], cwd=REPO_ROOT,
                          env=launch_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    return done.returncode, done.stdout


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """The README's main command on a tiny model and corpus: ``(output folder, everything it printed)``."""
    tmp = tmp_path_factory.mktemp("main_job")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(pydoc_topics(60))[:40_000], encoding="utf-8")
    out = tmp / "run"
    rc, output = accelerate_launch(
        tmp, "--config_file", SINGLE_PROCESS, os.path.join(REPO_ROOT, "recipes", "pretrain.py"),
        "--preset", "tiny", "--config_overrides", f"n_layer=1,n_embd=32,n_head=2,n_positions={N_POSITIONS}",
        "--vocab_size", "300", "--max_length", "32", "--train_file", str(corpus), "--output_dir", str(out),
        "--max_steps", "3", "--per_device_train_batch_size", "4", "--eval_steps", "3", "--save_strategy", "no",
        "--logging_steps", "1", "--sample_max_new_tokens", "4", "--disable_tqdm", "true",
    )
    assert rc == 0, output[-5000:]
    return out, output


def test_the_main_command_prints_no_accelerate_banner(main_job, tmp_path):
    _, output = main_job
    assert BANNER not in output, output[:3000]
    # The same launch without the config file prints it (so the check above can fail).
    script = tmp_path / "noop.py"
    script.write_text("print('ran')\n")
    rc, bare = accelerate_launch(tmp_path, str(script))
    assert rc == 0 and "ran" in bare, bare
    assert BANNER in bare


def test_a_cpu_run_prints_no_pin_memory_warning(main_job):
    _, output = main_job
    assert "[sample @ step 3]" in output, output[-3000:]  # the run trained and evaluated (dataloaders were built)
    assert "pin_memory" not in output, output[-3000:]


def test_pin_memory_default_follows_the_accelerator_and_an_explicit_value_is_kept(tmp_path):
    import torch
    from transformers import HfArgumentParser, Trainer

    from hfgpt import GPTScratchForCausalLM
    from hfgpt.training.common import has_accelerator
    from hfgpt.training.pretrain import PretrainingArguments

    parser = HfArgumentParser(PretrainingArguments)
    base = ["--output_dir", str(tmp_path), "--eval_strategy", "no"]
    default, = parser.parse_args_into_dataclasses(args=base)
    pinned, = parser.parse_args_into_dataclasses(args=[*base, "--dataloader_pin_memory", "true"])
    assert default.dataloader_pin_memory is has_accelerator()
    assert pinned.dataloader_pin_memory is True

    model = GPTScratchForCausalLM(tiny_config())
    windows = [{"input_ids": torch.arange(16), "labels": torch.arange(16)} for _ in range(4)]
    for args, expect_warning in ((default, False), (pinned, not has_accelerator())):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            next(iter(Trainer(model=model, args=args, train_dataset=windows).get_train_dataloader()))
        assert any(PIN_MEMORY in str(w.message) for w in caught) is expect_warning, [str(w.message) for w in caught]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_the_saved_tokenizer_knows_the_models_context(main_job):
    from transformers import AutoConfig, AutoTokenizer

    out, output = main_job
    assert f"n_positions={N_POSITIONS} is longer than the training windows (--max_length 32): positions 32-" \
        f"{N_POSITIONS - 1} stay untrained" in output
    config = AutoConfig.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert config.n_positions == N_POSITIONS and config.trained_context == 32  # longer than the windows: recorded
    assert tokenizer.model_max_length == config.n_positions
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == N_POSITIONS

    word = " the"
    assert len(tokenizer(word).input_ids) == 1
    records = _Records()
    transformers_logger = logging.getLogger("transformers")
    transformers_logger.addHandler(records)
    try:
        assert len(tokenizer(word * (N_POSITIONS - 1)).input_ids) == N_POSITIONS - 1
        assert not any(TOO_LONG in m for m in records.messages), records.messages
        tokenizer(word * (N_POSITIONS + 1))  # one past the context: transformers warns (the capture works)
        assert any(TOO_LONG in m for m in records.messages), records.messages
    finally:
        transformers_logger.removeHandler(records)


def test_prepare_tokenizer_sets_the_context_only_where_a_tokenizer_has_none(tmp_path):
    from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

    from hfgpt.tokenization import train_bpe_tokenizer
    from hfgpt.training.pretrain import prepare_tokenizer

    from datasets import Dataset

    texts = pydoc_topics(20)
    trained = prepare_tokenizer(None, Dataset.from_dict({"text": texts}), "text", 300, context=77)
    assert trained.model_max_length == 77
    for own, expected in ((VERY_LARGE_INTEGER, 77), (50, 50)):  # no sensible value -> the model's; the user's -> kept
        folder = tmp_path / f"tok-{own}"
        train_bpe_tokenizer(texts, vocab_size=300, model_max_length=own).save_pretrained(folder)
        assert prepare_tokenizer(str(folder), None, "text", 300, context=77).model_max_length == expected


# ------------------------------------------------------------------------------------------------ no hfgpt, no tty
CLEAN_TOKENIZER_LOAD = textwrap.dedent(
    """
    import contextlib, io, json, sys
    sys.modules["hfgpt"] = None  # any import of hfgpt now raises ImportError
    sys.path = [p for p in sys.path if p not in ("", {repo!r})]
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    ways = {{
        "AutoTokenizer(trust_remote_code=True)": lambda f: AutoTokenizer.from_pretrained(f, trust_remote_code=True),
        "PreTrainedTokenizerFast": PreTrainedTokenizerFast.from_pretrained,
        "AutoTokenizer": AutoTokenizer.from_pretrained,
    }}
    results = {{}}
    for kind, folder in {folders!r}.items():
        for name, load in ways.items():
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):  # input() writes its question to stdout
                tokenizer = load(folder)
            results.setdefault(kind, {{}})[name] = {{"ids": tokenizer({text!r}).input_ids, "printed": printed.getvalue()}}
    print(json.dumps(results))
    """
)
TEXT = "The return value of a function is None.\n\tDéjà vu 🙂"


def load_tokenizers_without_hfgpt(folders: dict) -> dict:
    """Load each folder's tokenizer three ways in a fresh interpreter where ``import hfgpt`` fails, stdin closed."""
    script = CLEAN_TOKENIZER_LOAD.format(repo=REPO_ROOT, folders={k: os.fspath(v) for k, v in folders.items()},
                                         text=TEXT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          cwd=os.path.dirname(os.fspath(next(iter(folders.values())))), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def saved_folders(main_job, tmp_path_factory):
    """The main job's output, and a train_bpe_tokenizer + save_pretrained next to a tiny hfgpt model."""
    from hfgpt.tokenization import train_bpe_tokenizer

    folder = tmp_path_factory.mktemp("bpe_next_to_model") / "model"
    save_tiny_checkpoint(folder, train_bpe_tokenizer(pydoc_topics(20), vocab_size=300))
    out, _ = main_job
    return {"pretraining output": out, "bpe next to a model": folder}


@pytest.fixture(scope="module")
def clean_loads(saved_folders):
    return load_tokenizers_without_hfgpt(saved_folders)


@pytest.mark.parametrize("kind", ["pretraining output", "bpe next to a model"])
def test_the_saved_tokenizer_loads_without_hfgpt_and_without_a_question(kind, saved_folders, clean_loads):
    from transformers import AutoTokenizer

    folder = saved_folders[kind]
    assert "tokenizer_class" in json.loads((folder / "tokenizer_config.json").read_text())  # no custom tokenizer code
    expected = AutoTokenizer.from_pretrained(folder)(TEXT).input_ids  # in this process, hfgpt imported
    for way, result in clean_loads[kind].items():
        assert result["ids"] == expected, way
    for way in ("AutoTokenizer(trust_remote_code=True)", "PreTrainedTokenizerFast"):
        assert PROMPT not in clean_loads[kind][way]["printed"], way


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="transformers 5.24's AutoTokenizer loads config.json through AutoConfig (whose auto_map is "
                          "custom code) before it reads tokenizer_config.json's tokenizer_class")
def test_bare_autotokenizer_asks_no_question(clean_loads):
    assert PROMPT not in clean_loads["pretraining output"]["AutoTokenizer"]["printed"]
