"""The model itself: attention implementations, KV cache, heads, checkpointing."""

import re

import pytest
import torch
from conftest import tiny_config

from hfgpt import (
    GPTScratchForCausalLM,
    GPTScratchForSequenceClassification,
    GPTScratchModel,
)
from hfgpt.errors import HfgptInputError


def make_lm(attn="sdpa", **overrides) -> GPTScratchForCausalLM:
    # A larger init spreads the logits apart, so greedy choices are not near-ties that rounding could flip.
    torch.manual_seed(0)
    config = tiny_config(initializer_range=0.2, **overrides)
    return GPTScratchForCausalLM._from_config(config, attn_implementation=attn).eval()


# ------------------------------------------------------------------ forward pass
def test_gpt2_style_init():
    model = make_lm()
    model = GPTScratchForCausalLM(tiny_config(n_layer=8))
    std = model.config.initializer_range
    assert abs(model.model.embeddings.tok_emb.weight.std().item() - std) < 0.2 * std
    residual = model.model.trf_blocks[0].ff.fc_out.weight.std().item()
    assert abs(residual - std / 4) < 0.2 * std / 4  # scaled by 1/sqrt(2 * 8)
    assert torch.all(model.model.trf_blocks[0].att.out_proj.bias == 0)
    assert torch.all(model.model.final_norm.weight == 1)
    assert model.lm_head.weight is model.model.embeddings.tok_emb.weight


def test_untied_head():
    model = GPTScratchForCausalLM(tiny_config(tie_word_embeddings=False))
    assert model.lm_head.weight.data_ptr() != model.model.embeddings.tok_emb.weight.data_ptr()


@pytest.mark.parametrize("padding_side", ["none", "left", "right"])
def test_eager_and_sdpa_agree(padding_side):
    eager, sdpa = make_lm("eager"), make_lm("sdpa")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    input_ids = torch.randint(1, 128, (3, 20))
    mask = torch.ones_like(input_ids)
    if padding_side == "left":
        mask[0, :7] = 0
        mask[1, :3] = 0
    elif padding_side == "right":
        mask[0, -7:] = 0
    with torch.no_grad():
        a = eager(input_ids, attention_mask=mask).logits
        b = sdpa(input_ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(a[real], b[real], atol=1e-5), (a - b)[real].abs().max()


def test_eager_attention_is_the_books_causal_attention():
    """Future tokens must not change past outputs (the causal mask), in both implementations."""
    for attn in ("eager", "sdpa"):
        model = make_lm(attn)
        x = torch.randint(1, 128, (1, 12))
        y = x.clone()
        y[0, 8:] = (y[0, 8:] + 1) % 128
        with torch.no_grad():
            assert torch.allclose(model(x).logits[0, :8], model(y).logits[0, :8], atol=1e-6)
            assert not torch.allclose(model(x).logits[0, 8:], model(y).logits[0, 8:], atol=1e-3)


def test_loss_is_shifted_next_token_cross_entropy():
    model = make_lm()
    x = torch.randint(1, 128, (2, 10))
    out = model(x, labels=x)
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 128), x[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, manual, atol=1e-5)


