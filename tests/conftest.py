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
