"""Publishing: the exact upload folder, its model card, the dry run, and a clean-process load of that folder."""

import json

import pytest
import torch
import yaml
from conftest import load_in_clean_process, tiny_config

from hfgpt import GPTScratchForCausalLM, GPTScratchForSequenceClassification
from hfgpt.cli import main as cli
from hfgpt.errors import HfgptInputError
from hfgpt.hub import build_upload_folder, push_to_hub
from hfgpt.tokenization import train_bpe_tokenizer


def card_metadata(folder) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_corpus_module):
    """A folder as the pretraining recipe leaves it: model, tokenizer, metrics."""
    folder = tmp_path_factory.mktemp("run")
    tokenizer = train_bpe_tokenizer(tiny_corpus_module, vocab_size=300)
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(vocab_size=len(tokenizer), initializer_range=0.2)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "all_results.json").write_text(json.dumps({"eval_loss": 3.5, "eval_perplexity": 33.1, "epoch": 1.0}))
    return folder, model


@pytest.fixture(scope="module")
def tiny_corpus_module():
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)[:30]]


def test_upload_folder_loads_in_a_clean_process(run_folder, tmp_path):
    folder, model = run_folder
    out = build_upload_folder(str(folder), "someone/hfgpt-tiny", str(tmp_path / "upload"))
    files = set(p.name for p in (tmp_path / "upload").iterdir())
    assert {"README.md", "config.json", "model.safetensors", "modeling_gpt_scratch.py",
            "configuration_gpt_scratch.py", "tokenizer.json", "all_results.json"} <= files
    meta = card_metadata(tmp_path / "upload")
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert "hfgpt" in meta["tags"] and {"loss", "perplexity"} <= set(meta["metrics"])
    card = (tmp_path / "upload" / "README.md").read_text()
    assert 'from_pretrained("someone/hfgpt-tiny", trust_remote_code=True)' in card and "| `eval_loss` | 3.5 |" in card
    # without hfgpt installed, AutoTokenizer reads config.json's auto_map too and would stop to ask
    assert 'AutoTokenizer.from_pretrained("someone/hfgpt-tiny", trust_remote_code=True)' in card
    ids = [[3, 8, 100, 42, 7]]
    result = load_in_clean_process(out, ids)
    with torch.no_grad():
        assert torch.allclose(torch.tensor(result["logits"]), model(torch.tensor(ids)).logits, atol=1e-5)


def test_dry_run_lists_the_files_and_uploads_nothing(run_folder, tmp_path, capsys):
    folder, _ = run_folder
    files = push_to_hub(str(folder), "someone/hfgpt-tiny", out_dir=str(tmp_path / "up"), dry_run=True)
    assert "model.safetensors" in files and "README.md" in files
    assert cli(["push", str(folder), "someone/hfgpt-tiny", "--dry-run", "--out", str(tmp_path / "up2")]) == 0
    out = capsys.readouterr().out
    assert "Would upload" in out and "modeling_gpt_scratch.py" in out


def test_classifier_card_and_adapter_card(tmp_path, tiny_corpus_module):
    config = tiny_config(num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    GPTScratchForSequenceClassification(config).save_pretrained(tmp_path / "clf")
    build_upload_folder(str(tmp_path / "clf"), "someone/spam", str(tmp_path / "clf-up"), datasets=["ucirvine/sms_spam"])
    meta = card_metadata(tmp_path / "clf-up")
    assert meta["pipeline_tag"] == "text-classification" and meta["datasets"] == ["ucirvine/sms_spam"]
    assert "ham, spam" in (tmp_path / "clf-up" / "README.md").read_text()
    assert not (tmp_path / "clf-up" / "tokenizer.json").exists()  # the model folder has no tokenizer

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "task_type": "SEQ_CLS", "r": 8, "base_model_name_or_path": "someone/hfgpt-small"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    build_upload_folder(str(adapter), "someone/spam-lora", str(tmp_path / "adapter-up"))
    meta = card_metadata(tmp_path / "adapter-up")
    assert meta["library_name"] == "peft" and meta["base_model"] == "someone/hfgpt-small"


def test_bad_folders(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="No model folder"):
        build_upload_folder(str(tmp_path / "missing"), "a/b", str(tmp_path / "out"))
    with pytest.raises(HfgptInputError, match="no config.json"):
        build_upload_folder(str(tmp_path), "a/b", str(tmp_path / "out"))
    with pytest.raises(HfgptInputError, match="must differ from the model folder"):
        build_upload_folder(str(tmp_path), "a/b", str(tmp_path))
    assert cli(["push", str(tmp_path), "a/b", "--dry-run"]) == 2  # `hfgpt push` on a folder that is no model
    err = capsys.readouterr().err
    assert "no config.json" in err and err.count("\n") == 1


def test_recipes_take_the_push_from_the_trainer(run_folder, tmp_path):
    """--push_to_hub: the Trainer must not create a repo or upload the bare folder at each save; the recipe pushes once
    at the end through hfgpt.hub (dry run here: no network)."""
    from transformers import Trainer, TrainingArguments

    from hfgpt.hub import defer_trainer_push, push_run

    folder, model = run_folder
    args = TrainingArguments(output_dir=str(tmp_path / "my-run"), push_to_hub=True, report_to="none")
    assert defer_trainer_push(args) is True and args.push_to_hub is False
    Trainer(model=model, args=args)  # with push_to_hub still set this would try to create a Hub repo (offline: error)
    files = push_run(str(folder), args, dry_run=True, out_dir=str(tmp_path / "up"))
    assert "README.md" in files and "model.safetensors" in files
    assert "someone" not in (tmp_path / "up" / "README.md").read_text()
    assert 'from_pretrained("my-run", trust_remote_code=True)' in (tmp_path / "up" / "README.md").read_text()
    assert defer_trainer_push(TrainingArguments(output_dir=str(tmp_path / "x"), report_to="none")) is False


def test_every_run_artefact_reaches_the_upload_folder(run_folder, tmp_path):
    """One list (hfgpt.training.outputs.RUN_ARTEFACTS) names what a run writes beside its model; the upload copies
    each of them, byte for byte, and the recipes' own file names are on it."""
    import shutil

    from hfgpt.evaluation.lm_eval import RESULTS_FILE
    from hfgpt.training.finetune_instructions import RESPONSES_FILE
    from hfgpt.training.outputs import RUN_ARTEFACTS

    assert {"precision_recall.png", "natural_confusion_matrix.png", "confusion_matrix.png", "data_report.json",
            "loss_curve.png", RESULTS_FILE, RESPONSES_FILE} <= set(RUN_ARTEFACTS)
    folder = tmp_path / "run"
    shutil.copytree(run_folder[0], folder)
    for name in RUN_ARTEFACTS:
        if name != "all_results.json":
            (folder / name).write_text(json.dumps({"file": name}) if name.endswith(".json") else f"bytes of {name}")
    (folder / "notes.txt").write_text("not a run artefact")
    build_upload_folder(str(folder), "someone/hfgpt-tiny", str(tmp_path / "upload"))
    for name in RUN_ARTEFACTS:
        assert (tmp_path / "upload" / name).read_bytes() == (folder / name).read_bytes(), name
    assert not (tmp_path / "upload" / "notes.txt").exists()
