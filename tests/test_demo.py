"""The Space demo: the real Gradio app on 127.0.0.1 with tiny models, called through gradio_client.

The API's bad inputs (spaces_demo/README.md lists each input's default and range) each get an answer or an error
naming the value, and the next request is answered; a full queue tells the client to try again.
"""

import importlib.util
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import REPO_ROOT, free_port, tiny_config

from hfgpt import GPTScratchForCausalLM, GPTScratchForSequenceClassification
from hfgpt.data.instructions import add_chat_template, entry_to_messages, format_input
from hfgpt.tokenization import train_bpe_tokenizer

gr = pytest.importorskip("gradio")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from gradio_client.utils import QueueError  # noqa: E402


def load_app():
    spec = importlib.util.spec_from_file_location("hfgpt_space_app", os.path.join(REPO_ROOT, "spaces_demo", "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
def one_thread():
    """Generations on one thread each while this module runs: on 2 shared cores, concurrent requests with 2 OpenMP
    threads apiece run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def launch(app, *models, **options):
    demo = app.build_demo(*models, **options)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def server(model_folders, one_thread):
    app = load_app()
    demo, url = launch(app, str(model_folders / "chat"), str(model_folders / "spam"))
    try:
        yield url, app, demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def chat(client, message="Name a colour.", max_new_tokens=2, temperature=0.0, top_k=20):
    return client.predict(message, max_new_tokens, temperature, top_k, api_name="/chat")


def rest_call(url, api_name, body: str) -> str:
    """Gradio's REST API with a raw JSON body (it may hold NaN, which gradio_client cannot send); the event stream."""
    import httpx

    posted = httpx.post(f"{url}gradio_api/call/{api_name}", content=body, timeout=30,
                        headers={"content-type": "application/json"})
    return httpx.get(f"{url}gradio_api/call/{api_name}/{posted.json()['event_id']}", timeout=60).text


def test_chat_streams_growing_text(server):
    url, *_ = server
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

    _, app, _ = server
    tokenizer = AutoTokenizer.from_pretrained(model_folders / "chat")
    first = {"instruction": "Name three colours.", "output": "Red, green and blue."}
    assert app.build_prompt(tokenizer, first["instruction"], []) == format_input(first) + "\n\n### Response:\n"
    history = [{"role": m["role"], "content": m["content"]} for m in entry_to_messages(first)]
    training = add_chat_template(tokenizer).apply_chat_template(
        [*entry_to_messages(first), {"role": "user", "content": "And one more?"}], tokenize=False,
        add_generation_prompt=True)
    assert app.build_prompt(tokenizer, "And one more?", history) == training


def test_spam_classifier_returns_both_probabilities(server):
    url, *_ = server
    client = Client(url, verbose=False)
    result = client.predict("WINNER! Claim your free prize now", api_name="/classify")
    confidences = {c["label"]: c["confidence"] for c in result["confidences"]}
    assert set(confidences) == {"ham", "spam"}
    assert abs(sum(confidences.values()) - 1) < 1e-5
    assert result["label"] == max(confidences, key=confidences.get)


def test_spam_tab_follows_the_saved_decision_threshold(model_folders, tmp_path):
    """A classifier saved with a decision threshold (the spam recipe's): the demo's top label is the threshold rule's
    answer, on either side of a message's score, and the page says which threshold it is."""
    import math

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hfgpt.evaluation.classification import log_odds, set_decision_threshold

    app = load_app()
    model = GPTScratchForSequenceClassification.from_pretrained(model_folders / "spam").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_folders / "spam")
    message = "Free prize waiting, call now"
    with torch.no_grad():
        score = float(log_odds(model(**tokenizer(message, return_tensors="pt")).logits.numpy())[0])
    assert "no decision threshold saved" in app.decision_note(model.config)
    for cut, expected in ((score - 0.05, "spam"), (score + 0.05, "ham")):
        set_decision_threshold(model, cut, "a test rule")
        model.save_pretrained(tmp_path / expected)
        tokenizer.save_pretrained(tmp_path / expected)
        loaded, loaded_tokenizer, problem = app.load(AutoModelForSequenceClassification, str(tmp_path / expected))
        assert problem is None
        confidences = app.make_classify_fn(loaded, loaded_tokenizer)(message)
        assert max(confidences, key=confidences.get) == expected
        assert f"above {1 / (1 + math.exp(-cut)):.4g} (a test rule)" in app.decision_note(loaded.config)


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


def test_from_results_serves_the_pipelines_models_as_plain_text(model_folders, tmp_path, one_thread, capsys):
    """``--from OUT`` (recipes/book.py's folder): the preference model (else the instruction model) chats, spam-all
    classifies; the chat's answers are plain text (a '#' or '>' line is not Markdown)."""
    import json
    import shutil
    import urllib.request

    app = load_app()
    out = tmp_path / "book"
    shutil.copytree(model_folders / "chat", out / "instructions")
    shutil.copytree(model_folders / "spam", out / "spam-all")
    (out / "preferences").mkdir()  # a stage that has not finished: no config.json
    assert app.models_from(str(out)) == (str(out / "instructions"), str(out / "spam-all"))
    shutil.copytree(model_folders / "chat", out / "preferences", dirs_exist_ok=True)
    assert app.models_from(str(out))[0] == str(out / "preferences")
    port = free_port()
    demo = app.main(["--from", str(out), "--port", str(port)], prevent_thread_lock=True, quiet=True)
    try:
        assert f"Chat model: {out / 'preferences'}; spam model: {out / 'spam-all'}" in capsys.readouterr().out
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, verbose=False)
        assert isinstance(chat(client), str)
        assert client.predict("WINNER!! Call now", api_name="/classify")["label"] in ("ham", "spam")
        config = json.loads(urllib.request.urlopen(f"{url}config", timeout=30).read())
        chatbots = [c["props"] for c in config["components"] if c.get("type") == "chatbot"]
        assert chatbots and all(props["render_markdown"] is False for props in chatbots)
    finally:
        demo.close()


