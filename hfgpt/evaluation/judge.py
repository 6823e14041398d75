"""LLM-as-judge (the book's chapter 7.8): another model scores each response from 0 to 100.

A judge is any callable ``judge(prompt) -> reply``: a local transformers model or an OpenAI-compatible endpoint (the
book's Ollama, vLLM, llama.cpp's server). A reply with no score in 0..100 is counted as unparsed, not fatal.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM

from ..data.instructions import format_input
from ..errors import HfgptInputError
from ..tokenization import load_tokenizer

logger = logging.getLogger("hfgpt.judge")

GRADING_PROMPT = (
    "Given the input `{input}` and correct output `{output}`, score the model response `{response}`"
    " on a scale from 0 to 100, where 100 is the best score. Respond with the integer number only."
)
_NUMBER = re.compile(r"(?<![-\d.])(\d{1,3})(?:\.\d+)?(?![\d.]*\d)")


def grading_prompt(entry: Mapping, response_key: str = "model_response") -> str:
    """The book's grading prompt for one record carrying a model response."""
    return GRADING_PROMPT.format(input=format_input(entry), output=entry["output"], response=entry[response_key])


def parse_score(reply: str | None) -> int | None:
    """The first number in 0..100 in a judge's reply (``"85"``, ``"Score: 85/100"``, ``"85.0"`` -> 85), else None."""
    if not reply:
        return None
    for match in _NUMBER.finditer(reply):
        value = int(match.group(1))
        if 0 <= value <= 100:
            return value
    return None


class LocalModelJudge:
    """A transformers causal LM as judge, greedy; a prompt longer than the model's context keeps its end."""

    def __init__(self, model, tokenizer=None, max_new_tokens: int = 8, device: str | None = None):
        if isinstance(model, (str, os.PathLike)):
            tokenizer = tokenizer or load_tokenizer(model)
            model = AutoModelForCausalLM.from_pretrained(model)
        if tokenizer is None:
            raise HfgptInputError("LocalModelJudge needs the tokenizer when given a loaded model.")
        self.model = model.eval() if device is None else model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens

    def __call__(self, prompt: str) -> str:
        chat = self.tokenizer.chat_template is not None  # the template already holds any special tokens
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True) if chat else prompt
        ids = self.tokenizer(text, add_special_tokens=not chat, return_tensors="pt").input_ids
        context = getattr(self.model.config, "max_position_embeddings", None)
        if context is not None and ids.shape[1] + self.max_new_tokens > context:
            keep = max(1, context - self.max_new_tokens)
            logger.warning("Judge prompt of %d tokens cut to its last %d (context %d).", ids.shape[1], keep, context)
            ids = ids[:, -keep:]
        ids = ids.to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


class OpenAIChatJudge:
    """An OpenAI-compatible chat-completions endpoint as judge (temperature 0 and seed 123, as in the book)."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 temperature: float = 0.0, seed: int | None = 123, max_tokens: int | None = None):
        if not url.startswith(("http://", "https://")):
            raise HfgptInputError(f"--judge_url must start with http:// or https://, got {url!r}.")
        if not model:
            raise HfgptInputError("--judge_url needs --judge_model_name (the served model, e.g. llama3).")
        url = url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        options = dict(temperature=temperature, seed=seed, max_tokens=max_tokens)
        self.options = {name: value for name, value in options.items() if value is not None}

    def __call__(self, prompt: str) -> str:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], **self.options}
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300]
            raise ConnectionError(f"The judge at {self.url} answered HTTP {err.code}: {detail}") from None
        except urllib.error.URLError as err:
            raise ConnectionError(f"Cannot reach the judge at {self.url}: {err.reason}") from None
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ConnectionError(f"The judge at {self.url} sent no choices[0].message.content: "
                                  f"{str(payload)[:300]}") from None


def load_judge(judge_model: str | None = None, judge_url: str | None = None, judge_model_name: str | None = None,
               api_key: str | None = None, max_new_tokens: int = 8) -> Callable[[str], str] | None:
    """:class:`OpenAIChatJudge` for ``judge_url``, :class:`LocalModelJudge` for ``judge_model``, else None."""
    if judge_url and judge_model:
        raise HfgptInputError("Give --judge_model (a local transformers model) or --judge_url (an API), not both.")
    if judge_url:
        return OpenAIChatJudge(judge_url, judge_model_name, api_key=api_key)
    if judge_model:
        return LocalModelJudge(judge_model, max_new_tokens=max_new_tokens)
    if judge_model_name:
        raise HfgptInputError("--judge_model_name names the model behind --judge_url; give --judge_url too.")
    return None


def score_responses(entries: Sequence[Mapping], judge: Callable[[str], str], response_key: str = "model_response",
                    progress: bool = False) -> dict:
    """Ask ``judge`` to grade every entry: ``mean_score``, ``scores``, ``replies`` and counts."""
    scores, replies = [], []
    for index, entry in enumerate(entries):
        reply = judge(grading_prompt(entry, response_key))
        score = parse_score(reply)
        if score is None:
            logger.warning("Judge reply %d holds no score in 0..100: %r", index, reply[:80])
        scores.append(score)
        replies.append(reply)
        if progress and (index + 1) % 10 == 0:
            logger.info("Judged %d/%d", index + 1, len(entries))
    parsed = [s for s in scores if s is not None]
    mean = sum(parsed) / len(parsed) if parsed else None
    return {"mean_score": mean, "scores": scores, "replies": replies, "n_scored": len(parsed),
            "n_unparsed": len(scores) - len(parsed), "n_total": len(scores)}


__all__ = ["GRADING_PROMPT", "LocalModelJudge", "OpenAIChatJudge", "grading_prompt", "load_judge", "parse_score",
           "score_responses"]


@dataclass
class JudgeArguments:
    judge_model: str | None = field(default=None, metadata={"help": "A local transformers causal LM (folder or Hub id) as judge."})
    judge_url: str | None = field(default=None, metadata={"help": "An OpenAI-compatible API base, e.g. http://localhost:11434/v1 (Ollama)."})
    judge_model_name: str | None = field(default=None, metadata={"help": "The model behind --judge_url, e.g. llama3."})
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key, if any."})
    judge_max_new_tokens: int = field(default=8, metadata={"help": "Reply length of a local judge."})

    def load(self):
        """The judge these flags name (:func:`load_judge`), or None."""
        return load_judge(self.judge_model, self.judge_url, self.judge_model_name,
                          api_key=os.environ.get(self.judge_api_key_env), max_new_tokens=self.judge_max_new_tokens)
