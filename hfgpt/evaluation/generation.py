"""Generating responses to score (the book's chapter 7.7, batched) and scoring them against the reference answers:
ROUGE-L, beside the nearest-neighbour baseline (each test instruction answered with the training response of its most
similar training instruction, by TF-IDF cosine), the bar a model that generalises must clear."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

logger = logging.getLogger("hfgpt.evaluation")


def generate_responses(model, tokenizer, entries: list[dict], max_new_tokens: int = 256, batch_size: int = 8,
                       response_key: str = "model_response", **generate_kwargs) -> tuple[list[dict], int]:
    """The book's response generation, batched (left-padded, KV cache, greedy unless ``generate_kwargs`` say otherwise).
    Returns ``(records with response_key added, n_skipped)``: prompts that leave no room in the context are skipped."""
    import torch

    from ..data.instructions import entry_to_messages

    config = model.config
    context = getattr(config, "n_positions", None) or config.max_position_embeddings
    prompts = [tokenizer.apply_chat_template(entry_to_messages(e, with_response=False), tokenize=False,
                                             add_generation_prompt=True) for e in entries]
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]] if prompts else []
    keep = [i for i, n in enumerate(lengths) if n < context]
    skipped = len(entries) - len(keep)
    if skipped:
        logger.warning("Skipped %d test prompt(s) of %d tokens or more (the model's context).", skipped, context)
    was_training, padding_side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    results = []
    settings = dict(do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    settings.update(generate_kwargs)
    try:
        for start in range(0, len(keep), batch_size):
            batch = keep[start:start + batch_size]
            inputs = tokenizer([prompts[i] for i in batch], add_special_tokens=False, padding=True,
                               return_tensors="pt").to(model.device)
            width = inputs["input_ids"].shape[1]
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=min(max_new_tokens, context - width), **settings)
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            for i, text in zip(batch, texts):
                results.append({**entries[i], response_key: text.replace("### Response:", "").strip()})
            logger.info("Generated %d/%d responses", len(results), len(keep))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return results, skipped


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (``rouge_score``, stemmed) of each prediction against its reference."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
    return sum(scores) / len(scores) if scores else 0.0


def nearest_neighbour_responses(train: Sequence[Mapping], test: Sequence[Mapping]) -> list[str]:
    """For each test record, the ``output`` of the training record with the most similar instruction and input."""
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
