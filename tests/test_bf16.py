"""bf16 and the fused linear + loss (issue #16): the fused loss equals the plain one (fp32, CPU: value and gradients,
ignored rows, padded vocabulary, num_items_in_batch, torch.compile), bf16 autocast stays close to fp32, the recipes
pick bf16 by the CPU and an explicit ``--bf16 false`` wins, a real Trainer trains in bf16, and bf16 weights generate
the fp32 tokens."""

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from transformers import HfArgumentParser

from hfgpt import GPTScratchForCausalLM
from hfgpt.fast_paths import LinearCrossEntropy, fused_causal_lm_loss
from hfgpt.errors import HfgptInputError

VOCAB = 100  # padded to 128 rows with pad_vocab_size_multiple=64


def make_lm(**overrides) -> GPTScratchForCausalLM:
    torch.manual_seed(0)
    return GPTScratchForCausalLM._from_config(tiny_config(**overrides), attn_implementation="sdpa")


def batch(vocab=VOCAB, shape=(2, 24), seed=1):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def grads(model) -> dict:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def plain_loss(hidden, weight, labels, num_classes, num_items_in_batch=None):
    """The book's calc_loss_batch on the full logits ``hidden @ weight.T`` (padded columns dropped)."""
    logits = (hidden @ weight.T)[..., :num_classes]
    logits, targets = logits[:, :-1].reshape(-1, num_classes), labels[:, 1:].reshape(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits, targets, reduction="sum") / num_items_in_batch


def loss_and_grads(loss_fn, hidden, weight):
    hidden, weight = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    loss = loss_fn(hidden, weight)
    loss.backward()
    return loss.detach(), hidden.grad, weight.grad


# ================================================================================================ the fused loss
@pytest.mark.parametrize("num_items_in_batch", [None, 61, torch.tensor(61)])
def test_fused_loss_equals_plain_loss_in_fp32(num_items_in_batch):
    """Several row blocks (the vocabulary is large enough for blocks of 2 ** 21 // 40000 = 52 rows), ignored rows,
    a padded vocabulary (40000 real of 40064 rows) and the Trainer's num_items_in_batch."""
    torch.manual_seed(0)
    hidden, weight = torch.randn(3, 70, 32), 0.3 * torch.randn(40064, 32)
    labels = torch.randint(0, 40000, (3, 70))
    labels[0, :30] = -100  # prompt-style masking
    labels[2, 50:] = -100  # padding
    fused = loss_and_grads(lambda h, w: fused_causal_lm_loss(h, w, labels, num_items_in_batch, vocab_size=40000),
                           hidden, weight)
    plain = loss_and_grads(lambda h, w: plain_loss(h, w, labels, 40000, num_items_in_batch), hidden, weight)
    for got, expected in zip(fused, plain):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert torch.all(fused[2][40000:] == 0)  # padded rows learn nothing


