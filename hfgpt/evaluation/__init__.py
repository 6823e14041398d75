"""Scoring models: the book's LLM-as-judge (chapter 7.8) in :mod:`hfgpt.evaluation.judge`, lm-evaluation-harness in
:mod:`.lm_eval`, and any binary classifier (metric, decision threshold, SVM anchor, plots) in :mod:`.classification`,
imported from there (it imports ``evaluate``, which takes seconds)."""

from .judge import GRADING_PROMPT, LocalModelJudge, OpenAIChatJudge, grading_prompt, load_judge, parse_score
from .judge import score_responses

__all__ = ["GRADING_PROMPT", "LocalModelJudge", "OpenAIChatJudge", "grading_prompt", "load_judge", "parse_score",
           "score_responses"]
