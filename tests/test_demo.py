"""The Space demo: the real Gradio app on 127.0.0.1 with tiny models, called through gradio_client."""

import importlib.util
import os
import socket

import pytest
import torch
from conftest import REPO_ROOT, tiny_config

from hfgpt import GPTScratchForCausalLM, GPTScratchForSequenceClassification
from hfgpt.data.instructions import add_chat_template, entry_to_messages, format_input
from hfgpt.tokenization import train_bpe_tokenizer

gr = pytest.importorskip("gradio")
from gradio_client import Client  # noqa: E402

def load_app():
    spec = importlib.util.spec_from_file_location("hfgpt_space_app", os.path.join(REPO_ROOT, "spaces_demo", "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    from pydoc_data.topics import topics

    tokenizer = add_chat_template(train_bpe_tokenizer([topics[k] for k in sorted(topics)[:30]], vocab_size=300))
    root = tmp_path_factory.mktemp("demo-models")
    torch.manual_seed(0)
    ids = dict(vocab_size=len(tokenizer), n_positions=128)
    GPTScratchForCausalLM(tiny_config(**ids)).save_pretrained(root / "chat")
    GPTScratchForSequenceClassification(
        tiny_config(**ids, num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    ).save_pretrained(root / "spam")
    for name in ("chat", "spam"):
        tokenizer.save_pretrained(root / name)
    return root


@pytest.fixture(scope="module")
def server(model_folders):
    app = load_app()
    demo = app.build_demo(str(model_folders / "chat"), str(model_folders / "spam"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", app
    finally:
        demo.close()


def test_chat_streams_growing_text(server):
    url, _ = server
    client = Client(url, verbose=False)
    job = client.submit("Name three colours.", 24, 0.8, 20, api_name="/chat")
    final = job.result(timeout=120)
    outputs = [o for o in job.outputs() if isinstance(o, str)]
    assert len(outputs) >= 3, outputs  # several partial messages were streamed
    assert all(later.startswith(earlier) for earlier, later in zip(outputs, outputs[1:]))
    assert isinstance(final, str) and len(final) >= len(outputs[0])
    assert "Type a message" in client.predict("   ", 10, 0.8, 20, api_name="/chat")


def test_chat_prompt_is_the_one_the_recipe_trains_on(server, model_folders):
    """The demo builds its prompt from the saved tokenizer's template: the instruction recipe's Alpaca prompt."""
    from transformers import AutoTokenizer

    _, app = server
    tokenizer = AutoTokenizer.from_pretrained(model_folders / "chat")
    first = {"instruction": "Name three colours.", "output": "Red, green and blue."}
    assert app.build_prompt(tokenizer, first["instruction"], []) == format_input(first) + "\n\n### Response:\n"
    history = [{"role": m["role"], "content": m["content"]} for m in entry_to_messages(first)]
    training = add_chat_template(tokenizer).apply_chat_template(
        [*entry_to_messages(first), {"role": "user", "content": "And one more?"}], tokenize=False,
        add_generation_prompt=True)
    assert app.build_prompt(tokenizer, "And one more?", history) == training


def test_spam_classifier_returns_both_probabilities(server):
    url, _ = server
    client = Client(url, verbose=False)
    result = client.predict("WINNER! Claim your free prize now", api_name="/classify")
    confidences = {c["label"]: c["confidence"] for c in result["confidences"]}
    assert set(confidences) == {"ham", "spam"}
    assert abs(sum(confidences.values()) - 1) < 1e-5
    assert result["label"] == max(confidences, key=confidences.get)


def test_missing_models_are_explained_on_the_page(tmp_path):
    app = load_app()
    demo = app.build_demo(str(tmp_path / "does-not-exist"), None)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        import urllib.request

        config = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30).read().decode()
        assert "The chat model is not available" in config and "The spam classifier is not available" in config
    finally:
        demo.close()


def test_load_script_quick_run_has_no_errors():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bench", "demo_load.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "4 concurrent chat requests" in done.stdout and ": 0 errors" in done.stdout
