"""ONNX export: onnxruntime's logits equal hfgpt's at two batch/sequence shapes (one of them padded), the folder
holds config and tokenizer, and an existing model.onnx is kept."""

import os

import numpy as np
import pytest
import torch
from conftest import pydoc_topics, save_tiny_checkpoint

from hfgpt.errors import HfgptInputError
from hfgpt.export import export_onnx

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from hfgpt.tokenization import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("onnx")
    tokenizer = train_bpe_tokenizer(pydoc_topics(20), vocab_size=300, model_max_length=64)
    folder, model = save_tiny_checkpoint(root / "model", tokenizer, n_embd=32, n_positions=64,
                                         pad_vocab_size_multiple=64)
    path = export_onnx(folder, root / "onnx")
    return path, model


def test_onnxruntime_logits_match_at_two_shapes(exported):
    path, model = exported
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    for batch, length, padding in ((1, 5, 0), (3, 64, 10)):  # the export traced (2, 8)
        ids = torch.randint(0, model.config.vocab_size, (batch, length))
        mask = torch.ones_like(ids)
        mask[0, length - padding:] = 0  # right padding in the first row
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask).logits.numpy()
        got = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        assert got.shape == (batch, length, 300)  # the real vocabulary, not the padded 320 rows
        assert np.abs(got - want).max() < 1e-4


def test_folder_holds_config_and_tokenizer_and_is_not_overwritten(exported):
    from transformers import AutoConfig, AutoTokenizer

    path, model = exported
    out_dir = os.path.dirname(path)
    assert AutoConfig.from_pretrained(out_dir).n_positions == model.config.n_positions
    assert len(AutoTokenizer.from_pretrained(out_dir)) == 300
    before = os.path.getmtime(path)
    with pytest.raises(HfgptInputError, match="model.onnx' exists: choose another folder or pass overwrite=True"):
        export_onnx(model, out_dir)
    assert os.path.getmtime(path) == before