# --- the API's bad inputs: each answered or refused by name, and the server answers the next request ---


def test_null_settings_are_their_defaults(server, client):
    *_, demo = server
    sliders = [block for block in demo.blocks.values()  # the chat's (the "Inside the model" tab has its own)
               if isinstance(block, gr.Slider) and not (block.elem_id or "").startswith("inside-")]
    assert {s.label: s.preprocess(None) for s in sliders} == {"max new tokens": 100, "temperature (0 = greedy)": 0.7,
                                                              "top-k": 40}
    assert isinstance(chat(client, max_new_tokens=None), str)
    assert isinstance(chat(client, temperature=None), str)
    assert isinstance(chat(client, temperature=0.7, top_k=None), str)


BAD_SETTINGS = [
    ("max_new_tokens", 0), ("max_new_tokens", 10**6), ("max_new_tokens", "abc"), ("max_new_tokens", True),
    ("temperature", -1), ("temperature", 2.5), ("temperature", "hot"),
    ("top_k", -3), ("top_k", 10**9), ("top_k", [5]),
]


@pytest.mark.parametrize("setting, value", BAD_SETTINGS)
def test_bad_setting_is_refused_by_name_and_range(client, setting, value):
    with pytest.raises(AppError) as refused:
        chat(client, **{setting: value})
    ranges = {"max_new_tokens": "from 1 to 256", "temperature": "from 0 to 2", "top_k": "from 1 to 200"}
    assert f"{setting} must be a number {ranges[setting]}" in str(refused.value) and repr(value) in str(refused.value)


@pytest.mark.parametrize("data, setting, shown", [
    ('["Hi", NaN, 0, 20]', "max_new_tokens", "nan"),
    ('["Hi", 2, NaN, 20]', "temperature", "nan"),
    ('["Hi", 2, Infinity, 20]', "temperature", "inf"),
])  # fmt: skip
def test_nan_or_infinite_setting_is_refused(server, client, data, setting, shown):
    events = rest_call(server[0], "chat", f'{{"data": {data}}}')
    assert "event: error" in events and f"{setting} must be a number" in events and f"got {shown}" in events


def test_fractional_integer_setting_is_rounded(client):
    assert chat(client, max_new_tokens=2.4) == chat(client, max_new_tokens=2)


@pytest.mark.parametrize("message", [None, "", "   \n "])
def test_empty_chat_message_is_answered_with_a_hint(client, message):
    assert chat(client, message).startswith("Type a message")


def test_over_long_chat_message_is_cut_and_said_so(client):
    assert chat(client, "word " * 2000).startswith("(your message was cut to 1000 characters)")


def test_non_text_chat_message_is_read_as_text(client):
    assert isinstance(chat(client, 12345), str) and isinstance(chat(client, ["a", "list"]), str)


