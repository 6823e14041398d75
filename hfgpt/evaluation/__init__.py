"""Everything that scores a model: language-model metrics and baselines (:mod:`.language_model`), generated responses
(:mod:`.generation`) and their judge (:mod:`.judge`); any binary classifier (metric, decision threshold, SVM anchor,
plots) in :mod:`.classification`, imported from there (it imports ``evaluate``, which takes seconds);
lm-evaluation-harness in :mod:`.lm_eval` (optional)."""

from .generation import generate_responses
from .judge import GRADING_PROMPT, LocalModelJudge, OpenAIChatJudge, grading_prompt, load_judge, parse_score
from .judge import score_responses
from .language_model import LanguageModelBaselines, bits_per_byte, evaluate_language_model, evaluate_losses
from .language_model import perplexity, token_byte_lengths, unigram_loss, xz_bits_per_byte

__all__ = ["GRADING_PROMPT", "LocalModelJudge", "OpenAIChatJudge", "grading_prompt", "load_judge", "parse_score",
           "score_responses", "generate_responses", "LanguageModelBaselines", "bits_per_byte",
           "evaluate_language_model", "evaluate_losses", "perplexity", "token_byte_lengths", "unigram_loss",
           "xz_bits_per_byte"]
