"""Everything that scores a model: language-model metrics and baselines (:mod:`.language_model`), generated responses
(:mod:`.generation`) and their judge (:mod:`.judge`); any binary classifier (metric, decision threshold, SVM anchor,
plots) in :mod:`.classification`, imported from there (it imports ``evaluate``, which takes seconds);
lm-evaluation-harness in :mod:`.lm_eval` (optional). Import each from its module."""
