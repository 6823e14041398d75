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


@pytest.fixture
def tiny_corpus() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)[:40]]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Runs in a fresh interpreter where `import hfgpt` fails: the saved folder must carry everything.
CLEAN_LOAD = textwrap.dedent(
    """
    import json, sys
    sys.modules["hfgpt"] = None  # any import of hfgpt now raises ImportError
    sys.path = [p for p in sys.path if p not in ("", {repo!r})]
    try:
        import hfgpt
        raise SystemExit("hfgpt was importable")
    except ImportError:
        pass
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
    script = CLEAN_LOAD.format(repo=REPO_ROOT, folder=os.fspath(folder), ids=ids, result=result_path)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=os.path.dirname(os.fspath(folder)), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(result_path) as f:
        return json.load(f)
