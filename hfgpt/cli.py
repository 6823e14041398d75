"""The ``hfgpt`` command line: ``convert`` (GPT-2 or the book's ``GPTModel`` <-> hfgpt), ``push`` (to the Hub),
``export`` (GGUF for llama.cpp / Ollama, ONNX for onnxruntime) and ``serve`` (transformers' OpenAI-compatible server).

Each subcommand is an ``add_<name>_command(subparsers)`` listed in ``COMMANDS``; heavy imports stay inside the
commands so ``hfgpt --help`` is instant. Bad input (``HfgptInputError``) prints one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from .errors import HfgptInputError


# ---------------------------------------------------------------------------------------------------- convert
def _check_convert_args(args: argparse.Namespace, source_kind: str | None) -> None:
    if source_kind is None:
        raise HfgptInputError("give --from gpt2|book (or --to gpt2 to convert an hfgpt folder).")
    if source_kind == "hfgpt" and args.target_format == "hfgpt":
        raise HfgptInputError("nothing to do: the source is already an hfgpt model (did you mean --to gpt2?).")
    if args.n_head is not None and source_kind != "book":
        raise HfgptInputError("--n-head only applies to --from book (GPT-2 and hfgpt folders store it).")
    if args.pad_vocab_multiple is not None and (source_kind == "hfgpt" or args.target_format == "gpt2"):
        raise HfgptInputError("--pad-vocab-multiple applies when writing an hfgpt folder from --from gpt2|book.")
    if args.pad_vocab_multiple is not None and args.pad_vocab_multiple < 1:  # known before any weights are read
        raise HfgptInputError(f"--pad-vocab-multiple must be a positive integer, got {args.pad_vocab_multiple}.")
    source = args.source
    if source_kind == "book":
        if not os.path.isfile(source):
            raise HfgptInputError(f"book checkpoint not found: {source!r} (a .pth file saved with torch.save).")
    elif source_kind == "gpt2":
        hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", source) and not source.endswith(
            (".pth", ".pt", ".bin", ".safetensors"))
        if not os.path.exists(source) and not hub_id:
            raise HfgptInputError(f"GPT-2 source not found: {source!r} is neither a folder nor a Hub id.")
        if os.path.isfile(source):
            raise HfgptInputError(f"GPT-2 source {source!r} is a file: pass the folder written by save_pretrained.")
    elif not os.path.isdir(source):
        raise HfgptInputError(f"hfgpt model folder not found: {source!r}.")
    if os.path.isfile(args.dest):
        raise HfgptInputError(f"destination {args.dest!r} is a file; give a folder.")


def _tokenizer_for(args: argparse.Namespace, source_kind: str):
    """The tokenizer to save next to the model: ``--tokenizer`` (which must load), else the source's own if it has
    one, else ``None``. Loaded before anything is written, so a bad ``--tokenizer`` leaves no folder behind."""
    from .tokenization import has_tokenizer_files, load_tokenizer

    source = args.tokenizer or (None if source_kind == "book" else args.source)
    if source is None or (not args.tokenizer and os.path.isdir(source) and not has_tokenizer_files(source)):
        return None
    try:
        return load_tokenizer(source)
    except OSError as error:  # no tokenizer files there, or a Hub id that cannot be fetched
        if not args.tokenizer:
            return None
        raise HfgptInputError(f"no tokenizer found at {source!r}: {error}") from error


def run_convert(args: argparse.Namespace) -> int:
    from . import convert

    source_kind = args.source_format or ("hfgpt" if args.target_format == "gpt2" else None)
    _check_convert_args(args, source_kind)
    tokenizer = _tokenizer_for(args, source_kind)
    if source_kind == "gpt2":
        try:
            model = convert.from_hf_gpt2(args.source, pad_vocab_size_multiple=args.pad_vocab_multiple)
        except OSError as error:
            if os.path.exists(args.source):
                raise
            raise HfgptInputError(f"cannot load the GPT-2 {args.source!r} (a Hub id?): {error}") from error
    elif source_kind == "book":
        config = {"n_heads": args.n_head, "pad_vocab_size_multiple": args.pad_vocab_multiple}  # None: the default
        model = convert.from_book_checkpoint(args.source, config=config)
    else:
        model = args.source  # to_hf_gpt2 loads the folder
    if args.target_format == "gpt2":
        model = convert.to_hf_gpt2(model)

    model.save_pretrained(args.dest)
    if tokenizer is not None:
        tokenizer.save_pretrained(args.dest)
    c = model.config
    tied = "tied" if c.tie_word_embeddings else "untied"
    print(
        f"Wrote {type(model).__name__} ({c.n_layer} layers, {c.n_embd} wide, {c.n_head} heads, vocab {c.vocab_size}, "
        f"{tied} output head) to {args.dest}" + ("" if tokenizer is not None else " (no tokenizer found)")
    )
    return 0


def add_convert_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert weights: GPT-2 or the book's GPTModel -> hfgpt, or hfgpt -> GPT-2",
        description="Convert weights between transformers' GPT-2, the book's GPTModel state dict and hfgpt.",
    )
    parser.add_argument("--from", dest="source_format", choices=("gpt2", "book", "hfgpt"),
                        help="gpt2: a Hub id or save_pretrained folder; book: a .pth state dict; hfgpt: an hfgpt "
                        "folder (the default with --to gpt2)")
    parser.add_argument("--to", dest="target_format", choices=("hfgpt", "gpt2"), default="hfgpt",
                        help="what to write: an hfgpt folder (default) or a GPT2LMHeadModel folder")
    parser.add_argument("source", metavar="SOURCE", help="Hub id, folder or .pth file")
    parser.add_argument("dest", metavar="DEST", help="output folder (written with save_pretrained)")
    parser.add_argument("--n-head", type=int, default=None, metavar="N",
                        help="attention heads of a book checkpoint (default: the GPT-2 size of that width, "
                        "e.g. 768 -> 12)")
    parser.add_argument("--pad-vocab-multiple", type=int, default=None, metavar="N",
                        help="round the hfgpt model's embedding and output head rows up to a multiple of N "
                        "(nanoGPT's 64: 50257 -> 50304, for GPU matrix multiplies); vocabulary and logits keep "
                        "the real size")
    parser.add_argument("--tokenizer", default=None, metavar="PATH_OR_ID",
                        help="tokenizer to save next to the model (default: the one in a gpt2/hfgpt source, if any)")
    parser.set_defaults(func=run_convert)


# ------------------------------------------------------------------------------------------------------- push
def run_push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub

    if not os.path.isdir(args.folder):
        raise HfgptInputError(f"model folder not found: {args.folder!r}.")
    files = push_to_hub(args.folder, args.repo_id, out_dir=args.out, private=args.private, dry_run=args.dry_run,
                        datasets=args.dataset)
    verb = "Would upload" if args.dry_run else "Uploaded"
    where = f" (folder: {args.out})" if args.out else ""
    print(f"{verb} {len(files)} files to {args.repo_id}{where}:")
    for name in files:
        print(f"  {name}")
    return 0


def add_push_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a model (or LoRA adapter) folder with its code and a model card to the Hub",
        description="Build the upload folder (weights, tokenizer, modeling code with auto_map, metrics, README.md "
        "model card) and upload it. --dry-run builds it and lists its files without any network access.",
    )  # fmt: skip
    parser.add_argument("folder", help="a folder written by a recipe or save_pretrained")
    parser.add_argument("repo_id", help="the Hub repository, e.g. you/hfgpt-small")
    parser.add_argument("--dry-run", action="store_true", help="build and list the upload folder; upload nothing")
    parser.add_argument("--out", default=None, metavar="DIR", help="where to build the upload folder (default: temp)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dataset", action="append", default=None, help="dataset id for the card (repeatable)")
    parser.set_defaults(func=run_push)


# ----------------------------------------------------------------------------------------------------- export
def _check_export_args(args: argparse.Namespace) -> None:
    """What can be told from paths alone, before torch is imported."""
    folder = args.folder
    if not os.path.isdir(folder):
        what = "a file" if os.path.isfile(folder) else "not found"
        raise HfgptInputError(f"model folder {folder!r} is {what}: pass the folder a recipe or save_pretrained wrote.")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise HfgptInputError(f"{folder!r} has no config.json: not a saved model folder.")
    out = args.out
    if args.format == "gguf":
        if os.path.isdir(out):
            raise HfgptInputError(f"OUT {out!r} is a folder; give the .gguf file to write, e.g. {out}/model.gguf.")
        if os.path.exists(out) and not args.overwrite:
            raise HfgptInputError(f"{out!r} exists: choose another name or pass --overwrite.")
    else:
        if os.path.isfile(out):
            raise HfgptInputError(f"OUT_DIR {out!r} is a file; give a folder.")
        if os.path.exists(os.path.join(out, "model.onnx")) and not args.overwrite:
            raise HfgptInputError(f"{os.path.join(out, 'model.onnx')!r} exists: choose another folder or pass "
                                  "--overwrite.")


def run_export(args: argparse.Namespace) -> int:
    _check_export_args(args)
    if args.format == "onnx":
        from .export.onnx import export_onnx

        path = export_onnx(args.folder, args.out, tokenizer=args.tokenizer, overwrite=args.overwrite)
        print(f"Wrote {path} (inputs input_ids, attention_mask; output logits) with config.json and the tokenizer "
              f"to {args.out}")
        return 0

    from .export.gguf import export_gguf, is_alpaca_template, tokenizer_for_export

    tokenizer = tokenizer_for_export(args.folder, args.tokenizer)
    modelfile = os.path.join(os.path.dirname(os.path.abspath(args.out)), "Modelfile")
    alpaca = is_alpaca_template(getattr(tokenizer, "chat_template", None))
    if alpaca and os.path.exists(modelfile) and not args.overwrite:
        raise HfgptInputError(f"{modelfile!r} exists and this instruction-tuned model would write its own there: "
                              "write the .gguf into another folder or pass --overwrite.")
    path = export_gguf(args.folder, args.out, outtype=args.outtype, tokenizer=tokenizer)
    size = os.path.getsize(path) / 2**20
    print(f"Wrote {path} ({args.outtype}, {size:.1f} MiB): llama-server -m {path}" + (
        f"; Ollama: {modelfile} (ollama create NAME -f {modelfile})" if alpaca else ""))
    return 0


def add_export_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model folder: GGUF (llama.cpp, llama-server, Ollama) or ONNX (onnxruntime)",
        description="Export an hfgpt folder for other runtimes. Needs the export extra: pip install 'hfgpt[export]'.",
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    gguf = formats.add_parser(
        "gguf", help="a llama.cpp GGUF (+ an Ollama Modelfile for an instruction-tuned folder)",
        description="Write a llama.cpp 'gpt2' GGUF with the tokenizer; an instruction-tuned folder (Alpaca chat "
        "template) also gets its chat template in the GGUF and an Ollama Modelfile next to it.",
    )
    gguf.add_argument("folder", metavar="FOLDER", help="an hfgpt model folder (with its tokenizer)")
    gguf.add_argument("out", metavar="OUT.gguf", help="the GGUF file to write")
    gguf.add_argument("--outtype", choices=("f32", "f16", "q8_0"), default="f32",
                      help="type of the weight matrices (norms, biases, positions stay f32); default f32")
    onnx = formats.add_parser(
        "onnx", help="model.onnx (logits for input_ids, attention_mask) + config + tokenizer",
        description="torch.onnx.export(dynamo=True) of the logits, dynamic batch and sequence axes, no KV cache.",
    )
    onnx.add_argument("folder", metavar="FOLDER", help="an hfgpt model folder")
    onnx.add_argument("out", metavar="OUT_DIR", help="the folder to write model.onnx, config.json and the tokenizer to")
    for sub in (gguf, onnx):
        sub.add_argument("--tokenizer", default=None, metavar="PATH_OR_ID",
                         help="the model's tokenizer, when the folder has none (e.g. gpt2)")
        sub.add_argument("--overwrite", action="store_true", help="replace existing output files")
        sub.set_defaults(func=run_export)


# ------------------------------------------------------------------------------------------------------ serve
def run_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(args.folder, host=args.host, port=args.port, continuous_batching=args.continuous_batching,
          cb_num_blocks=args.cb_num_blocks)
    return 0


def add_serve_command(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve a model folder with transformers' OpenAI-compatible server",
                                   description="/v1/chat/completions (needs a chat template, as the instruction "
                                   "recipe saves), /v1/completions, /v1/models. Needs: pip install 'hfgpt[serve]'.")
    parser.add_argument("folder", metavar="FOLDER", help="an hfgpt model folder (with its tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--continuous-batching", action="store_true", help="paged attention, many requests at once")
    parser.add_argument("--cb-num-blocks", type=int, default=None, metavar="N",
                        help="paged cache blocks (default: sized from free memory, most of a CPU machine's RAM)")
    parser.set_defaults(func=run_serve)


# ------------------------------------------------------------------------------------------------------- main
COMMANDS = (add_convert_command, add_push_command, add_export_command, add_serve_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfgpt",
        description="The GPT of 'Build a Large Language Model (From Scratch)' as a Hugging Face transformers model.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args) or 0
    except HfgptInputError as error:
        print(f"hfgpt {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
