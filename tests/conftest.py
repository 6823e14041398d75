"""Shared fixtures: tiny configs, and the offline environment every test runs in."""

import os

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import hfgpt  # noqa: E402,F401  (registers the Auto classes)
from hfgpt import GPTScratchConfig  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides) -> GPTScratchConfig:
    """2 layers, 64 wide: the size every test uses unless it needs something else."""
    values = dict(vocab_size=128, n_positions=64, drop_rate=0.0, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    values.update(overrides)
    return GPTScratchConfig.from_preset("tiny", **values)


def pydoc_topics(n: int) -> list[str]:
    """The first ``n`` of CPython's pydoc topics: English text every Python install has."""
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)[:n]]


def save_tiny_checkpoint(folder, tokenizer, model_class=None, **overrides):
    """A tiny random hfgpt model (``tiny_config``) sized to ``tokenizer`` (its vocabulary; eos as bos, eos and pad),
    saved with the tokenizer into ``folder`` as recipes/pretrain.py saves a run; returns ``(str(folder), model)``."""
    from hfgpt import GPTScratchForCausalLM

    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = tiny_config(vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, **overrides)
    model = (model_class or GPTScratchForCausalLM)(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), model


# The SMS Spam Collection in miniature, for the spam data and recipe tests.
HAM = ["Are we still meeting for lunch today?", "Ok see you at home later", "Can you pick up milk on the way",
       "Sorry I'll call you back in a bit", "Happy birthday! Have a great day", "I'm running late, start without me",
       "Did you finish the report for Monday?", "Thanks for dinner last night", "What time does the film start?",
       "Going to bed now, good night"]
SPAM = ["WINNER!! You have won a 1000 cash prize. Call 09061701461 now to claim",
        "FREE entry in 2 a weekly comp to win FA Cup final tkts. Text FA to 87121",
        "URGENT! Your mobile number has been awarded a 2000 bonus. Call 09066362231",
        "Congratulations ur awarded 500 of CD vouchers or 125gift guaranteed. Call 09061790126",
        "You have been selected to receive a FREE holiday. Txt WIN to 80086 now"]


def sms_messages(n_ham=60, n_spam=30, seed=0):
    rng = random.Random(seed)
    rows = [("ham", f"{rng.choice(HAM)} {i}") for i in range(n_ham)]
    rows += [("spam", f"{rng.choice(SPAM)} ref{i}") for i in range(n_spam)]
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def sms_file(tmp_path_factory):
    """A file in the SMS Spam Collection's own format: ``label<TAB>text``, no header, no quoting."""
    path = tmp_path_factory.mktemp("sms") / "SMSSpamCollection"
    path.write_text("\n".join(f"{label}\t{text}" for label, text in sms_messages()) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny causal-LM checkpoint (2 layers, 64 wide) with a BPE trained on the SMS messages, as a pretraining run
    on them saves one."""
    folder = tmp_path_factory.mktemp("tiny-base")
    from hfgpt.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer([t for _, t in sms_messages()] * 3, vocab_size=400, model_max_length=64)
    return save_tiny_checkpoint(folder, tokenizer)[0]


# Alpaca-style records in miniature, for the instruction data and recipe tests.
INSTRUCTION_RECORDS = [
    {"instruction": "Convert the active sentence to passive.", "input": "The chef cooks the meal.",
     "output": "The meal is cooked by the chef."},
    {"instruction": "What is the capital of France?", "input": "", "output": "The capital of France is Paris."},
    {"instruction": "Give a synonym for 'fast'.", "input": "", "output": "A synonym for 'fast' is 'quick'."},
    {"instruction": "Correct the spelling.", "input": "freind", "output": "The correct spelling is 'friend'."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "2 + 3 = 5."},
    {"instruction": "Name a primary color.", "input": "", "output": "Red is a primary color."},
    {"instruction": "Translate to French.", "input": "Thank you", "output": "Merci."},
    {"instruction": "Classify the animal.", "input": "dolphin", "output": "A dolphin is a mammal."},
    {"instruction": "What is the opposite of 'hot'?", "input": "", "output": "The opposite of 'hot' is 'cold'."},
    {"instruction": "Rewrite in the past tense.", "input": "She walks home.", "output": "She walked home."},
    {"instruction": "Name the largest planet.", "input": "", "output": "Jupiter is the largest planet."},
    {"instruction": "Make the word plural.", "input": "mouse", "output": "mice"},
]


def book_prompt(entry):
    """The book's prompt: the instruction (and input) block, then the response header."""
    from hfgpt.data.instructions import format_input

    return format_input(entry) + "\n\n### Response:\n"


def alpaca_corpus() -> list[str]:
    """pydoc text and the records rendered in the book's prompt format."""
    return pydoc_topics(20) + [book_prompt(r) + r["output"] for r in INSTRUCTION_RECORDS] * 3


def alpaca_tokenizer():
    """A byte-level BPE trained on :func:`alpaca_corpus`, with the recipe's Alpaca chat template."""
    from hfgpt.data.instructions import add_chat_template
    from hfgpt.tokenization import train_bpe_tokenizer

    return add_chat_template(train_bpe_tokenizer(alpaca_corpus(), vocab_size=600, model_max_length=256))


@pytest.fixture
def isolated_datasets(tmp_path, monkeypatch):
    """A private datasets cache and no progress bars, for tests of the data layer."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    yield
    if was_enabled:
        datasets.enable_progress_bars()


@pytest.fixture
def tiny_corpus() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)[:40]]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The start of a script for a fresh interpreter where `import hfgpt` fails: a saved folder must carry everything.
HIDE_HFGPT = textwrap.dedent(
    """
    import sys
    sys.modules["hfgpt"] = None  # any import of hfgpt now raises ImportError
    sys.path = [p for p in sys.path if p not in ("", {repo!r})]
    try:
        import hfgpt
        raise SystemExit("hfgpt was importable")
    except ImportError:
        pass
    """
).format(repo=REPO_ROOT)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a test's server."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_without_hfgpt(script: str, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter where ``import hfgpt`` fails; assert it exits with status 0."""
    done = subprocess.run([sys.executable, "-c", HIDE_HFGPT + script], capture_output=True, text=True,
                          cwd=os.fspath(cwd), timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


CLEAN_LOAD = textwrap.dedent(
    """
    import json
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    folder = {folder!r}
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert "hfgpt" not in type(model).__module__, type(model).__module__
    ids = torch.tensor({ids!r})
    with torch.no_grad():
        logits = model(ids).logits
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    text = generator("the", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    with open({result!r}, "w") as f:
        json.dump({{"logits": logits.tolist(), "class": type(model).__name__, "text": text}}, f)
    """
)


def load_in_clean_process(folder, ids) -> dict:
    """Load ``folder`` with ``trust_remote_code=True`` in a fresh interpreter where ``import hfgpt`` fails; return
    its logits for ``ids``, the model class name and a short pipeline() generation."""
    result_path = os.path.join(os.fspath(folder), "..", f"clean-load-{os.path.basename(os.fspath(folder))}.json")
    script = CLEAN_LOAD.format(folder=os.fspath(folder), ids=ids, result=result_path)
    run_without_hfgpt(script, cwd=os.path.dirname(os.fspath(folder)))
    with open(result_path) as f:
        return json.load(f)
