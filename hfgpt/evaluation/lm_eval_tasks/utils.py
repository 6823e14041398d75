"""hfgpt's lm-evaluation-harness perplexity tasks: documents from a JSON-lines file beside this one, scored like
lm-eval's ``wikitext`` plus ``token_perplexity`` (``exp(-sum(log-likelihood) / sum(tokens))``, the recipe's
``eval_perplexity``), the tokens counted with the model's own tokenizer. lm-eval imports this file by its path, so it
imports nothing from hfgpt.
"""

import json
import math
import os
import re


def load_documents(data_file, pretrained=None, tokenizer=None, trust_remote_code=False, add_bos_token=None,
                   **_metadata):
    """The ``test`` split: one document per line of ``data_file``, with ``n_tokens`` (-1 without tokenizer)."""
    import datasets

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), data_file)
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    name = tokenizer if isinstance(tokenizer, str) else pretrained if isinstance(pretrained, str) else None
    counts = [-1] * len(texts)
    if name is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=bool(trust_remote_code))
        special = {} if add_bos_token is None else {"add_special_tokens": bool(add_bos_token)}  # as lm-eval's hf
        counts = [len(tok.encode(text, verbose=False, **special)) for text in texts]
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": texts, "n_tokens": counts})})


def process_results(doc, results):
    """lm-eval's wikitext metrics for one document, and its (log-likelihood, tokens) for ``token_perplexity``."""
    (loglikelihood,) = results
    words = len(re.split(r"\s+", doc["text"]))
    n_bytes = len(doc["text"].encode("utf-8"))
    return {
        "token_perplexity": (loglikelihood, doc["n_tokens"]),
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }


def token_perplexity(items):
    """``exp`` of the mean negative log-likelihood per token over all documents (NaN without token counts)."""
    loglikelihoods, counts = zip(*items)
    if min(counts) < 0:
        return float("nan")
    return math.exp(-sum(loglikelihoods) / sum(counts))
