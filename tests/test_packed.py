"""Packed sequences (padding-free batches): several documents in one row with ``position_ids`` restarting at 0, as
transformers' ``DataCollatorWithFlattening`` makes them. Each document must attend only to itself, and the loss must
equal the padded batch's, for the book's attention (eager) and sdpa."""

import pytest
import torch
from transformers import DataCollatorWithFlattening

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM
from hfgpt.data.instructions import InstructionCollator
from hfgpt.errors import HfgptInputError

N_POSITIONS = 32
LENGTHS = (20, 25, 9)  # 54 tokens in the packed row, more than n_positions: every position id is still in range


def make_lm(attn: str) -> GPTScratchForCausalLM:
    torch.manual_seed(0)
    config = GPTScratchConfig(n_layer=2, n_embd=32, n_head=2, n_positions=N_POSITIONS, vocab_size=96,
                              drop_rate=0.0, attn_implementation=attn)
    return GPTScratchForCausalLM(config)


def documents():
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(1, 96, (n,), generator=generator).tolist() for n in LENGTHS]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_each_packed_document_attends_only_to_itself(attn, training):
    model = make_lm(attn).train(training)  # eval mode also makes a fresh KV cache: packing must still be seen
    docs = documents()
    packed = DataCollatorWithFlattening()([{"input_ids": d} for d in docs])
    assert packed["input_ids"].shape == (1, sum(LENGTHS)) and sum(LENGTHS) > N_POSITIONS
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        alone = [model(torch.tensor([d])).logits[0] for d in docs]
    torch.testing.assert_close(logits, torch.cat(alone), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_padding_free_instruction_batch_has_the_padded_loss_and_gradients(attn):
    docs = documents()
    batch = [{"input_ids": d, "prompt_length": 6} for d in docs]
    results = {}
    for padding_free in (False, True):
        model = make_lm(attn)
        inputs = InstructionCollator(0, mask_prompt=True, padding_free=padding_free)(batch)
        assert ("attention_mask" in inputs) != padding_free and ("position_ids" in inputs) == padding_free
        loss = model(**inputs).loss
        loss.backward()
        results[padding_free] = loss.detach(), model.lm_head.weight.grad.clone()
    torch.testing.assert_close(results[True][0], results[False][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[True][1], results[False][1], atol=1e-5, rtol=1e-5)


def test_a_position_id_beyond_the_context_is_refused_by_name():
    model = make_lm("sdpa").eval()
    ids = torch.randint(1, 96, (1, 4))
    with pytest.raises(HfgptInputError, match=rf"A position id is {N_POSITIONS}, .*n_positions={N_POSITIONS}"):
        model(ids, position_ids=torch.tensor([[0, 1, N_POSITIONS - 1, N_POSITIONS]]))