def test_history_is_a_list_of_messages(server, model_folders):
    from transformers import AutoTokenizer

    _, app, _ = server
    tokenizer = AutoTokenizer.from_pretrained(model_folders / "chat")
    assert app.build_prompt(tokenizer, "Hi", None) == app.build_prompt(tokenizer, "Hi", [])
    odd = [("old", "pair"), {"role": "user", "content": {"path": "x.png"}}, {"role": "system", "content": "x"}]
    assert app.build_prompt(tokenizer, "Hi", odd) == app.build_prompt(tokenizer, "Hi", [])
    with pytest.raises(gr.Error, match="history must be a list .* got str 'Hi there'"):
        app.build_prompt(tokenizer, "Hi", "Hi there")


@pytest.mark.parametrize("text", [None, "", "  \t "])
def test_empty_spam_text_is_refused(client, text):
    with pytest.raises(AppError, match="text is empty: paste a text message"):
        client.predict(text, api_name="/classify")


@pytest.mark.parametrize("text", ["WIN " * 2000, 12345])
def test_over_long_or_non_text_spam_text_is_classified(client, text):
    assert {c["label"] for c in client.predict(text, api_name="/classify")["confidences"]} == {"ham", "spam"}


def test_server_answers_after_bad_requests(server, client):
    url, *_ = server
    for bad in [dict(max_new_tokens="abc"), dict(temperature=-1), dict(top_k=10**9)]:
        with pytest.raises(AppError):
            chat(client, **bad)
        assert isinstance(chat(client), str)
    assert "event: error" in rest_call(url, "chat", '{"data": ["Hi", 2, NaN, 20]}')
    assert "event: error" in rest_call(url, "chat", '{"data": ["Hi", 2]}')  # too few values: gradio's own check
    with pytest.raises(AppError):
        client.predict(None, api_name="/classify")
    assert isinstance(chat(client), str) and client.predict("Free prize!", api_name="/classify")["label"]


def test_failing_generation_is_an_error_at_once_and_the_server_keeps_serving(model_folders, tmp_path, one_thread):
    """An internal failure (here a tokenizer larger than the model's vocabulary: an index error inside generate's
    thread) is raised in the request (the server logs its traceback) instead of leaving it waiting for tokens."""
    from transformers import AutoTokenizer

    GPTScratchForCausalLM(tiny_config(vocab_size=16)).save_pretrained(tmp_path / "broken")
    AutoTokenizer.from_pretrained(model_folders / "chat").save_pretrained(tmp_path / "broken")
    demo, url = launch(load_app(), str(tmp_path / "broken"), str(model_folders / "spam"))
    try:
        client = Client(url, verbose=False)
        for _ in range(2):
            start = time.perf_counter()
            with pytest.raises(AppError, match="upstream Gradio app has raised an exception"):
                chat(client, "Name three colours and a few more words.", max_new_tokens=20)
            assert time.perf_counter() - start < 60  # the streamer's own timeout is 120 s
        assert client.predict("Free prize!", api_name="/classify")["label"] in ("ham", "spam")
    finally:
        demo.close()


def test_full_queue_tells_the_client_to_try_again(model_folders, one_thread):
    """One generation at a time, one waiting: of six requests sent at once some are told the queue is full (gradio's
    own message), the rest answered, none fails otherwise; then the server answers a new request."""
    demo, url = launch(load_app(), str(model_folders / "chat"), None, queue_size=1, concurrency=1)
    try:
        with ThreadPoolExecutor(6) as pool:
            clients = list(pool.map(lambda _: Client(url, verbose=False), range(6)))
        jobs = [c.submit("Name three colours.", 60, 0.0, 20, api_name="/chat") for c in clients]
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(type(job.result(timeout=120)).__name__)
            except QueueError as error:
                outcomes.append(str(error))
        assert outcomes.count("str") >= 2 and outcomes.count("Queue is full! Please try again.") >= 1, outcomes
        assert set(outcomes) == {"str", "Queue is full! Please try again."}, outcomes
        assert isinstance(chat(Client(url, verbose=False)), str)
    finally:
        demo.close()


def test_load_script_quick_run_has_no_server_errors(capsys, one_thread):
    """bench/demo_load.py --quick, in this process (a subprocess would import torch, transformers and gradio again)."""
    spec = importlib.util.spec_from_file_location("hfgpt_demo_load", os.path.join(REPO_ROOT, "bench", "demo_load.py"))
    demo_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_load)
    assert demo_load.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "8 concurrent chat requests" in out and ", 0 server errors," in out, out
    assert "after the burst, a new request is answered: True" in out, out
