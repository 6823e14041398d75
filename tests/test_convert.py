"""Weight conversion: transformers' GPT-2 <-> hfgpt, and the book's GPTModel state dict <-> hfgpt.

Everything is built here with random weights (tiny sizes): nothing is downloaded.
"""

import pytest
import torch
import torch.nn as nn
from reference_models import BOOK_TINY, IDS, GPTModel, assert_close, book_model, generate_text_simple, logits, tiny_gpt2
from transformers import GPT2LMHeadModel

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM
from hfgpt.convert import from_book_checkpoint, from_hf_gpt2, to_book_state_dict, to_hf_gpt2
from hfgpt.errors import HfgptInputError


# ================================================================================================================
# GPT-2 <-> hfgpt
# ================================================================================================================
@pytest.mark.parametrize("tie", [True, False])
def test_gpt2_to_hfgpt_and_back_keeps_logits(tie):
    gpt2 = tiny_gpt2(tie=tie)
    ours = from_hf_gpt2(gpt2)
    assert isinstance(ours, GPTScratchForCausalLM) and not ours.training
    c = ours.config
    assert (c.n_layer, c.n_embd, c.n_head, c.n_positions, c.vocab_size, c.n_inner) == (2, 64, 4, 64, 100, 256)
    assert c.qkv_bias and c.tie_word_embeddings is tie and (c.bos_token_id, c.eos_token_id) == (1, 2)
    assert (ours.lm_head.weight is ours.model.embeddings.tok_emb.weight) is tie
    assert_close(logits(ours), logits(gpt2), 1e-4)

    back = to_hf_gpt2(ours)
    assert isinstance(back, GPT2LMHeadModel) and back.config.tie_word_embeddings is tie
    assert (back.lm_head.weight is back.transformer.wte.weight) is tie
    assert_close(logits(back), logits(gpt2), 1e-4)
    for key, value in gpt2.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    # The conversion copies: training the new model leaves the source alone.
    with torch.no_grad():
        ours.model.trf_blocks[0].att.qkv.weight.zero_()
    assert gpt2.transformer.h[0].attn.c_attn.weight.abs().sum() > 0


def test_gpt2_from_saved_folder_and_config_overrides(tmp_path):
    gpt2 = tiny_gpt2()
    gpt2.save_pretrained(tmp_path / "gpt2")
    ours = from_hf_gpt2(str(tmp_path / "gpt2"), drop_rate=0.0)
    assert (ours.config.embd_pdrop, ours.config.attn_pdrop, ours.config.resid_pdrop) == (0.0, 0.0, 0.0)
    assert_close(logits(ours), logits(gpt2), 1e-4)
    assert from_hf_gpt2(tmp_path / "gpt2", attn_pdrop=0.2).config.resid_pdrop == gpt2.config.resid_pdrop
    mixed = from_hf_gpt2(gpt2, attn_pdrop=0.2, drop_rate=0.0).config  # a dropout given one by one wins
    assert (mixed.embd_pdrop, mixed.attn_pdrop, mixed.resid_pdrop) == (0.0, 0.2, 0.0)
    with pytest.raises(HfgptInputError, match="dropout probability"):
        from_hf_gpt2(gpt2, drop_rate=1.5)
    with pytest.raises(HfgptInputError, match=r"transformer\.wpe\.weight \(64, 64\) \(expected \(32, 64\)\)"):
        from_hf_gpt2(gpt2, n_positions=32)  # an override that changes a tensor's shape


def test_untied_gpt2_stays_untied_through_save_and_load(tmp_path):
    """transformers 5: a GPT2LMHeadModel with tie_word_embeddings=False saves and reloads its own lm_head."""
    gpt2 = to_hf_gpt2(from_hf_gpt2(tiny_gpt2(tie=False)))
    gpt2.save_pretrained(tmp_path / "untied")
    reloaded = GPT2LMHeadModel.from_pretrained(tmp_path / "untied").eval()
    assert not reloaded.config.tie_word_embeddings
    assert reloaded.lm_head.weight.data_ptr() != reloaded.transformer.wte.weight.data_ptr()
    assert torch.equal(reloaded.lm_head.weight, gpt2.lm_head.weight)
    assert not torch.equal(reloaded.lm_head.weight, reloaded.transformer.wte.weight)
    assert_close(logits(reloaded), logits(gpt2), 1e-5)