def test_too_long_sequence_names_both_lengths():
    model = make_lm()
    with pytest.raises(HfgptInputError, match=r"65 tokens long.*n_positions=64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    prompt = torch.randint(1, 128, (1, 60))
    with pytest.raises(HfgptInputError, match=r"n_positions=64"):
        model.generate(prompt, max_new_tokens=10, do_sample=False)


def test_inputs_embeds_and_input_ids_exclusive():
    model = make_lm()
    x = torch.randint(1, 128, (1, 5))
    embeds = model.get_input_embeddings()(x)
    with torch.no_grad():
        assert torch.allclose(model(inputs_embeds=embeds).logits, model(x).logits, atol=1e-6)
    with pytest.raises(HfgptInputError, match="exactly one of input_ids or inputs_embeds; got both"):
        model(x, inputs_embeds=embeds)
    with pytest.raises(HfgptInputError, match="exactly one of input_ids or inputs_embeds; got neither"):
        model()


def test_hidden_states_and_attentions_outputs():
    model = make_lm("eager")
    out = model(torch.randint(1, 128, (2, 6)), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (2, 6, 64)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 6, 6)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(2, 2, 6), atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randint(1, 128, (2, 16))
    grads = []
    for checkpointing in (False, True):
        model = make_lm()
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.trf_blocks[0].gradient_checkpointing
        model(x, labels=x).loss.backward()
        grads.append(model.model.trf_blocks[0].att.qkv.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_training_mode_uses_dropout():
    torch.manual_seed(0)
    model = GPTScratchForCausalLM(tiny_config(drop_rate=0.5)).train()
    x = torch.randint(1, 128, (1, 8))
    assert not torch.allclose(model(x).logits, model(x).logits)
    model.eval()
    assert torch.allclose(model(x).logits, model(x).logits)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_dropout_modules_switch_off_every_dropout(attn):
    """TRL's ``disable_dropout_in_model`` (the DPO / reward default) sets p = 0 on every ``nn.Dropout``: attention
    dropout included, a training-mode forward then equals the eval-mode one."""
    from trl.trainer.utils import disable_dropout_in_model

    torch.manual_seed(0)
    config = tiny_config(embd_pdrop=0.3, attn_pdrop=0.5, resid_pdrop=0.3)
    model = GPTScratchForCausalLM._from_config(config, attn_implementation=attn)
    assert model.model.trf_blocks[0].att.attn_dropout.p == 0.5
    disable_dropout_in_model(model)
    x = torch.randint(1, 128, (2, 12))
    with torch.no_grad():
        train = model.train()(x).logits
        assert torch.equal(train, model.eval()(x).logits)


# ------------------------------------------------------------------ generation and the KV cache
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cached_and_uncached_greedy_generation_match(attn):
    model = make_lm(attn)
    prompt = torch.randint(1, 128, (2, 5))
    cached = model.generate(prompt, max_new_tokens=25, do_sample=False, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=25, do_sample=False, use_cache=False)
    assert cached.shape == (2, 30)
    assert torch.equal(cached, uncached)
    # and both match the book's generate_text_simple loop (argmax of the last position, no cache)
    ids = prompt
    with torch.no_grad():
        for _ in range(25):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, ids)


def test_cache_object_is_filled():
    model = make_lm()
    out = model(torch.randint(1, 128, (1, 7)), use_cache=True)
    assert out.cache.get_seq_length() == 7
    step = model(torch.randint(1, 128, (1, 1)), cache=out.cache, use_cache=True)
    assert step.cache.get_seq_length() == 8


def test_cache_under_its_pre_5_24_name_past_key_values():
    """A saved folder's code may run on transformers < 5.24, which passes the cache as ``past_key_values``; on 5.24+
    the old name still works and warns, as transformers' own models do."""
    model = make_lm()
    x, y = torch.randint(1, 128, (1, 7)), torch.randint(1, 128, (1, 1))
    with torch.no_grad():
        first = model(x, use_cache=True)
        with pytest.warns(FutureWarning, match="`past_key_values` is deprecated.*Use `cache` instead"):
            step = model(y, past_key_values=first.cache, use_cache=True)
        assert step.cache is first.cache and step.cache.get_seq_length() == 8
        assert torch.allclose(step.logits[0, -1], model(torch.cat([x, y], 1)).logits[0, -1], atol=1e-5)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_left_padded_batch_generates_like_single_prompts(attn):
    model = make_lm(attn)
    prompts = [[5, 17, 99, 3, 42, 7], [8, 9], [60, 61, 62, 63]]
    width = max(map(len, prompts))
    input_ids = torch.zeros(len(prompts), width, dtype=torch.long)  # pad id 0
    attention_mask = torch.zeros_like(input_ids)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt):] = torch.tensor(prompt)
        attention_mask[row, width - len(prompt):] = 1
    kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    batched = model.generate(input_ids, attention_mask=attention_mask, use_cache=True, **kwargs)
    batched_uncached = model.generate(input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
    assert torch.equal(batched, batched_uncached)
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), **kwargs)
        assert batched[row, width:].tolist() == alone[0, len(prompt):].tolist()


def test_sampling_cached_equals_uncached_and_respects_top_k():
    model = make_lm()
    prompt = torch.randint(1, 128, (2, 4))
    settings = dict(max_new_tokens=20, do_sample=True, temperature=0.8, top_k=5, top_p=0.9)
    torch.manual_seed(123)
    cached = model.generate(prompt, use_cache=True, **settings)
    torch.manual_seed(123)
    uncached = model.generate(prompt, use_cache=False, **settings)
    assert torch.equal(cached, uncached)
    torch.manual_seed(7)
    other = model.generate(prompt, use_cache=True, **settings)
    assert not torch.equal(cached, other)
    # top_k=1 sampling is greedy
    torch.manual_seed(1)
    top1 = model.generate(prompt, max_new_tokens=10, do_sample=True, top_k=1)
    assert torch.equal(top1, model.generate(prompt, max_new_tokens=10, do_sample=False))


def test_eos_stops_generation():
    model = make_lm()
    prompt = torch.randint(1, 128, (1, 4))
    free = model.generate(prompt, max_new_tokens=10, do_sample=False, eos_token_id=None)
    eos = free[0, 4 + 3].item()  # the fourth generated token
    first = (free[0, 4:] == eos).nonzero()[0].item()
    stopped = model.generate(prompt, max_new_tokens=10, do_sample=False, eos_token_id=eos)
    assert stopped.shape[1] == 4 + first + 1 and stopped[0, -1].item() == eos


# ------------------------------------------------------------------ resizing the vocabulary
TRANSFORMERS_PAD_MESSAGE = (  # transformers' common test_resize_tokens_embeddings matches these words (typo included)
    "Asking to pad the embedding matrix to a multiple of `1.3`, which is not and integer. Please make sure to pass an "
    "integer"
)


