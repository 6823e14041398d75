"""Compiled and exported decoding with a static cache: transformers' default compiled path on GPUs
(``generate(cache_implementation="static", compile_config=...)``) and ``torch.export`` of the decode step, on CPU."""

import pytest
import torch
from transformers import CompileConfig
from transformers.integrations.executorch import (
    TorchExportableModuleForDecoderOnlyLM,
    TorchExportableModuleWithStaticCache,
)

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM
from hfgpt.errors import HfgptInputError

N_POSITIONS = 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPTScratchConfig(n_layer=2, n_embd=32, n_head=2, n_positions=N_POSITIONS, vocab_size=96)
    return GPTScratchForCausalLM(config).eval()


def test_static_cache_generate_compiles_as_one_graph_with_the_dynamic_cache_tokens(model):
    prompts = torch.randint(1, 96, (2, 6))
    dynamic = model.generate(prompts, max_new_tokens=8, do_sample=False)
    graphs = []

    def counting_backend(graph_module, example_inputs, **options):  # torch.compile hands a backend its graph
        graphs.append(graph_module)
        return graph_module.forward

    compile_config = CompileConfig(fullgraph=True, backend=counting_backend)  # fullgraph: a graph break raises
    compile_config._compile_all_devices = True  # transformers compiles generate() on GPUs only unless told
    try:
        static = model.generate(prompts, max_new_tokens=8, do_sample=False, cache_implementation="static",
                                compile_config=compile_config)
    finally:
        model.__dict__.pop("_compiled_call", None)
    assert graphs, "generate() did not go through torch.compile"
    assert torch.equal(static, dynamic)


def test_static_cache_keeps_the_context_check(model):
    prompt = torch.randint(1, 96, (1, N_POSITIONS - 4))
    with pytest.raises(HfgptInputError, match=rf"n_positions={N_POSITIONS}"):
        model.generate(prompt, max_new_tokens=10, do_sample=False, cache_implementation="static")


def test_torch_export_of_the_decode_step_generates_the_same_tokens(model):
    model.generation_config.cache_implementation = "static"
    try:
        exportable = TorchExportableModuleForDecoderOnlyLM(model, batch_size=1, max_cache_len=N_POSITIONS + 8)
        program = exportable.export(input_ids=torch.tensor([[1]]), cache_position=torch.tensor([0]))
    finally:
        model.generation_config.cache_implementation = None
    prompt = torch.randint(1, 96, (1, 5))
    exported = TorchExportableModuleWithStaticCache.generate(program, prompt, max_new_tokens=10)
    assert torch.equal(exported, model.generate(prompt, max_new_tokens=10, do_sample=False))
    # The context check is in the graph: a step at position n_positions has no position vector and is refused.
    step = program.module()
    step(input_ids=torch.tensor([[3]]), cache_position=torch.tensor([N_POSITIONS - 1]))
    with pytest.raises(RuntimeError, match=rf"n_positions={N_POSITIONS}"):
        step(input_ids=torch.tensor([[3]]), cache_position=torch.tensor([N_POSITIONS]))


def test_resize_token_embeddings_refuses_a_fractional_multiple(model):
    vocab, rows = model.config.vocab_size, model.get_input_embeddings().weight.shape[0]
    with pytest.raises(HfgptInputError, match=r"Asking to pad the embedding matrix to a multiple of `1\.3`"):
        model.resize_token_embeddings(pad_to_multiple_of=1.3)
    with pytest.raises(HfgptInputError, match=r"new_num_tokens must be a positive integer, got -5"):
        model.resize_token_embeddings(-5)
    assert model.config.pad_vocab_size_multiple is None
    assert (model.config.vocab_size, model.get_input_embeddings().weight.shape[0]) == (vocab, rows)
