"""Does llama.cpp run an hfgpt folder as hfgpt does? Export it to GGUF (f32 and q8_0), run each file in llama.cpp
through llama-cpp-python, and compare with the transformers model:

* tokens: llama.cpp's tokenizer (from the GGUF) against the folder's on the prompt and a few pydoc texts;
* logits: max |difference| over the prompt and the greedy continuation (hfgpt's ``generate``);
* greedy: llama.cpp's own greedy continuation (argmax each step) against hfgpt's, as token ids and as text.

    pip install llama-cpp-python        # builds llama.cpp (about 20 minutes on 2 cores)
    python scripts/llama_cpp_check.py runs/pretrain [--prompt "The"] [--max-new-tokens 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch


def check(folder: str, outtype: str, prompt: str, max_new_tokens: int, work_dir: str) -> dict:
    from llama_cpp import Llama
    from pydoc_data.topics import topics

    from hfgpt.convert import _load_ours
    from hfgpt.export import export_gguf
    from hfgpt.tokenization import load_tokenizer

    tokenizer, model = load_tokenizer(folder), _load_ours(folder).eval()
    path = export_gguf(folder, os.path.join(work_dir, f"model-{outtype}.gguf"), outtype=outtype, progress=False)
    n_ctx = model.config.n_positions
    llm = Llama(model_path=path, n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=os.cpu_count())

    texts = [prompt] + [topics[name][:2000] for name in sorted(topics)[:5]]
    same_tokens = sum(llm.tokenize(text.encode(), add_bos=False, special=True) == tokenizer(text).input_ids
                      for text in texts)

    prompt_ids = tokenizer(prompt).input_ids
    max_new_tokens = min(max_new_tokens, n_ctx - len(prompt_ids))
    with torch.no_grad():
        ours = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
                              attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long))[0].tolist()
        our_logits = model(torch.tensor([ours])).logits[0].numpy()
    llm.eval(ours)  # the same sequence in llama.cpp: logits at every position
    logit_diff = float(np.abs(np.asarray(llm.scores[: len(ours)]) - our_logits).max())

    llm.reset()
    theirs = list(prompt_ids)
    llm.eval(theirs)
    eos = model.config.eos_token_id
    while len(theirs) < len(ours) and (len(theirs) == len(prompt_ids) or theirs[-1] != eos):
        theirs.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(theirs[-1:])
    first_difference = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    return {
        "outtype": outtype, "file_mib": round(os.path.getsize(path) / 2**20, 2),
        "tokenization_identical": f"{same_tokens}/{len(texts)} texts",
        "max_abs_logit_diff": logit_diff, "positions_compared": len(ours),
        "greedy_tokens_identical": ours == theirs, "first_different_position": first_difference,
        "greedy_text_identical": tokenizer.decode(ours[len(prompt_ids):], skip_special_tokens=True)
        == llm.detokenize(theirs[len(prompt_ids):]).decode("utf-8", "replace"),
        "greedy_text": tokenizer.decode(ours[len(prompt_ids):]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="an hfgpt model folder with its tokenizer")
    parser.add_argument("--prompt", default="The")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--outtypes", nargs="+", default=["f32", "q8_0"], choices=["f32", "f16", "q8_0"])
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python is not installed: pip install llama-cpp-python", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work_dir:
        results = [check(args.folder, t, args.prompt, args.max_new_tokens, work_dir) for t in args.outtypes]
    for r in results:
        print(f"{r['outtype']:>5}: {r['file_mib']} MiB; tokenization identical on {r['tokenization_identical']}; "
              f"max |logit diff| {r['max_abs_logit_diff']:.2e} over {r['positions_compared']} positions; greedy "
              f"tokens identical: {r['greedy_tokens_identical']}"
              + ("" if r["greedy_tokens_identical"] else f" (first difference at {r['first_different_position']})")
              + f"; greedy text identical: {r['greedy_text_identical']}")
    print(f"greedy continuation of {args.prompt!r}: {results[0]['greedy_text']!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
