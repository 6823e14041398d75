"""The Space in a real browser: headless Chromium (Debian's chromium + chromium-driver, installed by .ci/run where
apt works) drives the page through spaces_demo/screenshots.py's ``visit``: a chat message streams an answer, a spam
example is classified, and "Inside the model" shows the token table, the attention heatmap and the next-token chart
and steps one token. Skipped, with the reason, where Chromium, its driver or selenium is missing."""

import os
import sys

import pytest
from conftest import REPO_ROOT
from PIL import Image

sys.path.insert(0, os.path.join(REPO_ROOT, "spaces_demo"))
import screenshots  # noqa: E402

FOUND = screenshots.find_chromium()
pytestmark = pytest.mark.skipif(isinstance(FOUND, str), reason=str(FOUND))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tiny_models import make_tiny_models

    return make_tiny_models(str(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def page(tmp_path_factory, models):
    """Tiny random models (spaces_demo/tiny_models.py), the real app on 127.0.0.1, one visit; what the page showed."""
    from tiny_models import launch_local

    out = tmp_path_factory.mktemp("screenshots")
    demo, url = launch_local(*models)
    try:
        driver = screenshots.start_chromium(*FOUND)
        try:
            yield screenshots.visit(driver, url, str(out))
        finally:
            driver.quit()
    finally:
        demo.close()


def test_chat_streams_an_answer(page):
    assert page["chat_answer"]  # random weights: any text, but text


def test_spam_example_is_classified(page):
    assert page["spam_label"] in ("ham", "spam")


def test_inside_the_model_shows_tokens_attention_and_next_token(page, models):
    """The token table and the coloured tokens show the ids of the book's prompt; the heatmap and the bar chart were
    drawn (``visit`` waits for their decoded images); Step appended a token."""
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(models[0])("Hello, I am").input_ids
    lines = page["token_table"].splitlines()
    header = lines.index("position")
    assert lines[header:header + 5] == ["position", "BPE piece", "text", "id", "GPT-2 id"]
    rows = [lines[i:i + 5] for i in range(header + 5, len(lines), 5)]
    assert [int(row[3]) for row in rows] == ids and {row[4] for row in rows} == {"—"}  # not GPT-2's BPE
    assert [int(word) for word in page["tokens"].split() if word.isdigit()] == ids
    assert page["after_step"].startswith("Hello, I am") and page["after_step"] != "Hello, I am"


def test_screenshots_are_saved(page):
    for name in ("chat", "spam", "inside"):
        with Image.open(page[name]) as image:
            assert image.width == 1280 and image.height >= 700
            assert len(set(image.convert("L").resize((64, 64)).getdata())) > 8  # drawn, not a blank page
    with Image.open(page["inside"]) as image:
        assert image.height > 900  # the whole tab, taller than the window


SPACE_WITHOUT_HFGPT = """
import json, socket, sys
sys.modules["hfgpt"] = None  # the Space installs transformers and gradio, not hfgpt
import app, screenshots
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
demo = app.build_demo(sys.argv[1], sys.argv[2])
demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
driver = screenshots.start_chromium(*screenshots.find_chromium())
try:
    seen = screenshots.visit(driver, f"http://127.0.0.1:{port}/", sys.argv[3], timeout=120)
finally:
    driver.quit()
    demo.close()
seen["hfgpt_modules"] = sorted(m for m in sys.modules if m.startswith("hfgpt") and sys.modules[m] is not None)
seen["inspection_file"] = sys.modules["inspection"].__file__
print("SEEN" + json.dumps(seen))
"""


def test_space_upload_works_without_hfgpt(models, tmp_path):
    """The files the Space README says to upload (app.py, inside_tab.py and hfgpt's inspection.py), in a folder of
    their own, run in a process where ``import hfgpt`` fails: the models come through their remote code and all three
    tabs work in the browser, without asking to trust that code."""
    import json
    import shutil
    import subprocess

    space = tmp_path / "space"
    space.mkdir()
    for name in ("app.py", "inside_tab.py", "screenshots.py"):
        shutil.copy(os.path.join(REPO_ROOT, "spaces_demo", name), space)
    shutil.copy(os.path.join(REPO_ROOT, "hfgpt", "inspection.py"), space)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", SPACE_WITHOUT_HFGPT, *models, str(tmp_path / "shots")],
                            cwd=space, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trust_remote_code" not in result.stderr and "custom code" not in result.stdout + result.stderr
    seen = json.loads(result.stdout.split("SEEN", 1)[1])
    assert seen["hfgpt_modules"] == [] and seen["inspection_file"] == str(space / "inspection.py")
    assert seen["chat_answer"] and seen["spam_label"] in ("ham", "spam")
    assert "position" in seen["token_table"] and seen["after_step"] != "Hello, I am"
