"""hfgpt.evaluation.generation: ROUGE-L against the reference answers and the nearest-neighbour baseline."""

import pytest
from conftest import INSTRUCTION_RECORDS

from hfgpt.evaluation.generation import nearest_neighbour_responses, rouge_l, score_instruction_responses


def test_rouge_l_is_one_for_the_reference_and_lower_for_other_text():
    references = ["The meal is cooked by the chef.", "Jupiter is the largest planet."]
    assert rouge_l(references, references) == pytest.approx(1.0)
    assert rouge_l(["The chef cooked.", "Mars is red."], references) < 0.6
    assert rouge_l([], []) == 0.0


def test_nearest_neighbour_answers_with_the_most_similar_training_instruction():
    train, test = INSTRUCTION_RECORDS[:10], [{"instruction": "What is the capital city of France?", "input": "",
                                              "output": "Paris."},
                                             {"instruction": "Convert this active sentence to passive.",
                                              "input": "The dog chases the cat.", "output": "The cat is chased."}]
    assert nearest_neighbour_responses(train, test) == ["The capital of France is Paris.",
                                                        "The meal is cooked by the chef."]


def test_scores_put_the_model_beside_the_baseline():
    test = [{**r, "model_response": r["output"]} for r in INSTRUCTION_RECORDS[10:]]
    scores = score_instruction_responses(test, INSTRUCTION_RECORDS[:10])
    assert scores["rouge_l"] == pytest.approx(1.0) and scores["rouge_l_responses"] == 2
    assert 0 <= scores["nearest_neighbour_rouge_l"] < 1
