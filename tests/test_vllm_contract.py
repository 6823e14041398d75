"""vLLM's contract, proven on CPU. vLLM serves a custom model through its transformers backend: it builds
``AutoModel.from_config(config, trust_remote_code=True)`` with ``config._attn_implementation = "vllm"`` (an attention
function registered in ``AttentionInterface``), then calls it with ALL of a step's requests packed in one row
(``input_ids`` / ``position_ids`` of shape ``[1, tokens]``, each request's positions from its own 0, the row longer
than ``n_positions`` when many requests run), ``use_cache=False``, ``return_dict=False`` and its own kwarg
``attention_instances``. Its attention function reads ``module.layer_idx`` and ``scaling``, gets no mask and returns
``[tokens, heads * head_dim]``. This test registers such a function and checks every layer goes through it."""

import pytest
import torch
from torch.nn import functional as F
from transformers import AttentionInterface, AutoConfig, AutoModel

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM

N_POSITIONS = 32
CALLS = []


def vllm_like_attention(module, query, key, value, attention_mask, scaling=None, attention_instances=None,
                        **kwargs):
    """vLLM's attention function, with its paged KV cache replaced by the request lengths it would know from its
    own metadata (here carried in ``attention_instances``): causal attention within each request."""
    CALLS.append({"layer": module.layer_idx, "scaling": scaling, "mask": attention_mask, "causal": module.is_causal,
                  "shape": tuple(query.shape)})
    lengths = attention_instances[module.layer_idx]
    outputs = [F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling)
               for q, k, v in zip(*(x.split(lengths, dim=2) for x in (query, key, value)))]
    tokens = query.shape[-2]
    return torch.cat(outputs, dim=2).transpose(1, 2).reshape(tokens, -1), None  # [tokens, heads * head_dim]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    config = GPTScratchConfig(n_layer=3, n_embd=32, n_head=4, n_positions=N_POSITIONS, vocab_size=96, drop_rate=0.0)
    path = tmp_path_factory.mktemp("vllm-contract")
    GPTScratchForCausalLM(config).save_pretrained(path)
    AttentionInterface.register("vllm_like", vllm_like_attention)
    return path


def test_the_model_offers_what_vllms_backend_checks(folder):
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (32, 4, 3)
    config._attn_implementation = "vllm_like"
    with torch.device("meta"):  # vLLM builds the model on the meta device, then loads the weights itself
        model = AutoModel.from_config(config, trust_remote_code=True)
    assert type(model).__name__ == "GPTScratchModel" and type(model).is_backend_compatible()
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)


def test_packed_requests_route_every_layer_through_the_registered_attention(folder):
    reference = AutoModel.from_pretrained(folder, trust_remote_code=True, attn_implementation="sdpa").eval()
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, attn_implementation="vllm_like").eval()
    generator = torch.Generator().manual_seed(1)
    requests = [torch.randint(1, 96, (n,), generator=generator) for n in (20, 30)]  # 50 tokens > n_positions
    input_ids = torch.cat(requests)[None]
    position_ids = torch.cat([torch.arange(len(r)) for r in requests])[None]
    lengths = [len(r) for r in requests]
    CALLS.clear()
    with torch.no_grad():
        hidden = model(input_ids=input_ids, position_ids=position_ids, use_cache=False,
                       attention_instances={layer: lengths for layer in range(3)}, return_dict=False)[0][0]
        alone = [reference(r[None]).last_hidden_state[0] for r in requests]
    assert [call["layer"] for call in CALLS] == [0, 1, 2]
    assert all(call["scaling"] == pytest.approx(8 ** -0.5) and call["mask"] is None and call["causal"]
               for call in CALLS)
    assert all(call["shape"] == (1, 4, 50, 8) for call in CALLS)
    torch.testing.assert_close(hidden, torch.cat(alone), atol=1e-5, rtol=1e-5)
