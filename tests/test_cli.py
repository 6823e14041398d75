"""The ``hfgpt`` command line: convert and push end to end, one-line errors for bad input, tracebacks for bugs."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT
from reference_models import assert_close, book_model, logits, tiny_gpt2
from transformers import AutoModelForCausalLM, GPT2LMHeadModel

from hfgpt import GPTScratchForCausalLM, convert
from hfgpt.cli import main


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(99)} | {"<|endoftext|>": 99}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def test_cli_convert_gpt2_folder_and_back(tmp_path, capsys):
    import hfgpt  # noqa: F401  (AutoModelForCausalLM knows gpt_scratch)

    gpt2 = tiny_gpt2(tie=False)
    gpt2.save_pretrained(tmp_path / "gpt2")
    _tokenizer().save_pretrained(tmp_path / "gpt2")
    assert main(["convert", "--from", "gpt2", str(tmp_path / "gpt2"), str(tmp_path / "ours")]) == 0
    assert "untied output head" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "ours" / "tokenizer.json")
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert isinstance(ours, GPTScratchForCausalLM) and not ours.config.tie_word_embeddings
    assert_close(logits(ours), logits(gpt2), 1e-4)

    assert main(["convert", "--to", "gpt2", str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert isinstance(back, GPT2LMHeadModel) and os.path.isfile(tmp_path / "back" / "tokenizer.json")
    assert_close(logits(back), logits(gpt2), 1e-4)


def test_cli_gpt2_folder_without_tokenizer_writes_none(tmp_path, capsys):
    # transformers 5's AutoTokenizer would build a 1-token GPT2Tokenizer from config.json alone: we must not save it.
    tiny_gpt2().save_pretrained(tmp_path / "gpt2")
    assert main(["convert", "--from", "gpt2", str(tmp_path / "gpt2"), str(tmp_path / "ours")]) == 0
    assert "no tokenizer found" in capsys.readouterr().out
    assert not {"tokenizer.json", "vocab.json", "tokenizer_config.json"} & set(os.listdir(tmp_path / "ours"))


def test_cli_pads_the_vocabulary_and_converts_back_exactly(tmp_path):
    gpt2 = tiny_gpt2()  # vocabulary 100 (see tiny_gpt2): padded to 128 rows
    gpt2.save_pretrained(tmp_path / "gpt2")
    dest = str(tmp_path / "ours")
    assert main(["convert", "--from", "gpt2", "--pad-vocab-multiple", "64", str(tmp_path / "gpt2"), dest]) == 0
    ours = AutoModelForCausalLM.from_pretrained(dest)
    assert ours.config.vocab_size == gpt2.config.vocab_size and ours.lm_head.weight.shape[0] % 64 == 0
    assert ours.lm_head.weight.shape[0] > gpt2.config.vocab_size
    assert_close(logits(ours), logits(gpt2), 1e-4)
    assert main(["convert", "--to", "gpt2", dest, str(tmp_path / "back")]) == 0
    back = GPT2LMHeadModel.from_pretrained(tmp_path / "back")
    assert back.config.vocab_size == gpt2.config.vocab_size
    assert torch.equal(back.transformer.wte.weight, gpt2.transformer.wte.weight)
    assert main(["convert", "--to", "gpt2", "--pad-vocab-multiple", "64", dest, str(tmp_path / "x")]) == 2


def test_cli_convert_book_checkpoint(tmp_path):
    import hfgpt  # noqa: F401

    book = book_model(qkv_bias=True)
    torch.save(book.state_dict(), tmp_path / "model.pth")
    _tokenizer().save_pretrained(tmp_path / "tok")
    argv = ["convert", "--from", "book", str(tmp_path / "model.pth"), str(tmp_path / "ours"), "--n-head", "4"]
    assert main(argv + ["--tokenizer", str(tmp_path / "tok")]) == 0
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert ours.config.n_head == 4 and ours.config.qkv_bias and not ours.config.tie_word_embeddings
    assert os.path.isfile(tmp_path / "ours" / "tokenizer.json")
    assert_close(logits(ours), logits(book), 1e-5)

    # Straight from the book to GPT-2.
    assert main(["convert", "--from", "book", "--to", "gpt2", str(tmp_path / "model.pth"), str(tmp_path / "g"),
                 "--n-head", "4"]) == 0  # fmt: skip
    gpt2 = GPT2LMHeadModel.from_pretrained(tmp_path / "g").eval()
    assert_close(logits(gpt2), logits(book), 1e-4)


def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys):
    state = book_model().state_dict()
    torch.save(state, tmp_path / "model.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("final_norm")}, tmp_path / "broken.pth")
    cases = [
        (["--from", "book", str(tmp_path / "nope.pth"), str(tmp_path / "o")], "book checkpoint not found"),
        (["--from", "book", str(tmp_path / "model.pth"), str(tmp_path / "o")], "--n-head N"),
        (["--from", "book", str(tmp_path / "broken.pth"), str(tmp_path / "o"), "--n-head", "4"],
         "missing keys: final_norm.scale, final_norm.shift"),
        (["--from", "gpt2", str(tmp_path / "no" / "such" / "dir"), str(tmp_path / "o")], "GPT-2 source not found"),
        (["--to", "gpt2", str(tmp_path / "nope"), str(tmp_path / "o")], "hfgpt model folder not found"),
        ([str(tmp_path / "model.pth"), str(tmp_path / "o")], "give --from"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(["convert", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "o")


def test_cli_entry_point_missing_file_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hfgpt.cli", "convert", "--from", "book", str(tmp_path / "x.pth"), str(tmp_path / "o")],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "book checkpoint not found" in result.stderr


def test_cli_bad_tokenizer_is_one_line_and_writes_nothing(tmp_path, capsys):
    tiny_gpt2().save_pretrained(tmp_path / "gpt2")
    argv = ["convert", "--from", "gpt2", str(tmp_path / "gpt2"), str(tmp_path / "o"), "--tokenizer", str(tmp_path)]
    capsys.readouterr()  # save_pretrained's progress bar
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no tokenizer found at" in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("a bug, not bad input")])
def test_cli_internal_failures_keep_their_traceback(tmp_path, monkeypatch, error):
    torch.save(book_model().state_dict(), tmp_path / "model.pth")

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(convert, "from_book_checkpoint", broken)
    with pytest.raises(type(error), match=str(error)):
        main(["convert", "--from", "book", str(tmp_path / "model.pth"), str(tmp_path / "o"), "--n-head", "4"])


def test_cli_entry_point_internal_failure_exits_1_with_traceback(tmp_path):
    script = (
        "import sys, hfgpt.convert as c\n"
        "def broken(*a, **k): raise RuntimeError('internal failure')\n"
        "c.to_hf_gpt2 = broken\n"
        "from hfgpt.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "convert", "--to", "gpt2", str(tmp_path), str(tmp_path / "o")],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: internal failure" in result.stderr


def test_cli_push_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["push", str(tmp_path / "missing"), "a/b", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model folder not found" in err and err.count("\n") == 1
