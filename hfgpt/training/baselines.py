"""The spam recipe's classical baseline, until it moves to :mod:`hfgpt.evaluation` (the language-model baselines and
bits per byte are in :mod:`hfgpt.evaluation.language_model`).

TF-IDF over character n-grams and a linear SVM (scikit-learn), the classical filter, trained in seconds on the same
split as the GPT and scored on the same test sets.
"""

from __future__ import annotations

import numpy as np


def tfidf_svm(texts, labels, class_weight: str | None = None):
    """A fitted scikit-learn pipeline: TF-IDF of character 2- to 5-grams within word boundaries (sublinear term
    frequency) into ``LinearSVC`` (its defaults; ``class_weight="balanced"`` for an imbalanced training split). Its
    ``decision_function`` is the score, positive for spam (label 1) by the SVM's own rule."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                          LinearSVC(class_weight=class_weight))
    return model.fit(list(texts), np.asarray(labels))
