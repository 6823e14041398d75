"""fast_paths.py: the book's stages build plain ``nn.Linear`` and ``attach_fast_paths`` gives the causal-LM head its
speed paths; the chunked CPU loss equals ``nn.functional.cross_entropy`` (value and gradient), the model takes it
where it applies (fp32 or bf16 logits), and the CPU decoding copy of ``lm_head`` gives the same logits and tokens.
(The fused linear + loss and bf16: test_bf16.py.)"""

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from hfgpt import GPTScratchForCausalLM
from hfgpt.fast_paths import ChunkedCrossEntropy, chunked_causal_lm_loss

VOCAB = 100  # not a multiple of 64: padded to 128 rows


def make_lm(**overrides) -> GPTScratchForCausalLM:
    torch.manual_seed(0)
    return GPTScratchForCausalLM._from_config(tiny_config(**overrides), attn_implementation="sdpa")


def batch(vocab=128, shape=(2, 24), seed=1):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def shifted_cross_entropy(logits, labels, num_items_in_batch=None):
    """The book's calc_loss_batch with F.cross_entropy: position t predicts token t + 1."""
    logits, targets = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, targets, ignore_index=-100)
    return F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum") / num_items_in_batch


# ================================================================================================ attached, not built in
def test_book_stages_build_plain_linear_and_the_head_attaches_the_fast_paths():
    from torch import nn

    from hfgpt import GPTScratchModel
    from hfgpt.fast_paths import chunked_loss_from_logits, decoding_head_forward, one_row_linear_forward

    base = GPTScratchModel(tiny_config())
    linears = [m for m in base.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is nn.Linear and "forward" not in vars(m) for m in linears)  # the book's layers
    model = make_lm()
    block = model.model.trf_blocks[0]
    for layer in (block.att.qkv, block.att.out_proj, block.ff.fc_in, block.ff.fc_out):
        assert type(layer) is nn.Linear and layer.forward.func is one_row_linear_forward
    assert type(model.lm_head) is nn.Linear and model.lm_head.forward.func is decoding_head_forward
    assert model.loss_from_logits.func is chunked_loss_from_logits
    assert not [key for key in model.state_dict() if "decode" in key or "dropout" in key]  # same state dict
    model.resize_token_embeddings(140)  # a new lm_head gets the decoding path too
    assert model.lm_head.forward.func is decoding_head_forward
    copied = copy.deepcopy(model)  # the attached paths follow the copy (TRL's reference model, bf16 copies)
    assert copied.lm_head.forward.args[0] is copied.lm_head and copied.loss_from_logits.args[0] is copied
    unpickled = pickle.loads(pickle.dumps(model))
    assert unpickled.model.trf_blocks[0].att.qkv.forward.args[0] is unpickled.model.trf_blocks[0].att.qkv


# ================================================================================================ chunked CPU loss
@pytest.mark.parametrize("num_items_in_batch", [None, 37, torch.tensor(37)])
def test_chunked_loss_equals_cross_entropy(num_items_in_batch):
    logits = (3 * torch.randn(4, 25, 300)).requires_grad_()
    labels = torch.randint(0, 300, (4, 25))
    labels[0, :10] = -100  # prompt-style masking
    labels[2] = -100  # a row without any labelled position
    reference = logits.detach().clone().requires_grad_()
    expected = shifted_cross_entropy(reference, labels, num_items_in_batch)
    expected.backward()
    loss = chunked_causal_lm_loss(logits, labels, num_items_in_batch=num_items_in_batch)
    loss.backward()
    assert torch.allclose(loss, expected, atol=1e-5, rtol=0), (loss.item(), expected.item())
    assert torch.allclose(logits.grad, reference.grad, atol=1e-5, rtol=0)


def test_chunked_cross_entropy_blocks_and_padded_columns():
    """Several row blocks (one of them partial), and padded columns that must not count nor get a gradient."""
    logits = (3 * torch.randn(50, 72)).requires_grad_()
    targets = torch.randint(0, 60, (50,))
    targets[::7] = -100
    reference = logits.detach()[:, :60].clone().requires_grad_()
    expected = F.cross_entropy(reference, targets, ignore_index=-100, reduction="sum") / 11.0
    expected.backward()
    loss = ChunkedCrossEntropy.apply(logits, targets, torch.tensor(11.0), -100, 16, 60)
    loss.backward()
    assert torch.allclose(loss, expected, atol=1e-5, rtol=0)
    assert torch.allclose(logits.grad[:, :60], reference.grad, atol=1e-5, rtol=0)
    assert torch.all(logits.grad[:, 60:] == 0)


