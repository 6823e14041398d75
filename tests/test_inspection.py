"""hfgpt.inspection (the Space's "Inside the model" tab): tokens and ids, attention weights, the top-k next-token
distribution; bounded inputs; the file loads alone as the Space loads it; the tab through the real Gradio server."""

import importlib.util
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, pydoc_topics
from test_tokenization import write_gpt2_like_bpe

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM, inspection
from hfgpt.errors import HfgptInputError
from hfgpt.tokenization import load_gpt2_tokenizer, train_bpe_tokenizer

SHARED_BPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpt2-bpe"
TEXTS = [inspection.BOOK_PROMPT, "Every effort moves you", "costs £5 😀\n\tnext line", "  two  spaces "]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(pydoc_topics(20), vocab_size=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer):
    """A tiny random model (2 layers, 2 heads, 32 wide) saved with its tokenizer, loaded back by ``inspection.load``."""
    torch.manual_seed(0)
    config = GPTScratchConfig(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(tokenizer),
                              drop_rate=0.0)
    path = tmp_path_factory.mktemp("inspect-model")
    GPTScratchForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def model(folder):
    model, _ = inspection.load(folder)
    return model


@pytest.mark.parametrize("text", TEXTS)
def test_token_table_round_trips_to_the_text(tokenizer, text):
    ids = inspection.encode(tokenizer, text)
    rows = inspection.token_table(tokenizer, ids)
    assert [r.id for r in rows] == ids and [r.position for r in rows] == list(range(len(ids)))
    assert [r.piece for r in rows] == tokenizer.convert_ids_to_tokens(ids)
    assert "".join(r.text for r in rows) == text
    assert "".join(text for text, _ in inspection.token_spans(rows)) == text
    assert all(r.gpt2_id is None for r in rows)  # this BPE is not GPT-2's


def test_a_character_split_over_byte_tokens_is_shown_once(tokenizer):
    ids = inspection.encode(tokenizer, "😀")
    assert len(ids) == 4  # four bytes, no merge in a 300-piece BPE
    rows = inspection.token_table(tokenizer, ids)
    assert [r.text for r in rows] == ["", "", "", "😀"]
    assert inspection.token_spans(rows) == [("😀", " ".join(map(str, ids)))]


def test_gpt2_bpe_is_recognised_by_its_pieces_not_its_reference_ids(tmp_path, tokenizer):
    lookalike = load_gpt2_tokenizer(write_gpt2_like_bpe(tmp_path / "bpe"))
    assert lookalike(inspection.BOOK_PROMPT).input_ids == [15496, 11, 314, 716]
    assert not inspection.is_gpt2_bpe(lookalike)  # the book's ids, but other pieces
    assert not inspection.is_gpt2_bpe(tokenizer)


@pytest.mark.skipif(not SHARED_BPE.is_dir(), reason="GPT-2's real BPE files are only in the developers' shared data")
def test_real_gpt2_bpe_gets_gpt2_ids_and_added_tokens_none():
    gpt2 = load_gpt2_tokenizer(SHARED_BPE)
    gpt2.add_special_tokens({"additional_special_tokens": ["<|user|>"]})  # as a chat fine-tuning might
    assert inspection.is_gpt2_bpe(gpt2)
    rows = inspection.token_table(gpt2, inspection.encode(gpt2, "Hello, I am<|user|>"))
    assert [r.gpt2_id for r in rows] == [15496, 11, 314, 716, None]
    assert [r.piece for r in rows[:4]] == ["Hello", ",", "ĠI", "Ġam"]