def test_hfgpt_without_qkv_bias_gets_zero_c_attn_bias():
    ours = from_book_checkpoint(book_model().state_dict(), config={"n_heads": 4})
    assert not ours.config.qkv_bias and not ours.config.tie_word_embeddings
    gpt2 = to_hf_gpt2(ours)
    assert all(block.attn.c_attn.bias.abs().sum() == 0 for block in gpt2.transformer.h)
    assert not gpt2.config.tie_word_embeddings
    assert_close(logits(gpt2), logits(ours), 1e-4)


def test_gpt2_token_ids_outside_a_small_vocabulary_are_dropped():
    ours = from_hf_gpt2(tiny_gpt2(bos_token_id=50256, eos_token_id=50256))  # GPT2Config's defaults
    assert ours.config.bos_token_id is None and ours.config.eos_token_id is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(activation_function="relu"), "activation_function='relu'"),
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
        (dict(reorder_and_upcast_attn=True), "reorder_and_upcast_attn"),
        (dict(add_cross_attention=True), "add_cross_attention"),
        (dict(scale_attn_weights=False), "scale_attn_weights"),
    ],
)
def test_unsupported_gpt2_variants_are_refused(overrides, message):
    with pytest.raises(HfgptInputError, match=message):
        from_hf_gpt2(tiny_gpt2(n_layer=1, **overrides))


def test_gpt2_source_errors(tmp_path):
    from_book_checkpoint(book_model().state_dict(), config={"n_heads": 4}).save_pretrained(tmp_path / "ours")
    with pytest.raises(HfgptInputError, match="not a GPT-2"):
        from_hf_gpt2(tmp_path / "ours")
    with pytest.raises(OSError):
        from_hf_gpt2(tmp_path / "missing")
    with pytest.raises(TypeError):
        from_hf_gpt2(book_model())


# ================================================================================================================
# The book's GPTModel -> hfgpt
# ================================================================================================================
@pytest.mark.parametrize("qkv_bias", [False, True])
def test_book_checkpoint_logits_and_greedy_generation(tmp_path, qkv_bias):
    book = book_model(qkv_bias=qkv_bias)
    torch.save(book.state_dict(), tmp_path / "model.pth")
    ours = from_book_checkpoint(tmp_path / "model.pth", config={"n_heads": 4})
    c = ours.config
    assert (c.vocab_size, c.n_positions, c.n_embd, c.n_layer, c.n_head) == (100, 32, 64, 2, 4)
    assert c.qkv_bias is qkv_bias and not c.tie_word_embeddings and c.layer_norm_epsilon == 1e-5
    assert (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop) == (0.1, 0.1, 0.1)  # the book's drop_rate
    assert ours.lm_head.weight is not ours.model.embeddings.tok_emb.weight
    assert_close(logits(ours), logits(book), 1e-5)

    prompt = IDS[:, :4]
    expected = generate_text_simple(book, prompt, max_new_tokens=12, context_size=BOOK_TINY["context_length"])
    generated = ours.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)
    assert generated.tolist() == expected.tolist()

    # Back to the book's format: the book's GPTModel loads it strictly (mask buffers included).
    again = GPTModel({**BOOK_TINY, "qkv_bias": qkv_bias}).eval()
    again.load_state_dict(to_book_state_dict(ours), strict=True)
    assert_close(logits(again), logits(book), 1e-6)


def test_book_chapter5_checkpoint_with_optimizer_state(tmp_path):
    book = book_model()
    optimizer = torch.optim.AdamW(book.parameters(), lr=4e-4, weight_decay=0.1)
    book.train()
    loss = nn.functional.cross_entropy(book(IDS[:, :-1]).flatten(0, 1), IDS[0, 1:])
    loss.backward()
    optimizer.step()
    book.eval()
    torch.save({"model_state_dict": book.state_dict(), "optimizer_state_dict": optimizer.state_dict()},
               tmp_path / "model_and_optimizer.pth")  # fmt: skip
    ours = from_book_checkpoint(tmp_path / "model_and_optimizer.pth", config={"n_heads": 4, "drop_rate": 0.0})
    assert ours.config.attn_pdrop == 0.0
    assert_close(logits(ours), logits(book), 1e-5)