def test_fused_loss_under_torch_compile_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    hidden, weight = torch.randn(2, 40, 16), 0.3 * torch.randn(128, 16)
    labels = torch.randint(0, VOCAB, (2, 40))
    labels[1, :10] = -100

    def loss_fn(h, w):
        return fused_causal_lm_loss(h, w, labels, vocab_size=VOCAB)

    compiled = loss_and_grads(torch.compile(loss_fn, backend="aot_eager", fullgraph=True), hidden, weight)
    for got, expected in zip(compiled, loss_and_grads(loss_fn, hidden, weight)):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for got, expected in zip(compiled, loss_and_grads(lambda h, w: plain_loss(h, w, labels, VOCAB), hidden, weight)):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_fused_loss_under_bf16_autocast_is_close_to_fp32():
    torch.manual_seed(0)
    hidden, weight = torch.randn(4, 64, 64), 0.2 * torch.randn(1000, 64)
    labels = torch.randint(0, 1000, (4, 64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = loss_and_grads(lambda h, w: fused_causal_lm_loss(h, w, labels), hidden, weight)
    fp32 = loss_and_grads(lambda h, w: fused_causal_lm_loss(h, w, labels), hidden, weight)
    assert bf16[0].dtype == torch.float32 and bf16[1].dtype == bf16[2].dtype == torch.float32  # fp32 master weights
    assert abs(bf16[0].item() - fp32[0].item()) < 1e-2 * fp32[0].item()  # bf16 has 8 bits of mantissa
    for got, expected in zip(bf16[1:], fp32[1:]):
        assert F.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.99
        assert (got - expected).norm() < 0.05 * expected.norm()


# ================================================================================================ through the model
def test_model_skip_logits_gives_the_same_loss_and_gradients():
    plain, fused = make_lm(vocab_size=VOCAB, pad_vocab_size_multiple=64).train(), make_lm(
        vocab_size=VOCAB, pad_vocab_size_multiple=64).train()
    ids = batch()
    labels = ids.clone()
    labels[0, :8] = -100
    expected = plain(input_ids=ids, labels=labels, num_items_in_batch=40)
    out = fused(input_ids=ids, labels=labels, num_items_in_batch=40, skip_logits=True)
    assert out.logits is None and expected.logits.shape == (2, 24, VOCAB)
    torch.testing.assert_close(out.loss, expected.loss, atol=1e-5, rtol=1e-5)
    expected.loss.backward()
    out.loss.backward()
    reference = grads(plain)
    for name, grad in grads(fused).items():
        torch.testing.assert_close(grad, reference[name], atol=1e-5, rtol=1e-4, msg=name)
    # the switch for training: training mode with labels skips the logits; eval mode or no labels keeps them
    fused.skip_logits_in_training = True
    assert fused(input_ids=ids, labels=labels).logits is None
    assert fused(input_ids=ids).logits is not None
    assert fused(input_ids=ids, labels=labels, skip_logits=False).logits is not None
    assert fused.eval()(input_ids=ids, labels=labels).logits is not None
    with pytest.raises(HfgptInputError, match="needs labels"):
        fused(input_ids=ids, skip_logits=True)


def test_eval_skip_logits_under_no_grad_and_compile():
    """What the Trainer passes at a loss-only evaluation (``skip_logits=True``), eager and compiled."""
    model = make_lm(vocab_size=VOCAB).eval()
    ids = batch()
    with torch.no_grad():
        expected = model(input_ids=ids, labels=ids).loss
        assert torch.allclose(model(input_ids=ids, labels=ids, skip_logits=True).loss, expected, atol=1e-5)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        assert torch.allclose(compiled(input_ids=ids, labels=ids, skip_logits=True).loss, expected, atol=1e-5)


def test_lora_wrapped_lm_head_takes_the_plain_path(monkeypatch):
    from peft import LoraConfig, get_peft_model

    model = make_lm(vocab_size=VOCAB)
    ids = batch()
    expected = model(input_ids=ids, labels=ids).loss
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["lm_head", "qkv"], task_type="CAUSAL_LM"))
    calls = []  # lm_head is a peft LoRA layer now: not the fused linear + loss
    monkeypatch.setattr(LinearCrossEntropy, "apply", lambda *a: calls.append(1))
    out = lora(input_ids=ids, labels=ids, skip_logits=True)
    assert out.logits is None and not calls
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)  # LoRA's B starts at zero
    out.loss.backward()
    assert any(p.grad is not None for n, p in lora.named_parameters() if "lora_" in n and "lm_head" in n)


# ================================================================================================ the recipes' switch
def test_recipe_default_precision_follows_the_cpu_and_an_explicit_false_wins(tmp_path):
    from hfgpt.training.common import cpu_has_native_bf16, has_accelerator
    from hfgpt.training.pretrain import PretrainingArguments

    parser = HfArgumentParser(PretrainingArguments)

    def parse(*argv):
        return parser.parse_args_into_dataclasses([*argv, "--output_dir", str(tmp_path)])[0]

    native = cpu_has_native_bf16() and not has_accelerator()
    default = parse()
    assert default.bf16 is native and default.mixed_precision == ("bf16" if native else "no")
    assert ("bf16 autocast" if native else "fp32") in default.precision()
    off = parse("--bf16", "false")
    assert off.bf16 is False and off.mixed_precision == "no" and "fp32" in off.precision()
    on = parse("--bf16")  # explicit: on even where the CPU emulates bf16
    assert on.bf16 is True and on.mixed_precision == "bf16" and "bf16" in on.precision()
    assert PretrainingArguments(output_dir=str(tmp_path), bf16=False).bf16 is False


