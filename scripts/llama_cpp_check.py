"""Does llama.cpp run an hfgpt folder as hfgpt does? Export it to GGUF (f32 and q8_0), run each file in llama.cpp
through llama-cpp-python, and compare with the transformers model:

* tokens: llama.cpp's tokenizer (from the GGUF) against the folder's on the prompt and a few pydoc texts;
* logits: max |difference| over the prompt and the greedy continuation (hfgpt's ``generate``);
* greedy: llama.cpp's own greedy continuation (argmax each step) against hfgpt's, as token ids and as text.

    pip install llama-cpp-python        # builds llama.cpp (about 20 minutes on 2 cores)
    python scripts/llama_cpp_check.py runs/pretrain [--prompt "The" ...] [--max-new-tokens 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch


def greedy_pair(model, tokenizer, llm, prompt: str, max_new_tokens: int) -> dict:
    """hfgpt's greedy ``generate`` and llama.cpp's greedy loop from the same prompt, and llama.cpp's logits on
    hfgpt's whole sequence."""
    prompt_ids = tokenizer(prompt).input_ids
    max_new_tokens = min(max_new_tokens, model.config.n_positions - len(prompt_ids))
    with torch.no_grad():
        ours = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
                              attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long))[0].tolist()
        our_logits = model(torch.tensor([ours])).logits[0].numpy()
    llm.reset()
    llm.eval(ours)  # the same sequence in llama.cpp: logits at every position
    logit_diff = float(np.abs(np.asarray(llm.scores[: len(ours)]) - our_logits).max())

    llm.reset()
    theirs = list(prompt_ids)
    llm.eval(theirs)
    eos = model.config.eos_token_id
    while len(theirs) < len(ours) and (len(theirs) == len(prompt_ids) or theirs[-1] != eos):
        theirs.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(theirs[-1:])
    new = slice(len(prompt_ids), None)
    return {"logit_diff": logit_diff, "positions": len(ours), "tokens_identical": ours == theirs,
            "first_difference": next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None),
            "text_identical": tokenizer.decode(ours[new], skip_special_tokens=True)
            == llm.detokenize(theirs[new]).decode("utf-8", "replace"),
            "text": tokenizer.decode(ours[new])}


def check(folder: str, outtype: str, prompts: list[str], max_new_tokens: int, work_dir: str) -> dict:
    from llama_cpp import Llama
    from pydoc_data.topics import topics

    from hfgpt.convert import load_causal_lm
    from hfgpt.export import export_gguf
    from hfgpt.tokenization import load_tokenizer

    tokenizer, model = load_tokenizer(folder), load_causal_lm(folder).eval()
    path = export_gguf(folder, os.path.join(work_dir, f"model-{outtype}.gguf"), outtype=outtype, progress=False)
    llm = Llama(model_path=path, n_ctx=model.config.n_positions, logits_all=True, verbose=False,
                n_threads=os.cpu_count())

    texts = prompts + [topics[name][:2000] for name in sorted(topics)[:5]]
    same_tokens = sum(llm.tokenize(text.encode(), add_bos=False, special=True)
                      == tokenizer(text, verbose=False).input_ids for text in texts)
    runs = [greedy_pair(model, tokenizer, llm, prompt, max_new_tokens) for prompt in prompts]
    llm.close()  # now, not at interpreter shutdown, where llama-cpp-python's finaliser fails
    return {
        "outtype": outtype, "file_mib": round(os.path.getsize(path) / 2**20, 2),
        "tokenization_identical": f"{same_tokens}/{len(texts)}",
        "max_abs_logit_diff": max(r["logit_diff"] for r in runs),
        "positions_compared": sum(r["positions"] for r in runs),
        "greedy_tokens_identical": f"{sum(r['tokens_identical'] for r in runs)}/{len(runs)}",
        "greedy_text_identical": f"{sum(r['text_identical'] for r in runs)}/{len(runs)}",
        "runs": runs,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="an hfgpt model folder with its tokenizer")
    parser.add_argument("--prompt", action="append", default=None,
                        help="a prompt (repeatable; default: 'The' and the openings of four pydoc topics)")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--outtypes", nargs="+", default=["f32", "q8_0"], choices=["f32", "f16", "q8_0"])
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python is not installed: pip install llama-cpp-python", file=sys.stderr)
        return 2
    from pydoc_data.topics import topics

    prompts = args.prompt or ["The"] + [" ".join(topics[name].split()[:8]) for name in sorted(topics)[10:14]]
    with tempfile.TemporaryDirectory() as work_dir:
        results = [check(args.folder, t, prompts, args.max_new_tokens, work_dir) for t in args.outtypes]
    for r in results:
        print(f"{r['outtype']:>5}: {r['file_mib']} MiB; tokenization identical on {r['tokenization_identical']} "
              f"texts; max |logit diff| {r['max_abs_logit_diff']:.2e} over {r['positions_compared']} positions; "
              f"greedy tokens identical {r['greedy_tokens_identical']}, text identical {r['greedy_text_identical']}")
        for prompt, run in zip(prompts, r["runs"]):
            if not run["tokens_identical"]:
                print(f"       {prompt!r}: first different token at position {run['first_difference']}")
    print(f"hfgpt's greedy continuation of {prompts[-1]!r}: {results[0]['runs'][-1]['text']!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
