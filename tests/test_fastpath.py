"""Fast paths (issue #8): torch.compile, graph breaks, bf16 autocast, the padded vocabulary and fused AdamW under the
Trainer, on CPU with the tiny config. (The CPU loss and decoding copy: test_fast_paths.py.)

torch.compile is checked with two backends: ``aot_eager`` (Dynamo's graph capture + AOTAutograd's joint forward /
backward graph, run with eager kernels) always, and ``inductor`` (the default backend, generated C++ kernels, slow
to compile the first time) where a C++ compiler is installed.
"""

import shutil

import pytest
import torch
from conftest import tiny_config
from transformers import GPT2Config, GPT2LMHeadModel

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM
from hfgpt.convert import from_hf_gpt2, to_hf_gpt2

VOCAB = 100  # not a multiple of 64: padded to 128 rows


def make_lm(attn="sdpa", **overrides) -> GPTScratchForCausalLM:
    torch.manual_seed(0)
    return GPTScratchForCausalLM._from_config(tiny_config(**overrides), attn_implementation=attn)


def batch(vocab=128, shape=(2, 24), seed=1):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def grads(model) -> dict:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def padded_copy(model: GPTScratchForCausalLM, multiple=64) -> GPTScratchForCausalLM:
    """The same weights, with the vocabulary rows padded (the padded rows keep their random initialisation)."""
    config = GPTScratchConfig(**{**model.config.to_dict(), "pad_vocab_size_multiple": multiple})
    padded = GPTScratchForCausalLM._from_config(config, attn_implementation=model.config._attn_implementation)
    state = padded.state_dict()
    for key, tensor in model.state_dict().items():
        state[key][: tensor.shape[0]] = tensor  # the vocabulary tensors keep their random padded rows
    padded.load_state_dict(state)
    return padded.train(model.training)


# ================================================================================================ torch.compile
def _compiled_matches_eager(backend: str, attn: str = "sdpa"):
    torch._dynamo.reset()
    eager, compiled = make_lm(attn).train(), make_lm(attn).train()
    ids = batch()
    eager_loss = eager(input_ids=ids, labels=ids).loss
    eager_loss.backward()
    compiled_loss = torch.compile(compiled, backend=backend, fullgraph=True)(input_ids=ids, labels=ids).loss
    compiled_loss.backward()
    assert abs(compiled_loss.item() - eager_loss.item()) < 1e-4, (compiled_loss.item(), eager_loss.item())
    expected = grads(eager)
    for name, grad in grads(compiled).items():
        assert torch.allclose(grad, expected[name], atol=1e-4, rtol=1e-3), name


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_compiled_aot_eager_matches_eager(attn):
    _compiled_matches_eager("aot_eager", attn)


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile's inductor backend needs a C++ compiler on CPU")
def test_compiled_inductor_matches_eager():
    _compiled_matches_eager("inductor")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_forward_has_no_graph_breaks(attn, training):
    model = make_lm(attn, vocab_size=VOCAB, pad_vocab_size_multiple=64).train(training)
    ids = batch(VOCAB)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(input_ids=ids, labels=ids)
    assert explanation.graph_break_count == 0, [str(reason) for reason in explanation.break_reasons]
    assert explanation.graph_count == 1


# ================================================================================================ bf16 autocast
def test_bf16_autocast_forward_backward_on_cpu():
    model = make_lm().train()
    ids = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=ids)
    assert out.logits.dtype == torch.bfloat16
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    out.loss.backward()
    assert all(torch.isfinite(g).all() for g in grads(model).values())
    fp32_loss = make_lm().train()(input_ids=ids, labels=ids).loss
    assert abs(out.loss.item() - fp32_loss.item()) < 0.05


# ================================================================================================ padded vocabulary
def test_padded_vocab_config():
    config = GPTScratchConfig(pad_vocab_size_multiple=64)
    assert config.vocab_size == 50257 and config.padded_vocab_size == 50304
    assert GPTScratchConfig().padded_vocab_size == 50257
    assert tiny_config(vocab_size=128, pad_vocab_size_multiple=64).padded_vocab_size == 128
    with pytest.raises(ValueError, match="pad_vocab_size_multiple must be None or a positive integer"):
        tiny_config(pad_vocab_size_multiple=0)
    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64)
    assert model.get_input_embeddings().weight.shape == (128, 64)
    assert model.get_output_embeddings().weight.shape == (128, 64)
    assert model.lm_head.weight is model.model.embeddings.tok_emb.weight  # still tied


def test_pretrain_recipe_takes_the_option():
    from hfgpt.training.pretrain import parse_overrides

    overrides = parse_overrides("pad_vocab_size_multiple=64,n_layer=2")
    assert overrides == {"pad_vocab_size_multiple": 64, "n_layer": 2}
    assert GPTScratchConfig.from_preset("tiny", vocab_size=8000, **overrides).padded_vocab_size == 8000
    assert GPTScratchConfig.from_preset("tiny", vocab_size=8001, **overrides).padded_vocab_size == 8064


