"""``hfgpt serve``: transformers' own OpenAI-compatible server on a saved folder, asked by the openai client."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, alpaca_tokenizer, free_port, save_tiny_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from hfgpt.cli import main

START_TIMEOUT = 120  # seconds for the server to load the model and answer /health


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    """A tiny instruction folder: the model and a tokenizer with the Alpaca chat template."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("serve"), alpaca_tokenizer())[0]


# one request at a time (model.generate), and transformers' continuous batching (model.generate_batch, paged cache)
@pytest.fixture(scope="module", params=[[], ["--continuous-batching", "--cb-num-blocks", "16"]],
                ids=["sequential", "continuous-batching"])
def server(chat_folder, tmp_path_factory, request):
    """``hfgpt serve`` on ``chat_folder``, on 127.0.0.1; stopped afterwards."""
    # transformers serve itself needs openai (with fastapi, uvicorn, pydantic): the extra hfgpt[serve]
    pytest.importorskip("openai", reason="serving needs transformers[serving]: pip install 'hfgpt[serve]'")
    import httpx

    folder, port = chat_folder, free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    log = open(tmp_path_factory.mktemp("serve-log") / "server.log", "w+")
    command = [sys.executable, "-m", "hfgpt.cli", "serve", folder, "--port", str(port), *request.param]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"the server stopped:\n{open(log.name).read()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer in {START_TIMEOUT} s:\n{open(log.name).read()[-3000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url, folder
    finally:
        stop_group(process)
        log.close()


def stop_group(process: subprocess.Popen) -> None:
    """Ctrl+C to the server and the model's process it spawned (their own process group); SIGKILL after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except ProcessLookupError:  # stopped already: a server whose model's process died stops itself
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def test_streamed_chat_completion_through_the_openai_client(server):
    import openai

    url, folder = server
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=60, max_retries=0)
    stream = client.chat.completions.create(
        model=folder, messages=messages, max_tokens=6, temperature=0, stream=True,
    )
    chunks = list(stream)
    assert len(chunks) >= 2  # streamed: more than one server-sent event
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text, chunks
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert folder in [model.id for model in client.models.list().data]
    # greedy, so the same tokens as generate() on the chat template's prompt
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    expected = model.generate(**ids, max_new_tokens=6, do_sample=False)[0, ids["input_ids"].shape[1]:]
    assert text == tokenizer.decode(expected, skip_special_tokens=True)


def test_serve_refuses_a_folder_without_config(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a saved model folder" in capsys.readouterr().err
