"""docs/spam.md's spam-classification table (markdown) from finished spam runs: the model and its TF-IDF + linear SVM
anchor on the natural-mix test split (false-positive rate on ham, recall, precision, F1, ROC-AUC, average precision)
and the balanced test's accuracy, read from each run's all_results.json (recipes/reproduce_spam.sh calls it).

    python scripts/spam_table.py runs/spam-full runs/spam-all
"""

import json
import math
import os
import sys


def summary_table(run_dirs) -> str:
    """The table from the ``all_results.json`` of finished runs: the model and its SVM on both test sets."""
    rows = ["| run | classifier | natural test: FPR on ham | recall | precision | F1 | ROC-AUC | AP | balanced test acc. |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for folder in run_dirs:
        with open(os.path.join(folder, "all_results.json")) as f:
            m = json.load(f)
        name = f"{os.path.basename(os.path.normpath(folder))} ({m['training_split']}, {m['mode']})"
        for label, prefix in ((f"hfgpt, P(spam) > {m['decision_threshold']:.4g}", ""), ("TF-IDF + linear SVM", "svm_")):
            if f"{prefix}natural_test_fpr" not in m:
                continue
            n = lambda key: m.get(f"{prefix}natural_test_{key}", math.nan)  # noqa: E731
            fp, ham = m[f"{prefix}natural_test_false_positives"], m["natural_test_messages"] - m["natural_test_spam"]
            rows.append(f"| {name} | {label} | {n('fpr'):.2%} ({fp} of {ham}) | {n('recall'):.2%} | "
                        f"{n('precision'):.2%} | {n('f1'):.2%} | {n('roc_auc'):.4f} | {n('average_precision'):.4f} | "
                        f"{m[f'{prefix}test_accuracy']:.2%} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python scripts/spam_table.py RUN_FOLDER [RUN_FOLDER ...]")
    print(summary_table(sys.argv[1:]))
