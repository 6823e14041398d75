"""Benchmark: the book's chapter-2 ``GPTDatasetV1`` against hfgpt's ``tokenize_and_window`` pipeline.

Both get the same ~5 MB corpus (documents joined by ``<|endoftext|>``) and the same byte-level BPE tokenizer (vocab
8000, trained here on that corpus), and cut windows of ``--max-length`` tokens every ``--stride`` tokens.

(a) book: ``tokenizer.encode(text)`` on the joined text, then the Python loop that builds one ``torch.tensor`` input
    and one target per window (``GPTDatasetV1.__init__`` verbatim, with the HF tokenizer instead of tiktoken);
(b) hfgpt: ``tokenize_and_window(Dataset(documents), tokenizer, max_length, stride)`` (batched ``Dataset.map`` over
    the Rust tokenizer, numpy windows, Arrow dataset).

Each is run ``--repeats`` times, interleaved (a, b, a, b, ...), after one untimed warm-up; the median is reported, for
the whole step (tokenize + window) and for the windowing stage alone (book loop vs ``group_into_windows`` on the
same token list). Tokens/s counts the tokens of the stream.

    python bench/data_pipeline.py                    # default corpus, 5 MB
    python bench/data_pipeline.py --text-file ../shared/data/the-verdict.txt --mb 5
    python bench/data_pipeline.py --quick            # smoke test: small corpus, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

EOT = "<|endoftext|>"


def build_corpus(args) -> list[str]:
    target = int(args.mb * 1_000_000)
    if args.text_file:
        with open(args.text_file, encoding="utf-8") as fh:
            base = [fh.read()]
    else:
        from hfgpt.data import default_corpus

        base = default_corpus(max_chars=target)
    docs, total = [], 0
    while total < target:  # repeat the documents until the corpus reaches the requested size
        for doc in base:
            piece = doc[: target - total]
            docs.append(piece)
            total += len(piece)
            if total >= target:
                break
    return docs


def train_tokenizer(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, pad_token=EOT)


class GPTDatasetV1:
    """The book's listing 2.5, with the tokenizer call adapted to a transformers tokenizer (and timers)."""

    def __init__(self, txt, tokenizer, max_length, stride, token_ids=None):
        import torch

        self.input_ids = []
        self.target_ids = []
        t0 = time.perf_counter()
        if token_ids is None:
            # Book: token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})  (tiktoken)
            token_ids = tokenizer.encode(txt)
        t1 = time.perf_counter()
        assert len(token_ids) > max_length, "Number of tokenized inputs must at least be equal to max_length+1"
        for i in range(0, len(token_ids) - max_length, stride):
            input_chunk = token_ids[i : i + max_length]
            target_chunk = token_ids[i + 1 : i + max_length + 1]
            self.input_ids.append(torch.tensor(input_chunk))
            self.target_ids.append(torch.tensor(target_chunk))
        t2 = time.perf_counter()
        self.n_tokens = len(token_ids)
        self.token_ids = token_ids
        self.tokenize_s, self.window_s = t1 - t0, t2 - t1

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text-file", help="repeat this text file as documents (default: the embedded corpus)")
    parser.add_argument("--mb", type=float, default=5.0, help="corpus size in millions of characters (default 5)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--stride", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--quick", action="store_true", help="smoke test: 0.2 MB corpus, 1 repeat")
    parser.add_argument(
        "--single-thread", action="store_true", help="TOKENIZERS_PARALLELISM=false (the Rust tokenizer uses one core)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.mb, args.repeats = min(args.mb, 0.2), 1
    if args.single_thread:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import datasets
    import numpy as np

    from hfgpt.data import group_into_windows, token_stream, tokenize_and_window

    datasets.disable_progress_bars()
    t = time.perf_counter()
    docs = build_corpus(args)
    chars = sum(map(len, docs))
    print(f"corpus: {len(docs)} documents, {chars:,} characters ({time.perf_counter() - t:.1f} s to build)")
    t = time.perf_counter()
    tokenizer = train_tokenizer(docs, args.vocab_size)
    print(f"tokenizer: byte-level BPE, vocab {len(tokenizer)}, trained in {time.perf_counter() - t:.1f} s")
    text = EOT.join(docs)
    dataset = datasets.Dataset.from_dict({"text": docs})
    L, S = args.max_length, args.stride

    # Warm-up (imports, thread pools, datasets' first map): not timed.
    GPTDatasetV1(text[:50_000], tokenizer, min(L, 64), min(S, 32))
    tokenize_and_window(datasets.Dataset.from_dict({"text": [text[:50_000]]}), tokenizer, min(L, 64), min(S, 32))

    book_total, book_tok, book_win, ours_total, ours_win = [], [], [], [], []
    book = ours = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        book = GPTDatasetV1(text, tokenizer, L, S)
        book_total.append(time.perf_counter() - t)
        book_tok.append(book.tokenize_s)
        book_win.append(book.window_s)
        t = time.perf_counter()
        ours = tokenize_and_window(dataset, tokenizer, L, S)
        ours_total.append(time.perf_counter() - t)
        # windowing stage alone, on the same token list the book's loop got
        stream = np.asarray(book.token_ids, dtype=np.int32)
        t = time.perf_counter()
        group_into_windows(stream, L, S)
        ours_win.append(time.perf_counter() - t)

    n_tokens = book.n_tokens
    stream = token_stream(dataset, tokenizer)
    same_stream = len(stream) == n_tokens and bool((stream == np.asarray(book.token_ids)).all())
    first_ours = ours[0]["input_ids"]
    same_first = first_ours == book.input_ids[0].tolist() and ours[0]["labels"][1:] == book.target_ids[0][:-1].tolist()
    expected_extra = int((n_tokens - L) % S == 0)

    med = statistics.median
    bt, ot, bw, ow = med(book_total), med(ours_total), med(book_win), med(ours_win)
    print(f"\nsettings: max_length={L}, stride={S}, {n_tokens:,} tokens, repeats={args.repeats} (median), "
          f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}, {os.cpu_count()} CPUs")
    print(f"windows: book GPTDatasetV1 {len(book):,}, hfgpt {len(ours):,} "
          f"(hfgpt has one more exactly when (N - max_length) % stride == 0: {bool(expected_extra)}; "
          f"{'OK' if len(ours) - len(book) == expected_extra else 'MISMATCH'})")
    print(f"same token stream: {same_stream}; same first window (inputs, and targets = labels shifted): {same_first}")
    print(f"\n{'':28}{'seconds':>10}{'tokens/s':>16}")
    detail = f"   (encode {med(book_tok):.3f} s + loop {bw:.3f} s)"
    print(f"{'(a) book, whole step':28}{bt:10.3f}{n_tokens / bt:16,.0f}{detail}")
    print(f"{'(b) hfgpt, whole step':28}{ot:10.3f}{n_tokens / ot:16,.0f}")
    print(f"{'(a) book, window loop only':28}{bw:10.3f}{n_tokens / bw:16,.0f}")
    print(f"{'(b) hfgpt, windows only':28}{ow:10.3f}{n_tokens / ow:16,.0f}")
    print(f"\nspeed-up, whole step (tokenize + window): {bt / ot:.1f}x")
    print(f"speed-up, windowing stage (book loop vs group_into_windows): {bw / ow:.1f}x")
    ok = same_stream and same_first and len(ours) - len(book) == expected_extra
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
