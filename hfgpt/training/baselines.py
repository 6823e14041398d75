"""Baselines a trained model must beat.

- Pretraining: a unigram model predicts every token by its frequency in the training data, ignoring context, so a GPT
  that learned anything from context sits well below its loss.
- Spam classification: TF-IDF over character n-grams and a linear SVM (scikit-learn), the classical filter, trained in
  seconds on the same split as the GPT and scored on the same test sets.
"""

from __future__ import annotations

import math

import numpy as np


def _token_arrays(windows, column: str):
    for start in range(0, len(windows), 4096):
        yield np.asarray(windows[start : start + 4096][column], dtype=np.int64)


def unigram_loss(train_windows, eval_windows, vocab_size: int, column: str = "input_ids") -> float:
    """Cross-entropy (nats/token) on ``eval_windows`` of the add-one-smoothed token frequencies of
    ``train_windows``, scored on the same positions as the causal-LM loss (every token but each window's first)."""
    counts = np.ones(vocab_size, dtype=np.float64)  # add-one smoothing: unseen tokens keep a small probability
    for block in _token_arrays(train_windows, column):
        counts += np.bincount(block.ravel(), minlength=vocab_size)[:vocab_size]
    log_probs = np.log(counts / counts.sum())
    total, n = 0.0, 0
    for block in _token_arrays(eval_windows, column):
        targets = block[:, 1:].ravel()
        total -= float(log_probs[targets].sum())
        n += targets.size
    return total / n if n else math.nan


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