def test_attention_rows_sum_to_one_and_the_future_is_zero(model, tokenizer):
    ids = inspection.encode(tokenizer, "Every effort moves you forward", model)
    seen = inspection.inspect(model, ids)
    n = len(ids)
    assert seen.attentions.shape == (2, 2, n, n) and seen.logits.shape == (len(tokenizer),)
    torch.testing.assert_close(seen.attentions.sum(-1), torch.ones(2, 2, n))
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    assert seen.attentions[..., future].abs().max() == 0
    assert seen.attentions[..., ~future].min() > 0  # every earlier token gets some weight
    torch.testing.assert_close(inspection.attention_map(seen, 1, "mean"), seen.attentions[1].mean(0))
    torch.testing.assert_close(inspection.attention_map(seen, 0, "1"), seen.attentions[0, 1])
    # the logits are the model's own last-position logits (from its default sdpa path too)
    sdpa = GPTScratchForCausalLM.from_pretrained(model.name_or_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(seen.logits, sdpa(torch.tensor([ids])).logits[0, -1], atol=1e-5, rtol=1e-5)


def test_attention_is_the_books_softmax_of_scaled_scores(model, tokenizer):
    """Layer 0 recomputed by hand from the weights: softmax(q k^T / sqrt(d) with the future at -inf)."""
    ids = inspection.encode(tokenizer, inspection.BOOK_PROMPT, model)
    seen = inspection.inspect(model, ids)
    block = model.model.trf_blocks[0]
    with torch.no_grad():
        x = model.model.embeddings(torch.tensor([ids]), torch.arange(len(ids))[None])
        q, k, _ = block.att.qkv(block.norm1(x)).split(model.config.n_embd, dim=-1)
        q, k = (t.view(1, len(ids), 2, 16).transpose(1, 2) for t in (q, k))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(16)
        scores = scores.masked_fill(torch.ones(len(ids), len(ids), dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(seen.attentions[0], scores.softmax(-1)[0], atol=1e-6, rtol=1e-5)


def test_sdpa_model_is_refused_with_the_fix(folder, tokenizer):
    sdpa = GPTScratchForCausalLM.from_pretrained(folder).eval()
    with pytest.raises(HfgptInputError, match="attn_implementation='eager'"):
        inspection.inspect(sdpa, [1, 2, 3])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_top_k_probabilities_are_softmax_of_scaled_top_k_logits(model, tokenizer, temperature):
    logits = inspection.inspect(model, inspection.encode(tokenizer, "Every effort", model)).logits
    choice = inspection.next_token(logits, temperature=temperature, top_k=7, seed=1)
    # the book's generate(): keep the top k logits (the rest -inf), divide by T, softmax over the whole vocabulary
    kept = torch.full_like(logits, float("-inf"))
    top = logits.argsort(descending=True)[:7]
    kept[top] = logits[top]
    full = torch.softmax(kept / temperature, dim=-1)
    assert choice.ids == top.tolist() and choice.greedy_id == int(logits.argmax())
    torch.testing.assert_close(torch.tensor(choice.probabilities), full[top])
    assert math.isclose(sum(choice.probabilities), 1, rel_tol=1e-6)
    assert choice.probabilities == sorted(choice.probabilities, reverse=True)
    assert choice.sampled_id in choice.ids


def test_temperature_sharpens_and_zero_is_greedy(model, tokenizer):
    logits = inspection.inspect(model, inspection.encode(tokenizer, "Every effort", model)).logits
    cold, warm = (inspection.next_token(logits, t, top_k=5) for t in (0.1, 5.0))
    assert cold.probabilities[0] > warm.probabilities[0]
    greedy = inspection.next_token(logits, 0, top_k=5, seed=123)
    assert greedy.probabilities == [1.0, 0, 0, 0, 0] and greedy.sampled_id == greedy.greedy_id


def test_seeded_sample_is_reproducible_and_follows_the_probabilities():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -5.0])
    draws = [inspection.next_token(logits, 1.0, top_k=4, seed=s).sampled_id for s in range(2000)]
    assert draws[:50] == [inspection.next_token(logits, 1.0, top_k=4, seed=s).sampled_id for s in range(50)]
    expected = torch.softmax(logits[:4], -1)
    observed = torch.bincount(torch.tensor(draws), minlength=5).float() / len(draws)
    assert observed[4] == 0  # outside the top 4: never drawn
    torch.testing.assert_close(observed[:4], expected, atol=0.035, rtol=0)


def test_step_appends_the_chosen_token(model, tokenizer):
    ids = inspection.encode(tokenizer, inspection.BOOK_PROMPT, model)
    choice = inspection.next_token(inspection.inspect(model, ids).logits, 0, top_k=3)
    longer = inspection.step(ids, choice.greedy_id, model)
    assert longer == ids + [choice.greedy_id]
    # the appended token's logits are what generate() would have picked next
    with torch.no_grad():
        generated = model.generate(torch.tensor([ids]), max_new_tokens=2, do_sample=False, pad_token_id=0)
    assert generated[0].tolist()[: len(longer)] == longer
    again = inspection.next_token(inspection.inspect(model, longer).logits, 0, top_k=3)
    assert generated[0, -1] == again.greedy_id


@pytest.mark.parametrize("call, message", [
    (lambda m, t: inspection.encode(t, "", m), "non-empty string"),
    (lambda m, t: inspection.encode(t, None, m), "non-empty string"),
    (lambda m, t: inspection.encode(t, "x" * 1001, m), "1001 characters; the inspector takes at most 1000"),
    (lambda m, t: inspection.encode(t, "z " * 40, m), "80 tokens; the inspector shows at most 64"),
    (lambda m, t: inspection.encode(t, "z " * 20, m, max_tokens=10), "40 tokens; the inspector shows at most 10"),
    (lambda m, t: inspection.step(list(range(64)), 5, m), "already has 64 tokens"),
    (lambda m, t: inspection.inspect(m, []), "ids is empty"),
    (lambda m, t: inspection.inspect(m, [1] * 65), "65 tokens exceed the model's context of 64"),
    (lambda m, t: inspection.attention_map(inspection.inspect(m, [1, 2]), 2), "layer must be from 0 to 1; got 2"),
    (lambda m, t: inspection.attention_map(inspection.inspect(m, [1, 2]), -1), "layer must be from 0 to 1"),
    (lambda m, t: inspection.attention_map(inspection.inspect(m, [1, 2]), 0, 2), "head must be from 0 to 1"),
    (lambda m, t: inspection.attention_map(inspection.inspect(m, [1, 2]), 0, "all"), "head must be 'mean' or"),
    (lambda m, t: inspection.attention_map(inspection.inspect(m, [1, 2]), 0.5), "layer must be an integer"),
    (lambda m, t: inspection.next_token(torch.zeros(300), 1.0, 0), "top_k must be from 1 to 50; got 0"),
    (lambda m, t: inspection.next_token(torch.zeros(300), 1.0, 51), "top_k must be from 1 to 50"),
    (lambda m, t: inspection.next_token(torch.zeros(8), 1.0, 9), "top_k must be from 1 to 8"),
    (lambda m, t: inspection.next_token(torch.zeros(300), -0.1, 5), "temperature must be a number from 0 to 5"),
    (lambda m, t: inspection.next_token(torch.zeros(300), float("nan"), 5), "temperature must be a number"),
    (lambda m, t: inspection.next_token(torch.zeros(300), "hot", 5), "temperature must be a number"),
    (lambda m, t: inspection.next_token(torch.zeros(300), 1.0, 5, seed=-1), "seed must be from 0"),
    (lambda m, t: inspection.next_token(torch.zeros(300), 1.0, True), "top_k must be an integer"),
])
def test_bounded_inputs_are_refused_with_the_value_and_range(model, tokenizer, call, message):
    with pytest.raises(HfgptInputError, match=re.escape(message)):
        call(model, tokenizer)


def test_the_file_loads_alone_as_the_space_loads_it():
    """The Space has no hfgpt: inspection.py beside app.py must import with torch and transformers only."""
    path = os.path.join(REPO_ROOT, "hfgpt", "inspection.py")
    source = Path(path).read_text()
    assert "from hfgpt" not in source and "import hfgpt" not in source
    spec = importlib.util.spec_from_file_location("space_inspection", path)  # a top-level module, as in the Space
    alone = sys.modules["space_inspection"] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(alone)
    finally:
        del sys.modules["space_inspection"]
    assert alone.HfgptInputError is ValueError and alone.__package__ == ""
    with pytest.raises(ValueError, match="top_k must be from 1 to 50"):
        alone.next_token(torch.zeros(100), 1.0, 99)


# ---------------------------------------------------------------------------------------------------------------
# The tab, through the real Gradio server (the app with only the chat model: the tab inspects it by default)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(folder):
    pytest.importorskip("gradio")
    from gradio_client import Client

    sys.path.insert(0, os.path.join(REPO_ROOT, "spaces_demo"))
    from tiny_models import launch_local

    demo, url = launch_local(folder, None)
    try:
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_tab_draws_tokens_attention_and_next_token(server, tokenizer):
    text, spans, table, attention, bars, summary = server.predict(
        "Hello, I am £5", 1, "0", 0.7, 5, 3, api_name="/inspect")
    ids = tokenizer("Hello, I am £5").input_ids
    assert text == "Hello, I am £5"
    assert "".join(s["token"] for s in spans) == text
    assert [row[3] for row in table["data"]] == ids and table["headers"][-1] == "GPT-2 id"
    assert {row[4] for row in table["data"]} == {"—"}  # not GPT-2's BPE
    for plot in (attention, bars):
        assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")
        assert len(plot["plot"]) > 5000  # a drawn image, not an empty figure
    assert "greedy:" in summary and "sampled with seed 3" in summary


def test_tab_step_appends_the_greedy_token(server, tokenizer, model):
    server.predict(inspection.BOOK_PROMPT, 1, "mean", 1.0, 10, 0, api_name="/inspect")
    text, *_ = server.predict("greedy", 1, "mean", 1.0, 10, 0, api_name="/step")
    ids = inspection.encode(tokenizer, inspection.BOOK_PROMPT)
    greedy = inspection.next_token(inspection.inspect(model, ids).logits, 1.0, 10).greedy_id
    assert text == tokenizer.decode(ids + [greedy])


@pytest.mark.parametrize("inputs, message", [
    (("z " * 40, 1, "mean", 1.0, 10, 0), "80 tokens; the inspector shows at most 64"),
    (("Hello", 1, "mean", 9.0, 10, 0), "temperature"),
    (("Hello", 1, "mean", 1.0, 10, -3), "seed must be from 0 to 4294967295; got -3"),
    (("Hello", 7, "mean", 1.0, 10, 0), "7"),
])
def test_tab_refuses_bad_inputs_with_a_message(server, inputs, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        server.predict(*inputs, api_name="/inspect")
    assert server.predict("Hello", api_name="/inspect")[0] == "Hello"  # the next request is answered


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
