"""Scoring generated responses: the book's LLM-as-judge (chapter 7.8), in :mod:`hfgpt.evaluation.judge`."""

from .judge import GRADING_PROMPT, LocalModelJudge, OpenAIChatJudge, grading_prompt, load_judge, parse_score
from .judge import score_responses

__all__ = ["GRADING_PROMPT", "LocalModelJudge", "OpenAIChatJudge", "grading_prompt", "load_judge", "parse_score",
           "score_responses"]