def test_book_n_heads_defaults_to_the_gpt2_size_and_tying_is_detected():
    book = book_model(emb_dim=768, n_layers=1, vocab_size=10, context_length=4)
    ours = from_book_checkpoint(book.state_dict())
    assert ours.config.n_head == 12 and not ours.config.tie_word_embeddings

    tied = book_model()
    tied.out_head.weight = tied.tok_emb.weight  # the book's exercise: weight tying
    ours = from_book_checkpoint(tied.state_dict(), config={"n_heads": 4})
    assert ours.config.tie_word_embeddings and ours.lm_head.weight is ours.model.embeddings.tok_emb.weight
    # The tied head is the embedding, N(0, 1) here, so the logits reach ~50 and the fp32 rounding of the hidden
    # states (~5e-7: another order of summation than the book's code) grows past 1e-5. In float64 only the mapping
    # can differ (and the book's GELU constant, computed in float32: ~1e-7).
    assert_close(logits(ours.double()), logits(tied.double()), 1e-6)


def test_book_checkpoint_errors(tmp_path):
    state = book_model().state_dict()
    with pytest.raises(HfgptInputError, match=r"Cannot infer the number of attention heads .*--n-head"):
        from_book_checkpoint(state)
    with pytest.raises(HfgptInputError, match=r"missing keys: trf_blocks\.1\.ff\.layers\.2\.bias"):
        from_book_checkpoint({k: v for k, v in state.items() if k != "trf_blocks.1.ff.layers.2.bias"},
                             config={"n_heads": 4})  # fmt: skip
    with pytest.raises(HfgptInputError, match=r"unexpected keys: out_head\.bias"):  # e.g. chapter 6's classifier head
        from_book_checkpoint({**state, "out_head.bias": torch.zeros(100)}, config={"n_heads": 4})
    with pytest.raises(HfgptInputError, match="no tok_emb.weight"):
        from_book_checkpoint(tiny_gpt2().state_dict())
    with pytest.raises(HfgptInputError, match=r"n_embd \(emb_dim\)=768 but the weights have 64"):
        from_book_checkpoint(state, config={"n_heads": 4, "emb_dim": 768})
    with pytest.raises(HfgptInputError, match="Unknown config key 'heads'"):
        from_book_checkpoint(state, config={"heads": 4})
    with pytest.raises(HfgptInputError, match="divisible"):
        from_book_checkpoint(state, config={"n_heads": 5})
    with pytest.raises(FileNotFoundError):
        from_book_checkpoint(tmp_path / "missing.pth")
    torch.save(book_model(), tmp_path / "whole_model.pth")  # torch.save(model): a pickle, not a state dict
    with pytest.raises(HfgptInputError, match="not a plain state dict"):
        from_book_checkpoint(tmp_path / "whole_model.pth", config={"n_heads": 4})


def test_unreadable_checkpoints_are_input_errors(tmp_path):
    from safetensors.torch import save_file

    state = book_model().state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    config = GPTScratchConfig(vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=4)  # matches the weights
    ours = from_book_checkpoint(tmp_path / "model.safetensors", config=config)
    assert ours.config.n_head == 4 and ours.config.drop_rate == 0.1
    assert_close(logits(ours), logits(book_model()), 1e-5)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(HfgptInputError, match="not a readable safetensors file"):
        from_book_checkpoint(tmp_path / "cut.safetensors", config={"n_heads": 4})
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(HfgptInputError, match="not a (PyTorch checkpoint|plain state dict)"):
        from_book_checkpoint(tmp_path / "text.pth", config={"n_heads": 4})
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(HfgptInputError, match="Expected the book's GPTModel state dict"):
        from_book_checkpoint(tmp_path / "list.pth")

    tiny_gpt2().save_pretrained(tmp_path / "gpt2")
    weights = tmp_path / "gpt2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(HfgptInputError, match="Cannot read the weights"):
        from_hf_gpt2(tmp_path / "gpt2")
