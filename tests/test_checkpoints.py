"""hfgpt.checkpoints: a missing, wrong or broken model folder is refused with one clear line, before any weights load."""

import json

import pytest

from hfgpt.checkpoints import check_weight_files, listing, load_checkpoint_config
from hfgpt.errors import HfgptFileNotFoundError, HfgptInputError


def test_listing_shows_eight_sorted_keys_and_counts_the_rest():
    assert listing(["b", "a"]) == "a, b"
    assert listing(f"k{i}" for i in range(10)) == "k0, k1, k2, k3, k4, k5, k6, k7 ... (+2 more)"


def test_config_problems_name_the_file_and_the_cause(tmp_path):
    with pytest.raises(HfgptFileNotFoundError, match="not a model folder or a reachable Hub id"):
        load_checkpoint_config(tmp_path / "missing")
    with pytest.raises(HfgptInputError, match="has no config.json: not a saved model folder"):
        load_checkpoint_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(HfgptInputError, match=r"is not a JSON object of model settings.*\(--flag\)\.$"):
        load_checkpoint_config(tmp_path, " (--flag)")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-model"}))
    with pytest.raises(HfgptInputError, match="which transformers does not know"):
        load_checkpoint_config(tmp_path)


def test_weight_files_must_exist_and_be_complete(tmp_path):
    with pytest.raises(HfgptInputError, match="holds no weights"):
        check_weight_files(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(HfgptInputError, match="truncated or corrupt"):
        check_weight_files(str(tmp_path))
    check_weight_files("some-user/some-model")  # a Hub id: its files are for from_pretrained to fetch
