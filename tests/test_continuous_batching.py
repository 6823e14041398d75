"""Continuous batching (transformers' ``generate_batch`` over a ``PagedAttentionCache``, what ``transformers serve``
and TRL's paged generation use) gives ``generate()``'s greedy tokens, for hfgpt as for GPT-2 of the same size."""

import pytest
import torch
from conftest import tiny_config
from transformers import ContinuousBatchingConfig, GenerationConfig, GPT2Config, GPT2LMHeadModel

from hfgpt import GPTScratchForCausalLM

PROMPTS = [[5, 9, 33, 120, 7, 1, 17], [3, 3, 2], [90, 64, 11, 40, 8]]  # different lengths
NEW_TOKENS = 6


def hfgpt_lm():
    torch.manual_seed(0)
    return GPTScratchForCausalLM._from_config(tiny_config(initializer_range=0.2), attn_implementation="sdpa").eval()


def gpt2_lm():
    """GPT-2 of the tiny config's size: the control."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=128, n_positions=64, n_embd=64, n_layer=2, n_head=4, initializer_range=0.2,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa").eval()


@pytest.mark.parametrize("make_model", [hfgpt_lm, gpt2_lm], ids=["hfgpt", "gpt2"])
def test_generate_batch_gives_generate_greedy_tokens(make_model):
    model = make_model()
    config = GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0)
    expected = []
    for prompt in PROMPTS:
        ids = torch.tensor([prompt])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
        expected.append(out[0, len(prompt):].tolist())
    # generate_batch logs a failure and returns empty (or no) results instead of raising: compare the real tokens
    small_cache = ContinuousBatchingConfig(num_blocks=4, page_size=16, max_batch_tokens=64)  # else sized from RAM
    results = model.generate_batch(inputs=PROMPTS, generation_config=config, continuous_batching_config=small_cache)
    got = [result.generated_tokens for result in results.values()]
    assert got == expected
    assert all(len(tokens) == NEW_TOKENS for tokens in got)
