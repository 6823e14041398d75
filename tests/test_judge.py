"""LLM-as-judge (chapter 7.8): the book's grading prompt, robust score parsing, a local transformers judge, and an
OpenAI-compatible judge against a real HTTP server on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import pydoc_topics, save_tiny_checkpoint

from hfgpt.data.instructions import add_chat_template, format_input
from hfgpt.evaluation.judge import (
    LocalModelJudge,
    OpenAIChatJudge,
    grading_prompt,
    load_judge,
    parse_score,
    score_responses,
)
from hfgpt.errors import HfgptInputError
from hfgpt.tokenization import train_bpe_tokenizer

ENTRIES = [
    {"instruction": "Name a primary color.", "input": "", "output": "Red is a primary color.",
     "model_response": "Blue."},
    {"instruction": "Correct the spelling.", "input": "freind", "output": "The correct spelling is 'friend'.",
     "model_response": "friend"},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "model_response": "6"},
]


def test_grading_prompt_is_the_books():
    entry = ENTRIES[1]
    assert grading_prompt(entry) == (
        f"Given the input `{format_input(entry)}` and correct output `{entry['output']}`, score the model response "
        f"`{entry['model_response']}` on a scale from 0 to 100, where 100 is the best score. "
        "Respond with the integer number only."
    )


@pytest.mark.parametrize("reply, score", [
    ("85", 85), (" 85\n", 85), ("Score: 90/100", 90), ("85.0", 85), ("100", 100), ("0", 0),
    ("I cannot grade this.", None), ("", None), (None, None), ("1000", None), ("-5", None), ("150, so 70", 70),
])
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_local_model_judge(tmp_path):
    tokenizer = add_chat_template(train_bpe_tokenizer(pydoc_topics(10), vocab_size=400))
    save_tiny_checkpoint(tmp_path, tokenizer)
    judge = load_judge(judge_model=str(tmp_path), max_new_tokens=4)
    assert isinstance(judge, LocalModelJudge)
    with pytest.raises(HfgptInputError, match="needs the tokenizer"):
        LocalModelJudge(judge.model)
    result = score_responses(ENTRIES, judge)  # prompts longer than the 64-token context keep their end
    assert result["n_total"] == 3 and result["n_scored"] + result["n_unparsed"] == 3
    assert len(result["replies"]) == 3 and all(isinstance(r, str) for r in result["replies"])
    # a random tiny model replies noise: whatever it says is parsed, never fatal
    assert result["scores"] == [parse_score(r) for r in result["replies"]]
    # the judge sees the grading prompt through its chat template (here the Alpaca one)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    assert text == format_input({"instruction": "x", "input": ""}) + "\n\n### Response:\n"  # the book's prompt


class _Server:
    """A stdlib OpenAI chat-completions server on 127.0.0.1 (port 0) that answers with canned replies."""

    def __init__(self, replies, status=200):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body,
                                       "auth": self.headers.get("Authorization")})
                if status != 200:
                    payload = json.dumps({"error": "model not found"}).encode()
                else:
                    reply = replies[(len(outer.requests) - 1) % len(replies)]
                    payload = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                          "choices": [{"index": 0, "finish_reason": "stop",
                                                       "message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def test_openai_compatible_judge_over_http():
    with _Server(["85", "Score: 90", "I cannot grade this response."]) as server:
        judge = load_judge(judge_url=server.url, judge_model_name="llama3", api_key="sk-test")
        result = score_responses(ENTRIES, judge)
    assert result["scores"] == [85, 90, None]
    assert (result["mean_score"], result["n_scored"], result["n_unparsed"]) == (87.5, 2, 1)
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "llama3" and first["body"]["temperature"] == 0.0
    assert first["body"]["messages"] == [{"role": "user", "content": grading_prompt(ENTRIES[0])}]


def test_openai_judge_errors_are_clear():
    with _Server([], status=404) as server:
        with pytest.raises(ConnectionError, match="HTTP 404"):
            OpenAIChatJudge(server.url + "/chat/completions", "nope")("hi")
        port = server.httpd.server_address[1]
    with pytest.raises(ConnectionError, match="Cannot reach the judge"):
        OpenAIChatJudge(f"http://127.0.0.1:{port}/v1", "llama3", timeout=5)("hi")
    with pytest.raises(HfgptInputError, match="http"):
        OpenAIChatJudge("localhost:11434", "llama3")
    with pytest.raises(HfgptInputError, match="not both"):
        load_judge(judge_model="x", judge_url="http://127.0.0.1:1/v1", judge_model_name="m")
    with pytest.raises(HfgptInputError, match="--judge_url needs --judge_model_name"):
        load_judge(judge_url="http://127.0.0.1:1/v1")
    with pytest.raises(HfgptInputError, match="give --judge_url too"):
        load_judge(judge_model_name="llama3")
    assert load_judge() is None


def test_recipe_scores_test_responses_through_the_http_judge(tmp_path):
    """End to end: a few training steps, responses for the test split, judged by the local HTTP endpoint."""
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_instructions import (
        ARGUMENT_TYPES,
        RESPONSES_FILE,
        finetune_instructions,
    )

    records = [{k: v for k, v in e.items() if k != "model_response"} for e in ENTRIES] * 7  # 21 records
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records))
    tokenizer = add_chat_template(train_bpe_tokenizer(pydoc_topics(10), vocab_size=400))
    save_tiny_checkpoint(tmp_path / "model", tokenizer, n_positions=256)
    parser = HfArgumentParser(ARGUMENT_TYPES)
    with _Server(["70", "no idea"]) as server:
        args = parser.parse_args_into_dataclasses(args=[
            "--model_name_or_path", str(tmp_path / "model"), "--data_file", str(data),
            "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--max_new_tokens", "3",
            "--judge_url", server.url, "--judge_model_name", "llama3", "--eval_strategy", "no"])
        metrics = finetune_instructions(*args)
    assert metrics["test_examples"] == 2 and len(server.requests) == 2
    assert (metrics["judge_mean_score"], metrics["judge_scored"], metrics["judge_unparsed"]) == (70, 1, 1)
    saved = json.loads((tmp_path / "out" / RESPONSES_FILE).read_text())
    assert [r["score"] for r in saved] == [70, None] and all("model_response" in r for r in saved)