@pytest.mark.parametrize("model_class", [GPTScratchForCausalLM, GPTScratchModel, GPTScratchForSequenceClassification])
def test_resize_token_embeddings_as_transformers_common_test(model_class):
    """The steps of transformers' ``test_resize_tokens_embeddings`` (5.25): grow by 10, shrink by 15, the forward
    still runs, the kept rows are untouched, ``pad_to_multiple_of``, and a fractional multiple refused in its words."""
    torch.manual_seed(0)
    config = tiny_config()
    model = model_class(config).train()
    vocab = config.vocab_size
    cloned = model.resize_token_embeddings(vocab).weight.clone()
    embeddings = model.resize_token_embeddings(vocab + 10)
    assert model.config.vocab_size == vocab + 10 and embeddings.weight.shape[0] == cloned.shape[0] + 10
    torch.testing.assert_close(embeddings.weight[:-10].mean(0), embeddings.weight[-10:].mean(0), rtol=1e-3, atol=1e-3)
    ids = torch.randint(1, vocab, (2, 7))
    ids[:, -2] = vocab + 9
    model(input_ids=ids)
    embeddings = model.resize_token_embeddings(vocab - 15)
    assert model.config.vocab_size == vocab - 15 and embeddings.weight.shape[0] == cloned.shape[0] - 15
    model(input_ids=ids.clamp(max=vocab - 16))
    assert torch.equal(embeddings.weight, cloned[: vocab - 15])

    model = model_class(tiny_config())
    embeddings = model.resize_token_embeddings(vocab + 13, pad_to_multiple_of=64)  # hfgpt: a padded vocabulary
    assert model.config.vocab_size == vocab + 13 and embeddings.weight.shape[0] == 192
    with pytest.raises(ValueError, match=re.escape(TRANSFORMERS_PAD_MESSAGE)):
        model.resize_token_embeddings(vocab, pad_to_multiple_of=1.3)
    assert model.config.vocab_size == vocab + 13 and embeddings.weight.shape[0] == 192  # refused before any change


# ------------------------------------------------------------------ sequence classification
def make_classifier(**overrides) -> GPTScratchForSequenceClassification:
    torch.manual_seed(0)
    return GPTScratchForSequenceClassification(
        tiny_config(num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1}, **overrides)
    ).eval()


def test_classifier_pools_the_last_real_token_for_either_padding_side():
    model = make_classifier()
    texts = [[5, 6, 7, 8, 9], [10, 11]]
    with torch.no_grad():
        alone = [model(torch.tensor([t])).logits[0] for t in texts]
        for side in ("left", "right"):
            ids = torch.zeros(2, 5, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, t in enumerate(texts):
                span = slice(5 - len(t), 5) if side == "left" else slice(0, len(t))
                ids[row, span] = torch.tensor(t)
                mask[row, span] = 1
            logits = model(ids, attention_mask=mask).logits
            for row in range(2):
                assert torch.allclose(logits[row], alone[row], atol=1e-5), side
            if side == "right":  # without a mask the pad id (0) is used to find the last token
                assert torch.allclose(model(ids).logits[1], alone[1], atol=1e-5)
    assert model.config.id2label[1] == "spam"


def test_classifier_passes_other_arguments_to_the_model():
    model = make_classifier()
    ids = torch.randint(1, 128, (2, 6))
    with torch.no_grad():
        expected = model(ids).logits
        embeds = model.get_input_embeddings()(ids)
        assert torch.allclose(model(inputs_embeds=embeds).logits, expected, atol=1e-6)
        assert torch.allclose(model(ids, position_ids=torch.arange(6)[None]).logits, expected, atol=1e-6)
        out = model(ids, use_cache=True, output_hidden_states=True)
    assert out.cache.get_seq_length() == 6 and len(out.hidden_states) == 3


@pytest.mark.parametrize(
    "num_labels, problem_type, labels",
    [
        (2, None, torch.tensor([0, 1])),
        (1, None, torch.tensor([0.5, -1.0])),
        (3, "multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
    ],
)
def test_classifier_problem_types(num_labels, problem_type, labels):
    torch.manual_seed(0)
    model = GPTScratchForSequenceClassification(tiny_config(num_labels=num_labels, problem_type=problem_type))
    out = model(torch.randint(1, 128, (2, 6)), labels=labels)
    assert out.logits.shape == (2, num_labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.score.weight.grad is not None


def test_classifier_from_a_causal_lm_checkpoint(tmp_path):
    lm = make_lm()
    lm.save_pretrained(tmp_path)
    clf = GPTScratchForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert torch.equal(clf.model.trf_blocks[1].ff.fc_in.weight, lm.model.trf_blocks[1].ff.fc_in.weight)
    base = GPTScratchModel.from_pretrained(tmp_path)
    assert torch.equal(base.final_norm.weight, lm.model.final_norm.weight)
