"""GGUF export: every tensor and metadata field read back with gguf's own reader, the instruction folder's chat
template and Modelfile, refusals, the ``hfgpt export gguf`` command in a subprocess, and (when llama-cpp-python is
installed) the file run by llama.cpp itself."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, alpaca_tokenizer, pydoc_topics, save_tiny_checkpoint

from hfgpt import convert
from hfgpt.cli import main
from hfgpt.errors import HfgptInputError
from hfgpt.export import export_gguf

gguf = pytest.importorskip("gguf")

# GGUF name -> our state-dict key (written out here, independently of the exporter's path through GPT-2's names).
TOP = {"token_embd.weight": "model.embeddings.tok_emb.weight",
       "position_embd.weight": "model.embeddings.pos_emb.weight", "output_norm.weight": "model.final_norm.weight", "output_norm.bias": "model.final_norm.bias",
       "output.weight": "lm_head.weight"}
BLOCK = {"attn_norm": "norm1", "attn_qkv": "att.qkv", "attn_output": "att.out_proj", "ffn_norm": "norm2",
         "ffn_up": "ff.fc_in", "ffn_down": "ff.fc_out"}


def _expected_tensors(model) -> dict:
    c, ours = model.config, model.state_dict()
    expected = {name: ours[key] for name, key in TOP.items() if not (name == "output.weight" and c.tie_word_embeddings)}
    for i in range(c.n_layer):
        for gguf_part, our_part in BLOCK.items():
            for kind in ("weight", "bias"):
                key = f"model.trf_blocks.{i}.{our_part}.{kind}"
                expected[f"blk.{i}.{gguf_part}.{kind}"] = ours.get(key, torch.zeros(3 * c.n_embd))  # no qkv bias
    for name in ("token_embd.weight", "output.weight"):  # padded vocabulary rows are not exported
        if name in expected:
            expected[name] = expected[name][: c.vocab_size]
    return {name: t.detach().float().numpy() for name, t in expected.items()}


def _fields(reader) -> dict:
    return {name: field.contents() for name, field in reader.fields.items()}


@pytest.fixture(scope="module")
def bpe():
    from hfgpt.tokenization import train_bpe_tokenizer

    return train_bpe_tokenizer(pydoc_topics(20), vocab_size=300, model_max_length=64)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, bpe):
    """Two tiny models: tied, no qkv bias, vocabulary padded 300 -> 320; and untied with a qkv bias."""
    root = tmp_path_factory.mktemp("gguf-models")
    padded = save_tiny_checkpoint(root / "padded", bpe, n_embd=32, n_positions=64, pad_vocab_size_multiple=64)
    untied = save_tiny_checkpoint(root / "untied", bpe, n_embd=32, n_positions=64, qkv_bias=True,
                                  tie_word_embeddings=False)
    return {"padded": padded, "untied": untied}


def test_to_hf_gpt2_writes_n_ctx(tmp_path, folders):
    _, model = folders["padded"]
    convert.to_hf_gpt2(model).save_pretrained(tmp_path)
    with open(tmp_path / "config.json") as f:
        config = json.load(f)
    assert config["n_ctx"] == config["n_positions"] == 64  # llama.cpp's converter reads n_ctx


@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("kind", ["padded", "untied"])
def test_gguf_round_trip(tmp_path, folders, bpe, kind, outtype):
    folder, model = folders[kind]
    path = export_gguf(folder, tmp_path / "m.gguf", outtype=outtype, progress=False)
    reader = gguf.GGUFReader(path)
    c = model.config
    assert c.padded_vocab_size == (320 if kind == "padded" else 300)

    expected = _expected_tensors(model)
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(expected)  # output.weight only when untied (llama.cpp reuses token_embd)
    matrix_type = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[outtype]
    for name, want in expected.items():
        t = tensors[name]
        small = want.ndim == 1 or name.startswith("position_embd")
        assert t.tensor_type.name == ("F32" if small else matrix_type), name
        got = gguf.quants.dequantize(t.data, t.tensor_type)
        assert got.shape == want.shape, name
        if t.tensor_type.name == "F32":
            np.testing.assert_array_equal(got, want, err_msg=name)
        elif t.tensor_type.name == "F16":
            np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32), err_msg=name)
        else:  # Q8_0: blocks of 32 with one scale each, error at most half a step of the block's max / 127
            assert np.abs(got - want).max() <= np.abs(want).max() / 127, name
            assert np.abs(got - want).max() > 0, name

    f = _fields(reader)
    assert f["general.architecture"] == "gpt2" and f["general.file_type"] == {"f32": 0, "f16": 1, "q8_0": 7}[outtype]
    assert (f["gpt2.context_length"], f["gpt2.embedding_length"], f["gpt2.block_count"],
            f["gpt2.attention.head_count"], f["gpt2.feed_forward_length"]) == (64, 32, 2, 2, 128)
    assert f["gpt2.attention.layer_norm_epsilon"] == pytest.approx(c.layer_norm_epsilon)
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "gpt-2"
    assert f["tokenizer.ggml.tokens"] == bpe.convert_ids_to_tokens(list(range(300)))  # 300 real rows, not 320
    assert f["tokenizer.ggml.token_type"][0] == gguf.TokenType.CONTROL  # <|endoftext|>
    assert set(f["tokenizer.ggml.token_type"][1:]) == {gguf.TokenType.NORMAL}
    merges = json.loads(bpe.backend_tokenizer.to_str())["model"]["merges"]
    assert f["tokenizer.ggml.merges"] == [" ".join(pair) for pair in merges]
    assert f["tokenizer.ggml.bos_token_id"] == f["tokenizer.ggml.eos_token_id"] == bpe.eos_token_id
    assert "tokenizer.chat_template" not in f
    assert not os.path.exists(tmp_path / "Modelfile") and os.listdir(tmp_path) == ["m.gguf"]


def test_instruction_folder_gets_chat_template_and_modelfile(tmp_path):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    tokenizer = alpaca_tokenizer()
    folder, model = save_tiny_checkpoint(tmp_path / "sft", tokenizer, n_embd=32, n_positions=96)
    path = export_gguf(folder, tmp_path / "out" / "sft.gguf", outtype="q8_0", progress=False)
    template = _fields(gguf.GGUFReader(path))["tokenizer.chat_template"]
    # transformers' own {% generation %} tag is gone: llama-cpp-python's jinja2 does not know it
    assert "{% generation %}" in tokenizer.chat_template and "% generation" not in template
    messages = [{"role": "user", "content": "Name a primary color."}, {"role": "assistant", "content": "Red."},
                {"role": "user", "content": "Translate to French.", "input": "Thank you"}]
    # rendered as llama-cpp-python's Jinja2ChatFormatter renders a GGUF's template
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    for turns in (messages, [{"role": "system", "content": "Be brief."}] + messages[:1]):
        ours = env.from_string(template).render(messages=turns, add_generation_prompt=True, eos_token="<|endoftext|>")
        assert ours == tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        assert ours.endswith("\n\n### Response:\n")

    with open(tmp_path / "out" / "Modelfile") as f:
        modelfile = f.read()
    assert modelfile.startswith("FROM ./sft.gguf\n")
    assert 'PARAMETER stop "<|endoftext|>"' in modelfile and 'PARAMETER stop "### "' in modelfile
    assert "PARAMETER num_ctx 96" in modelfile  # the model's context, not Ollama's default
    assert "### Instruction:\n{{ .Content }}" in modelfile and "{{ else }}Below is an instruction" in modelfile


def test_q8_0_keeps_rows_that_are_not_a_multiple_of_32_in_f16(tmp_path, bpe):
    folder, model = save_tiny_checkpoint(tmp_path / "w48", bpe, n_embd=48, n_positions=64)
    path = export_gguf(folder, tmp_path / "w48.gguf", outtype="q8_0", progress=False)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types["blk.0.attn_qkv.weight"] == types["token_embd.weight"] == "F16"  # rows of 48
    assert types["blk.0.ffn_down.weight"] == "Q8_0"  # rows of n_inner = 192


def _tokenizer_with(pre_tokenizer):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(97 + i): i for i in range(26)} | {"<|endoftext|>": 26}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizer
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def test_refusals_name_the_problem_and_write_nothing(tmp_path, folders, bpe):
    from tokenizers import pre_tokenizers

    folder, model = folders["padded"]
    out = tmp_path / "x.gguf"
    cases = [
        (dict(tokenizer=_tokenizer_with(pre_tokenizers.Whitespace())), "not GPT-2's byte-level BPE"),
        (dict(tokenizer=_tokenizer_with(pre_tokenizers.ByteLevel(add_prefix_space=True))), "prefix"),
        (dict(outtype="q4_0"), "outtype must be one of f32, f16, q8_0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(HfgptInputError, match=message):
            export_gguf(folder, out, progress=False, **kwargs)
    with pytest.raises(HfgptInputError, match="pass tokenizer="):
        export_gguf(model, out, progress=False)
    from hfgpt.tokenization import train_bpe_tokenizer

    larger = train_bpe_tokenizer(pydoc_topics(20), vocab_size=400)  # more ids than the model's 300 rows
    with pytest.raises(HfgptInputError, match="vocab_size=300: it is not this model's tokenizer"):
        export_gguf(folder, out, tokenizer=larger, progress=False)
    assert os.listdir(tmp_path) == []


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "hfgpt.cli", "export", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_export_gguf_and_bad_inputs(tmp_path, folders, capsys):
    """The entry point in a subprocess (each costs seconds of imports), the bad inputs through ``main``."""
    folder, _ = folders["untied"]
    out = tmp_path / "model.gguf"
    done = _cli("gguf", folder, str(out), "--outtype", "q8_0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Wrote {out} (q8_0" in done.stdout and "llama-server -m" in done.stdout
    assert _fields(gguf.GGUFReader(out))["general.file_type"] == 7
    before = out.read_bytes()

    bare = tmp_path / "bare"
    bare.mkdir()
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    (no_tokenizer / "config.json").write_text(open(os.path.join(folder, "config.json")).read())
    bad = [
        (["gguf", folder, str(out)], f"{str(out)!r} exists: choose another name or pass --overwrite."),
        (["gguf", str(tmp_path / "missing"), str(tmp_path / "a.gguf")], "missing' is not found: pass the folder"),
        (["gguf", str(bare), str(tmp_path / "b.gguf")], "has no config.json: not a saved model folder"),
        (["gguf", str(no_tokenizer), str(tmp_path / "c.gguf")], "has no tokenizer files, and a GGUF carries the "
         "vocabulary: pass the model's tokenizer (tokenizer= / --tokenizer"),
        (["gguf", folder, str(bare)], "is a folder; give the .gguf file to write"),
        (["onnx", folder, str(out)], "is a file; give a folder"),
    ]
    capsys.readouterr()
    for args, message in bad:
        assert main(["export", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("hfgpt export: error: ") and err.count("\n") == 1 and message in err, err
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["bare", "model.gguf", "no-tokenizer"]
    assert os.listdir(bare) == []


# ------------------------------------------------------------------------------------- llama.cpp itself (optional)
def test_llama_cpp_runs_the_gguf_like_hfgpt(tmp_path, folders):
    llama_cpp = pytest.importorskip("llama_cpp")
    folder, model = folders["untied"]
    path = export_gguf(folder, tmp_path / "f32.gguf", outtype="f32", progress=False)
    llm = llama_cpp.Llama(model_path=path, n_ctx=model.config.n_positions, logits_all=True, verbose=False,
                          n_threads=2)
    prompt = [5, 17, 42, 99, 7, 250, 3]
    llm.eval(prompt)
    ours = model(torch.tensor([prompt])).logits[0].detach().numpy()
    theirs = np.asarray(llm.scores[: len(prompt)])
    assert np.abs(theirs - ours).max() < 1e-3

    greedy = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False)[0].tolist()
    tokens = list(prompt)
    llm.reset()
    llm.eval(tokens)
    while len(tokens) < len(prompt) + 20 and tokens[-1] != model.config.eos_token_id or len(tokens) == len(prompt):
        tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(tokens[-1:])
    llm.close()  # before interpreter shutdown, where llama-cpp-python's finaliser fails
    assert tokens == greedy and len(greedy) > len(prompt)
