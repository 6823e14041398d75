"""Scoring instruction responses against the book's reference answers: ROUGE-L, beside the nearest-neighbour baseline
(each test instruction answered with the training response of its most similar training instruction, by TF-IDF
cosine), the bar a model that generalises must clear."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (``rouge_score``, stemmed) of each prediction against its reference."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
    return sum(scores) / len(scores) if scores else 0.0


def nearest_neighbour_responses(train: Sequence[Mapping], test: Sequence[Mapping]) -> list[str]:
    """For each test record, the ``output`` of the training record whose instruction and input are most similar (TF-IDF cosine)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def prompt(record):  # the instruction and its input, without the preamble every prompt shares
        return f"{record['instruction']}\n{record.get('input') or ''}"

    vectorizer = TfidfVectorizer().fit([prompt(r) for r in train])
    similarity = vectorizer.transform([prompt(r) for r in test]) @ vectorizer.transform(
        [prompt(r) for r in train]).T  # rows are L2-normalised: the product is the cosine
    return [train[int(row.argmax())]["output"] for row in similarity.toarray()]


def score_instruction_responses(responses: Sequence[Mapping], train: Sequence[Mapping],
                                response_key: str = "model_response") -> dict:
    """ROUGE-L of the model's responses and of the nearest-neighbour baseline against the reference ``output``."""
    references = [r["output"] for r in responses]
    return {"rouge_l": rouge_l([r[response_key] for r in responses], references),
            "nearest_neighbour_rouge_l": rouge_l(nearest_neighbour_responses(train, responses), references),
            "rouge_l_responses": len(responses)}


__all__ = ["nearest_neighbour_responses", "rouge_l", "score_instruction_responses"]