def test_trainer_trains_in_bf16_on_cpu_with_the_fused_loss(tmp_path):
    """A real Trainer with --bf16 on the CPU: accelerate's autocast runs the model's forward in bf16, the fused loss
    takes the bf16 path (hidden states in bf16), and the loss goes down."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback

    from hfgpt.training.common import RecipeTrainingArguments

    model = make_lm(vocab_size=VOCAB)
    model.skip_logits_in_training = True
    ids = torch.arange(32 * 17).remainder(VOCAB).reshape(32, 17)  # a learnable cycle
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    seen = []
    model.model.final_norm.register_forward_hook(lambda m, i, out: seen.append(torch.get_autocast_dtype("cpu")
                                                                                if torch.is_autocast_enabled("cpu")
                                                                                else out.dtype))
    losses = []

    class Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    args = RecipeTrainingArguments(output_dir=str(tmp_path), bf16=True, per_device_train_batch_size=8, max_steps=12,
                                   learning_rate=3e-3, logging_steps=3, save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[Losses()])
    trainer.train()
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert model.lm_head.weight.dtype == torch.float32  # master weights stay fp32
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.1, losses


# ================================================================================================ bf16 inference
def test_bf16_weights_generate_the_fp32_tokens(tmp_path):
    """Saved in fp32, loaded with ``dtype=torch.bfloat16``: greedy decoding (through the CPU decoding copy of lm_head,
    in bf16) gives fp32's tokens. The tiny model first learns a cycle of token ids, so the top token leads the second
    by a clear margin at every step (checked: on a random model bf16 rounding can swap near-ties)."""
    model = make_lm(vocab_size=VOCAB).train()
    cycle = torch.arange(8 * 33).remainder(VOCAB).reshape(8, 33)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        model(input_ids=cycle, labels=cycle).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(tmp_path)
    fp32 = GPTScratchForCausalLM.from_pretrained(tmp_path).eval()
    bf16 = GPTScratchForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert bf16.lm_head.weight.dtype == torch.bfloat16
    prompt = torch.tensor([[3, 4, 5, 6], [50, 51, 52, 53]])
    kwargs = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False)
    out = fp32.generate(prompt, output_scores=True, return_dict_in_generate=True, **kwargs)
    top2 = torch.stack(out.scores).topk(2, dim=-1).values
    assert (top2[..., 0] - top2[..., 1]).min() > 1.0, "margins too small for a bf16 comparison"
    tokens = bf16.generate(prompt, **kwargs)
    assert bf16.lm_head._decode_weight is not None and bf16.lm_head._decode_weight.dtype == torch.bfloat16
    assert torch.equal(tokens, out.sequences)
    assert torch.equal(tokens[0, 4:], torch.arange(7, 15))  # the cycle it learned
    single = bf16.generate(prompt[:1], attention_mask=torch.ones_like(prompt[:1]), max_new_tokens=8, do_sample=False)
    assert torch.equal(single, out.sequences[:1])  # one row: torch.mv on the weight, not the copy


def test_one_bf16_row_decodes_through_mv_without_a_copy():
    """A single bf16 row: the logits come from ``torch.mv`` on lm_head's weight (no decoding copy is made) and equal
    ``lm_head``'s within bf16 rounding; several rows still use the copy."""
    model = make_lm(vocab_size=VOCAB).eval().to(torch.bfloat16)
    hidden = torch.randn(1, 1, model.config.n_embd, dtype=torch.bfloat16)
    with torch.no_grad():
        logits = model.lm_head(hidden)
        reference = F.linear(hidden, model.lm_head.weight)
        assert logits.shape == reference.shape and model.lm_head._decode_weight is None
        torch.testing.assert_close(logits.float(), reference.float(), atol=2e-2, rtol=2e-2)
        model.lm_head(torch.randn(1, 3, model.config.n_embd, dtype=torch.bfloat16))
    assert model.lm_head._decode_weight is not None


@pytest.mark.parametrize("bias", [True, False])
def test_one_row_linear_forward_takes_mv_for_one_bf16_row_only(bias):
    """The blocks' layers: one bf16 row without autograd is exactly ``torch.mv`` (+ bias), within bf16 rounding of
    ``nn.functional.linear``; with autograd, several rows or fp32 it is ``nn.Linear``'s own forward."""
    from functools import partial

    from hfgpt.fast_paths import one_row_linear_forward

    layer = torch.nn.Linear(48, 80, bias=bias).to(torch.bfloat16)
    layer.forward = partial(one_row_linear_forward, layer)  # as attach_fast_paths does
    rows = torch.randn(2, 1, 96, dtype=torch.bfloat16)[..., ::2]  # not contiguous
    one = rows[:1]
    with torch.no_grad():
        out = layer(one)
        mv = torch.mv(layer.weight, one.reshape(-1)) + (layer.bias if bias else 0)
        assert out.shape == (1, 1, 80) and torch.equal(out.reshape(-1), mv)
        torch.testing.assert_close(out.float(), F.linear(one, layer.weight, layer.bias).float(), atol=3e-2, rtol=3e-2)
        assert torch.equal(layer(rows), F.linear(rows, layer.weight, layer.bias))
    assert torch.equal(layer(one), F.linear(one, layer.weight, layer.bias))  # autograd on: nn.Linear's forward
