"""lm-evaluation-harness on a saved folder: hfgpt's perplexity tasks, the recipe's --lm_eval_tasks, bad input.

lm-eval runs in-process on a tiny model (2 layers, 32 wide, 32 positions, a BPE of ~300 tokens) whose weights are
scaled up, so that its predictions depend on the context and a windowing mistake changes the numbers. The command
line (`lm_eval --model hf ...`) indexes lm-eval's ~15,000 built-in tasks at start-up (~20 s here) and is checked by
hand (README); the in-process path takes hfgpt's folder alone.
"""

from __future__ import annotations

import json
import math
import re
import sys

import pytest
import torch
from conftest import pydoc_topics, tiny_config
from test_pretrain import recipe_main  # noqa: F401 -- the fixture: recipes/pretrain.py's main

pytest.importorskip("lm_eval")

CONTEXT = 32
TINY_RUN = ["--preset", "tiny", "--config_overrides", "n_layer=2,n_embd=32,n_head=2", "--vocab_size", "300",
            "--max_length", "32", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
            "--sample_max_new_tokens", "4", "--dataloader_num_workers", "0", "--report_to", "none",
            "--disable_tqdm", "true", "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A saved tiny model with weights of std 0.3 (not 0.02): its next-token distribution depends on the context."""
    from hfgpt import GPTScratchForCausalLM
    from hfgpt.tokenization import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(pydoc_topics(20), vocab_size=300, model_max_length=CONTEXT)
    eos = tokenizer.eos_token_id
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(vocab_size=len(tokenizer), n_embd=32, n_positions=CONTEXT,
                                              bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    path = tmp_path_factory.mktemp("lm-eval-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path), model, tokenizer


def direct_nll(model, tokenizer, text: str) -> tuple[float, int]:
    """Summed next-token NLL of ``text``'s tokens and their count, computed here: the eos token predicts the first
    token, then windows of ``CONTEXT`` inputs each predict ``CONTEXT`` new tokens, the last window ending on the
    last token (so it reaches back into tokens already scored). One batch of all the windows."""
    tokens = torch.tensor([tokenizer.eos_token_id, *tokenizer.encode(text, verbose=False)])
    windows, kept = [], []  # (first input, end) and how many of the window's last predictions are new
    for start in range(1, len(tokens), CONTEXT):  # this window predicts tokens[start:end]
        end = min(start + CONTEXT, len(tokens))
        windows.append(max(0, end - 1 - CONTEXT))
        kept.append((end, end - start))
    inputs = torch.stack([tokens[first : first + min(CONTEXT, len(tokens) - 1)] for first in windows])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(inputs).logits.double(), dim=-1)
    total = 0.0
    for row, (first, (end, new)) in enumerate(zip(windows, kept)):
        targets = tokens[first + 1 : end]
        total -= logprobs[row, torch.arange(len(targets)), targets][-new:].sum().item()
    return total, len(tokens) - 1


@pytest.fixture(scope="module")
def results(folder, tmp_path_factory):
    """Both tasks in one lm-eval run: hfgpt_heldout over short (one window) and long documents, hfgpt_english."""
    from hfgpt.evaluation.lm_eval import run_lm_eval, write_perplexity_task

    documents = ["Hello, world.", "The return value of a function.", pydoc_topics(30)[25][:600], "", "x = 1"]
    tasks = write_perplexity_task(documents, tmp_path_factory.mktemp("tasks"))
    return documents, run_lm_eval(folder[0], ["hfgpt_heldout", "hfgpt_english"], include_path=tasks, batch_size=64)


def test_token_perplexity_equals_the_models_own_nll(folder, results):
    from hfgpt.evaluation.lm_eval import TASKS_DIR

    _, model, tokenizer = folder
    documents, output = results
    english = [json.loads(line)["text"] for line in (TASKS_DIR / "hfgpt_english.jsonl").read_text().splitlines()]
    for task, texts in (("hfgpt_heldout", [d for d in documents if d]), ("hfgpt_english", english)):
        sums = [direct_nll(model, tokenizer, text) for text in texts]
        nll, n_tokens = sum(s for s, _ in sums), sum(n for _, n in sums)
        assert n_tokens > 3 * CONTEXT  # the long documents take several windows
        metrics = output["results"][task]
        assert metrics["token_perplexity,none"] == pytest.approx(math.exp(nll / n_tokens), rel=1e-5), task
        n_bytes = sum(len(text.encode()) for text in texts)
        assert metrics["byte_perplexity,none"] == pytest.approx(math.exp(nll / n_bytes), rel=1e-5), task
        assert metrics["bits_per_byte,none"] == pytest.approx(nll / n_bytes / math.log(2), rel=1e-5), task
    assert output["n-samples"]["hfgpt_heldout"]["effective"] == 4  # the empty document is dropped
    # A random model: per-token perplexity is of the order of the vocabulary, far from 1.
    assert 10 < output["results"]["hfgpt_heldout"]["token_perplexity,none"] < 1e6


def test_results_file_and_headline(results, tmp_path):
    from hfgpt.evaluation.lm_eval import headline_metrics, save_results

    _, output = results
    path = save_results(output, tmp_path / "lm_eval_results.json")
    saved = json.loads(path.read_text())
    assert "samples" not in saved and saved["results"]["hfgpt_english"]["token_perplexity,none"] > 1
    headline = headline_metrics(output)
    assert set(headline["hfgpt_english"]) == {"token_perplexity", "word_perplexity", "byte_perplexity",
                                              "bits_per_byte"}




def test_recipe_flag_writes_lm_eval_results(recipe_main, tmp_path, capsys):
    from hfgpt.data import load_text_datasets

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(pydoc_topics(60))[:30_000], encoding="utf-8")
    out = tmp_path / "run"
    (out / "lm_eval_tasks").mkdir(parents=True)  # an earlier model's task folder and results (not a run: no model)
    (out / "lm_eval_tasks" / "old_task.yaml").write_text("task: old_task\n")
    (out / "lm_eval_results.json").write_text("{}")
    recipe_main(["--train_file", str(corpus), "--validation_file", str(corpus), *TINY_RUN, "--output_dir", str(out),
                 "--lm_eval_tasks", "hfgpt_heldout"])
    saved = json.loads((out / "lm_eval_results.json").read_text())
    lm_eval_ppl = saved["results"]["hfgpt_heldout"]["token_perplexity,none"]
    printed = capsys.readouterr().out  # the Trainer's metrics table, as for eval
    assert re.search(rf"lm_eval_hfgpt_heldout_token_perplexity\s+=\s+{round(lm_eval_ppl, 4)}", printed), printed[-2000:]
    recipe_ppl = json.loads((out / "eval_results.json").read_text())["eval_perplexity"]
    # The same text (one document) in windows of 32: lm-eval also scores each window's first token and the tail.
    assert lm_eval_ppl == pytest.approx(recipe_ppl, rel=0.01)
    recipe_bpb = json.loads((out / "eval_results.json").read_text())["eval_bits_per_byte"]  # the same definition
    assert saved["results"]["hfgpt_heldout"]["bits_per_byte,none"] == pytest.approx(recipe_bpb, rel=0.01)
    task_file = out / "lm_eval_tasks" / "hfgpt_heldout.jsonl"
    validation = load_text_datasets(train_files=[str(corpus)], validation_files=[str(corpus)])["validation"]["text"]
    assert [json.loads(line)["text"] for line in task_file.read_text().splitlines()] == validation

    assert not (out / "lm_eval_tasks" / "old_task.yaml").exists()


@pytest.mark.parametrize("flag, message", [
    ("hfgpt_nope", "unknown lm-eval task(s) ['hfgpt_nope']"),
    (" , ", "no lm-eval task named"),
])
def test_bad_task_refused_before_training(flag, message, recipe_main, tmp_path, capsys, monkeypatch):
    import hfgpt.data

    def no_corpus(*args, **kwargs):
        raise AssertionError("the corpus was read before --lm_eval_tasks was checked")

    monkeypatch.setattr(hfgpt.data, "load_text_datasets", no_corpus)
    with pytest.raises(SystemExit) as exit_info:
        recipe_main([*TINY_RUN, "--output_dir", str(tmp_path / "out"), "--lm_eval_tasks", flag])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("pretrain.py: error:")]
    assert len(lines) == 1 and "--lm_eval_tasks" in lines[0] and message in lines[0], err[-2000:]
    assert not (tmp_path / "out").exists()


def test_missing_lm_eval_is_one_clear_error(monkeypatch):
    from hfgpt.errors import HfgptInputError
    from hfgpt.evaluation.lm_eval import check_tasks

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now raises ImportError
    with pytest.raises(HfgptInputError, match=r"pip install 'hfgpt\[lm-eval\]'"):
        check_tasks("hfgpt_english")
