"""The configuration: presets, the book's config dict, validation that names the field, the book's drop_rate."""

import pytest
import torch
from conftest import tiny_config

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_embd=65), r"n_embd \(65\) must be divisible by n_head \(2\)"),
        (dict(n_layer=0), r"n_layer must be a positive integer, got 0"),
        (dict(n_head=-2), r"n_head must be a positive integer"),
        (dict(vocab_size=0), r"vocab_size must be a positive integer"),
        (dict(n_positions=2.5), r"n_positions must be a positive integer"),
        (dict(embd_pdrop=1.0), r"embd_pdrop is a dropout probability and must be in \[0, 1\), got 1.0"),
        (dict(attn_pdrop=-0.1), r"attn_pdrop is a dropout probability"),
        (dict(drop_rate=1.5), r"dropout probability"),
        (dict(layer_norm_epsilon=0), r"layer_norm_epsilon must be > 0"),
        (dict(eos_token_id=500), r"eos_token_id \(500\) is outside the vocabulary \(vocab_size=128\)"),
    ],
)
def test_bad_config_is_rejected_with_the_field_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_presets_and_standard_names():
    config = GPTScratchConfig.from_preset("124M")
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions) == (12, 768, 12, 1024)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (12, 768, 12)
    assert config.max_position_embeddings == 1024 and config.intermediate_size == 3072
    assert config.eos_token_id == 50256 and config.tie_word_embeddings
    assert GPTScratchConfig.from_preset("gpt2-xl").n_head == 25
    assert GPTScratchConfig.from_preset("355M").n_layer == 24
    assert GPTScratchConfig.from_preset("774M").n_embd == 1280
    small = GPTScratchConfig.from_preset("tiny", n_embd=96, n_head=3)
    assert small.n_inner == 4 * 96
    with pytest.raises(ValueError, match=r"Unknown preset 'huge'.*124M"):
        GPTScratchConfig.from_preset("huge")


def test_124m_preset_has_124m_parameters():
    with torch.device("meta"):
        model = GPTScratchForCausalLM(GPTScratchConfig.from_preset("124M"))
    unique = sum(p.numel() for p in model.parameters())  # tied head counted once
    assert round(unique / 1e6) == 124


def test_book_config_dict():
    book = {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
            "drop_rate": 0.1, "qkv_bias": False}
    config = GPTScratchConfig.from_book_dict(book)
    assert config.n_positions == 256 and config.attn_pdrop == 0.1 and not config.tie_word_embeddings
    with pytest.raises(ValueError, match="Unknown key 'emb_size'"):
        GPTScratchConfig.from_book_dict({"emb_size": 3})


def test_drop_rate_is_the_books_single_rate():
    config = tiny_config(drop_rate=0.2, attn_pdrop=0.05)  # one by one wins over drop_rate
    assert (config.embd_pdrop, config.attn_pdrop, config.resid_pdrop) == (0.2, 0.05, 0.2) and config.drop_rate is None
    config.drop_rate = 0.0
    assert (config.embd_pdrop, config.attn_pdrop, config.resid_pdrop, config.drop_rate) == (0.0, 0.0, 0.0, 0.0)
    assert "drop_rate" not in config.to_dict()  # saved as the three dropouts it sets


def test_config_round_trip(tmp_path):
    config = tiny_config(qkv_bias=True, n_inner=100)
    config.save_pretrained(tmp_path)
    loaded = GPTScratchConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