@pytest.mark.parametrize("loss_path", ["chunked", "transformers"])
def test_padded_loss_and_gradients_equal_unpadded(loss_path, monkeypatch):
    model = make_lm(vocab_size=VOCAB).train()
    padded = padded_copy(model)
    if loss_path == "transformers":
        for lm in (model, padded):  # the head's own loss_from_logits, without the attached chunked loss
            monkeypatch.delattr(lm, "loss_from_logits")
    ids = batch(VOCAB)
    labels = ids.clone()
    labels[1, :9] = -100
    a, b = model(input_ids=ids, labels=labels), padded(input_ids=ids, labels=labels)
    assert b.logits.shape == a.logits.shape == (2, 24, VOCAB)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert abs(a.loss.item() - b.loss.item()) < 1e-6
    a.loss.backward()
    b.loss.backward()
    ga, gb = grads(model), grads(padded)
    for name, grad in ga.items():
        assert torch.allclose(gb[name][: grad.shape[0]], grad, atol=1e-6), name
    assert torch.all(gb["model.embeddings.tok_emb.weight"][VOCAB:] == 0)  # padded rows learn nothing


def test_padded_ids_are_never_generated():
    """Make the padded logits the largest of all: if the model let them through, argmax and sampling would pick
    them, and the loss would change."""
    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64, initializer_range=0.2).eval()
    ids = batch(VOCAB, (2, 6))
    loss_before = model(input_ids=ids, labels=ids).loss

    def boost_padding(module, inputs, output):
        output = output.clone()
        output[..., VOCAB:] += 1e4
        return output

    model.lm_head.register_forward_hook(boost_padding)
    assert torch.allclose(model(input_ids=ids, labels=ids).loss, loss_before)
    greedy = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    torch.manual_seed(0)
    sampled = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=True,
                             temperature=2.0, top_k=0, top_p=1.0)  # fmt: skip
    assert greedy.shape == sampled.shape == (2, 18)
    assert int(greedy.max()) < VOCAB and int(sampled.max()) < VOCAB


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_gpt2_round_trip_through_a_padded_model(tied):
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=64, n_layer=2, n_head=2,
                                      tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0)).eval()  # fmt: skip
    if not tied:
        torch.nn.init.normal_(gpt2.lm_head.weight)
    ours = from_hf_gpt2(gpt2, pad_vocab_size_multiple=64)
    assert ours.config.vocab_size == VOCAB and ours.config.padded_vocab_size == 128
    assert ours.lm_head.weight.shape == (128, 64) and torch.all(ours.lm_head.weight[VOCAB:] == 0)
    assert (ours.lm_head.weight is ours.model.embeddings.tok_emb.weight) == tied
    back = to_hf_gpt2(ours)
    assert back.config.vocab_size == VOCAB and back.config.tie_word_embeddings == tied
    original, round_trip = gpt2.state_dict(), back.state_dict()
    assert original.keys() == round_trip.keys()
    for key, tensor in original.items():
        assert torch.equal(tensor, round_trip[key]), key
    ids = batch(VOCAB, (2, 10))
    with torch.no_grad():
        expected = gpt2(ids).logits
        assert torch.allclose(ours(ids).logits, expected, atol=1e-5)
        assert torch.equal(back(ids).logits, expected)


def test_padded_model_saves_and_loads(tmp_path):
    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64).eval()
    model.save_pretrained(tmp_path)
    loaded = GPTScratchForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.pad_vocab_size_multiple == 64 and loaded.config.vocab_size == VOCAB
    assert loaded.lm_head.weight is loaded.model.embeddings.tok_emb.weight
    ids = batch(VOCAB, (2, 10))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_resize_token_embeddings_keeps_the_real_vocab_size():
    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64)
    old = model.get_input_embeddings().weight[:VOCAB].detach().clone()
    model.resize_token_embeddings(110)  # new tokens reuse rows that were padding
    assert model.config.vocab_size == 110 and model.get_input_embeddings().weight.shape == (128, 64)
    assert torch.equal(model.get_input_embeddings().weight[:VOCAB], old)
    assert model.lm_head.weight is model.model.embeddings.tok_emb.weight
    assert model(batch(110, (1, 8))).logits.shape == (1, 8, 110)
    model.resize_token_embeddings(130)
    assert model.config.vocab_size == 130 and model.get_output_embeddings().weight.shape == (192, 64)
    unpadded = make_lm(vocab_size=VOCAB)
    unpadded.resize_token_embeddings(pad_to_multiple_of=32)  # transformers' argument: sets the config option
    assert unpadded.config.vocab_size == VOCAB and unpadded.config.pad_vocab_size_multiple == 32
    assert unpadded.get_input_embeddings().weight.shape == (128, 64)
    assert unpadded(batch(VOCAB, (1, 8))).logits.shape == (1, 8, VOCAB)


# ================================================================================================ fused AdamW
def test_trainer_with_fused_adamw_on_cpu(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    data = Dataset.from_dict({"input_ids": batch(VOCAB, (8, 16)).tolist()}).map(lambda r: {"labels": r["input_ids"]})
    args = TrainingArguments(
        output_dir=str(tmp_path), optim="adamw_torch_fused", max_steps=2, per_device_train_batch_size=2,
        gradient_accumulation_steps=2, learning_rate=1e-3, use_cpu=True, report_to=[], save_strategy="no",
        logging_steps=1, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data)
    result = trainer.train()
    assert trainer.optimizer.defaults.get("fused") is True
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.equal(model.model.trf_blocks[0].att.qkv.weight, before["model.trf_blocks.0.att.qkv.weight"])
    # The padded rows get no gradient and stay put (weight decay is 0 by default).
    padded_rows = before["model.embeddings.tok_emb.weight"][VOCAB:]  # tied: lm_head.weight is the same tensor
    assert torch.equal(model.lm_head.weight[VOCAB:], padded_rows)