def test_model_uses_the_chunked_loss_on_cpu_and_it_matches_cross_entropy(monkeypatch):
    model = make_lm().train()
    ids = batch()
    labels = ids.clone()
    labels[:, :5] = -100
    calls = []
    original = ChunkedCrossEntropy.apply
    monkeypatch.setattr(ChunkedCrossEntropy, "apply", lambda *a: calls.append(1) or original(*a))
    out = model(input_ids=ids, labels=labels)
    assert calls, "CPU fp32 eager training should take the chunked loss"
    assert torch.allclose(out.loss, shifted_cross_entropy(out.logits, labels), atol=1e-5, rtol=0)
    out = model(input_ids=ids, labels=labels, num_items_in_batch=50)
    assert torch.allclose(out.loss, shifted_cross_entropy(out.logits, labels, 50), atol=1e-5, rtol=0)
    calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 logits: the chunked loss too, its sums in fp32
        bf16 = model(input_ids=ids, labels=labels)
    assert calls and bf16.logits.dtype == torch.bfloat16 and bf16.loss.dtype == torch.float32
    fp32_loss = model(input_ids=ids, labels=labels).loss.item()
    assert abs(bf16.loss.item() - fp32_loss) < 0.02 * fp32_loss


def test_chunked_loss_on_bf16_logits_is_close_to_fp32():
    logits = 3 * torch.randn(4, 25, 300)
    labels = torch.randint(0, 300, (4, 25))
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        leaf = logits.to(dtype).clone().requires_grad_()
        loss = chunked_causal_lm_loss(leaf, labels)
        loss.backward()
        results.append((loss.detach(), leaf.grad))
    (fp32_loss, fp32_grad), (bf16_loss, bf16_grad) = results
    assert bf16_loss.dtype == torch.float32 and bf16_grad.dtype == torch.bfloat16
    assert abs(bf16_loss - fp32_loss) < 1e-2  # only the logits' own rounding
    assert (bf16_grad.float() - fp32_grad).abs().max() < 1e-2 * fp32_grad.abs().max()


# ================================================================================================ CPU decoding head
def test_lm_head_decode_copy_matches_lm_head_and_follows_weight_changes():
    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64).eval()
    ids = batch(VOCAB, shape=(2, 6))
    with torch.no_grad():
        reference = F.linear(model.model(ids).last_hidden_state, model.lm_head.weight)[..., :VOCAB]
        logits = model(ids).logits  # 12 rows: through the [n_embd, vocab] copy
        assert model.lm_head._decode_weight is not None and model.lm_head._decode_weight.shape == (64, 128)
        assert torch.allclose(logits, reference, atol=1e-5, rtol=0)
        model.lm_head.weight.mul_(2.0)  # tied: also the embedding; the copy must follow
        doubled = F.linear(model.model(ids).last_hidden_state, model.lm_head.weight)[..., :VOCAB]
        assert torch.allclose(model(ids).logits, doubled, atol=1e-5, rtol=0)
    # training (autograd on) never uses the copy, so gradients reach lm_head as usual
    model.train()
    model.lm_head._decode_weight = model.lm_head._decode_weight_key = None
    model(input_ids=ids, labels=ids).loss.backward()
    assert model.lm_head._decode_weight is None and model.lm_head.weight.grad is not None
    # switched off: the copy is freed and no new one is made
    model.eval()
    with torch.no_grad():
        model(ids)
        assert model.lm_head._decode_weight is not None
        model.lm_head.cpu_decode_copy = False
        model(ids)
    assert model.lm_head._decode_weight is None


def test_greedy_tokens_are_the_same_with_and_without_the_decode_copy():
    model = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64, initializer_range=0.2).eval()
    prompt = batch(VOCAB, shape=(2, 5))
    kwargs = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False)
    with_copy = model.generate(prompt, **kwargs)
    assert model.lm_head._decode_weight is not None  # the copy was used
    model.lm_head.cpu_decode_copy = False
    without_copy = model.generate(prompt, **kwargs)
    assert model.lm_head._decode_weight is None
    assert torch.equal(with_copy, without_copy)
