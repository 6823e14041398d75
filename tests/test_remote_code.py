"""Saved folders: Auto classes, remote code in a process without hfgpt, and pipeline() for both tasks."""

import json

import pytest
import torch
from conftest import load_in_clean_process, save_tiny_checkpoint, tiny_config
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, pipeline

from hfgpt import GPTScratchForCausalLM, GPTScratchForSequenceClassification, GPTScratchModel
from hfgpt.tokenization import train_bpe_tokenizer

@pytest.fixture(scope="module")
def tokenizer():
    from pydoc_data.topics import topics

    return train_bpe_tokenizer([topics[k] for k in sorted(topics)[:60]], vocab_size=400, model_max_length=64)


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("lm")
    return folder, save_tiny_checkpoint(folder, tokenizer, initializer_range=0.2)[1]


def test_saved_folder_has_code_and_full_auto_map(lm_folder):
    folder, _ = lm_folder
    assert (folder / "modeling_gpt_scratch.py").exists() and (folder / "configuration_gpt_scratch.py").exists()
    # save_pretrained copies the modeling file's relative imports too (transformers' get_relative_import_files)
    assert (folder / "fast_paths.py").exists() and (folder / "errors.py").exists()
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForCausalLM"] == "modeling_gpt_scratch.GPTScratchForCausalLM"
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification"}


def test_auto_classes_resolve_to_hfgpt(lm_folder):
    folder, model = lm_folder
    assert type(AutoConfig.from_pretrained(folder)).__name__ == "GPTScratchConfig"
    assert isinstance(AutoModel.from_pretrained(folder), GPTScratchModel)
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert isinstance(loaded, GPTScratchForCausalLM)
    x = torch.randint(0, model.config.vocab_size, (2, 9))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    clf = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert isinstance(clf, GPTScratchForSequenceClassification) and clf.score.out_features == 3


def test_remote_code_loads_in_a_process_without_hfgpt(lm_folder):
    folder, model = lm_folder
    ids = [[5, 9, 33, 120, 7, 1], [3, 3, 2, 90, 64, 11]]
    result = load_in_clean_process(folder, ids)
    assert result["class"] == "GPTScratchForCausalLM"
    with torch.no_grad():
        expected = model(torch.tensor(ids)).logits
    assert torch.allclose(torch.tensor(result["logits"]), expected, atol=1e-5)
    assert result["text"].startswith("the") and len(result["text"]) > len("the")


def test_text_generation_pipeline(lm_folder, tokenizer):
    folder, model = lm_folder
    generator = pipeline("text-generation", model=str(folder))
    out = generator("The meaning of", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    ids = tokenizer("The meaning of", return_tensors="pt").input_ids
    expected = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out == tokenizer.decode(expected[0], skip_special_tokens=True)


def test_text_classification_pipeline(tmp_path, tokenizer):
    eos = tokenizer.eos_token_id
    config = tiny_config(vocab_size=len(tokenizer), eos_token_id=eos, pad_token_id=eos, bos_token_id=eos,
                         num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    model = GPTScratchForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    classify = pipeline("text-classification", model=str(tmp_path), top_k=None)
    results = classify(["WINNER! Claim your prize now", "see you at lunch?"])
    for scores in results:
        assert {s["label"] for s in scores} == {"ham", "spam"}
        assert abs(sum(s["score"] for s in scores) - 1) < 1e-5
    # the same probabilities as the model on the tokenized text
    enc = tokenizer("see you at lunch?", return_tensors="pt")
    with torch.no_grad():
        probs = model(**enc).logits.softmax(-1)[0]
    spam = next(s["score"] for s in results[1] if s["label"] == "spam")
    assert abs(spam - probs[1].item()) < 1e-5


def test_remote_code_model_has_the_fast_paths(lm_folder):
    """The folder's own copy of fast_paths.py is attached: the remote-code model decodes and trains as fast."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    folder, _ = lm_folder
    remote_class = get_class_from_dynamic_module("modeling_gpt_scratch.GPTScratchForCausalLM", folder)
    loaded = remote_class.from_pretrained(folder)
    assert type(loaded).__module__.startswith("transformers_modules")
    assert loaded.lm_head.forward.func.__module__ == type(loaded).__module__.replace("modeling_gpt_scratch",
                                                                                          "fast_paths")
    assert loaded.loss_from_logits.func.__name__ == "chunked_loss_from_logits"
