"""GGUF export for llama.cpp and Ollama: hfgpt -> GPT-2's layout -> a llama.cpp ``gpt2`` GGUF, as llama.cpp's
``convert_hf_to_gguf.py`` writes it, with the ``gguf`` package alone. What differs: ``feed_forward_length`` is
``n_inner``; the pre-tokenizer is read from the tokenizer's structure (the converter hashes known vocabularies, which a
fresh BPE never matches); the ``{% generation %}`` tags leave the chat template (llama-cpp-python refuses them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile

from ..errors import HfgptFileNotFoundError, HfgptInputError

logger = logging.getLogger("hfgpt.export")

# outtype -> (gguf.LlamaFileType, gguf.GGMLQuantizationType of the 2-D weight matrices), as the converter's --outtype.
OUTTYPES = {"f32": ("ALL_F32", "F32"), "f16": ("MOSTLY_F16", "F16"), "q8_0": ("MOSTLY_Q8_0", "Q8_0")}
# GPT-2's Conv1D weights are [in, out]; GGUF stores them as nn.Linear's [out, in] (the converter transposes these).
CONV1D_WEIGHTS = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")
GENERATION_TAGS = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")
ALPACA_MARKERS = ("### Instruction:", "### Response:")


def llama_cpp_pre_tokenizer(tokenizer) -> str:
    """The ``tokenizer.ggml.pre`` name llama.cpp needs: ``"gpt-2"`` for GPT-2's byte-level BPE split; any other
    tokenizer would tokenize differently in llama.cpp, so it is refused."""
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise HfgptInputError(f"The tokenizer {name!r} has no tokenizers backend (tokenizer.json): GGUF export needs "
                              "a byte-level BPE such as GPT-2's or one from hfgpt.tokenization.train_bpe_tokenizer.")
    spec = json.loads(backend.to_str())
    model, normalizer, pre = spec["model"].get("type"), spec.get("normalizer"), spec.get("pre_tokenizer") or {}
    gpt2_split = pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space")
    if model == "BPE" and normalizer is None and gpt2_split:
        return "gpt-2"
    found = f"model {model}, normalizer {(normalizer or {}).get('type')}, pre-tokenizer {json.dumps(pre)}"
    raise HfgptInputError(f"The tokenizer {name!r} ({found}) is not GPT-2's byte-level BPE (ByteLevel with GPT-2's "
                          f"regex, no prefix space, no normalizer), the only pre-tokenizer llama.cpp's gpt2 models "
                          f"know: export a model trained with GPT-2's tokenizer or "
                          f"hfgpt.tokenization.train_bpe_tokenizer.")


def _looks_special(token: str) -> bool:
    """The converter's ``does_token_look_special``: control tokens some tokenizers do not mark as special."""
    return token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (token.startswith("<|") and token.endswith("|>")) \
        or (token.startswith("<unused") and token.endswith(">"))


def gguf_vocab(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens and token types for ``vocab_size`` rows, as the converter's ``get_vocab_base``."""
    import gguf

    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise HfgptInputError(f"The tokenizer {tokenizer.name_or_path!r} has ids up to {max(vocab.values())}, but the "
                              f"model has vocab_size={vocab_size}: it is not this model's tokenizer (pass the one it "
                              f"was trained with).")
    by_id = {i: token for token, i in vocab.items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        if i in added:
            if not added[i].normalized:  # llama.cpp expects added tokens pre-normalized
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            if added[i].special or _looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")
                types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types


def gguf_chat_template(template: str) -> str:
    """The chat template without transformers' ``{% generation %}`` markers, which other Jinja engines do not know."""
    return GENERATION_TAGS.sub("", template)


def is_alpaca_template(template) -> bool:
    """Whether ``template`` is the Alpaca prompt the instruction fine-tuning recipe saves with the tokenizer."""
    return isinstance(template, str) and all(marker in template for marker in ALPACA_MARKERS)


def ollama_modelfile(gguf_name: str, eos_token: str, n_ctx: int) -> str:
    """An Ollama ``Modelfile``: the book's prompt as a Go template, greedy, its stops and the model's context."""
    from ..data.instructions import PREAMBLE

    template = (
        "{{ if .System }}{{ .System }}{{ else }}" + PREAMBLE + "{{ end }}"
        '{{ range .Messages }}{{ if eq .Role "user" }}\n\n### Instruction:\n{{ .Content }}'
        '{{ else if eq .Role "assistant" }}\n\n### Response:\n{{ .Content }}' + eos_token + "{{ end }}{{ end }}"
        "\n\n### Response:\n"
    )
    return (
        f"FROM ./{gguf_name}\n"
        f'TEMPLATE """{template}"""\n'
        f'PARAMETER stop "{eos_token}"\n'
        'PARAMETER stop "### "\n'
        "PARAMETER temperature 0\n"
        f"PARAMETER num_ctx {n_ctx}\n"
    )


def tokenizer_for_export(folder_or_model, tokenizer=None):
    """``tokenizer`` (an object, a folder or a Hub id), else the model folder's own; a GGUF must carry one."""
    from ..tokenization import has_tokenizer_files, load_tokenizer

    if tokenizer is not None:
        return load_tokenizer(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
    if not isinstance(folder_or_model, (str, os.PathLike)):
        raise HfgptInputError("A GGUF carries the vocabulary: pass tokenizer= (a tokenizer, its folder, or 'gpt2') "
                              "with a model object.")
    folder = os.fspath(folder_or_model)
    if not os.path.isdir(folder):
        raise HfgptFileNotFoundError(f"Model folder not found: {folder!r}.")
    if not has_tokenizer_files(folder):
        raise HfgptInputError(f"{folder!r} has no tokenizer files, and a GGUF carries the vocabulary: pass the "
                              "model's tokenizer (tokenizer= / --tokenizer, e.g. 'gpt2').")
    return load_tokenizer(folder)


def _tensor_type(gguf, name: str, n_dims: int, matrix_type):
    """The converter's choice: f32 for 1-D tensors, norms, biases and the position table; ``matrix_type`` else."""
    if n_dims <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") \
            or name.startswith(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.POS_EMBD] + "."):
        return gguf.GGMLQuantizationType.F32
    return matrix_type


def _add_tensors(gguf, writer, gpt2, matrix_type) -> None:
    """GPT-2's tensors under llama.cpp's names, ``Conv1D`` weights transposed back, of the converter's types."""
    c = gpt2.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, c.n_layer)
    for key, tensor in gpt2.state_dict().items():
        if key == "lm_head.weight" and c.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd, as for OpenAI's GPT-2
        if key.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        gguf_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        data = tensor.detach().float().contiguous().numpy()
        qtype = _tensor_type(gguf, gguf_name, data.ndim, matrix_type)
        try:
            quantized = gguf.quants.quantize(data, qtype)
        except gguf.QuantError as error:  # e.g. q8_0 of rows that are not a multiple of 32
            logger.warning(f"{gguf_name}: {error}, falling back to F16")
            qtype = gguf.GGMLQuantizationType.F16
            quantized = gguf.quants.quantize(data, qtype)
        writer.add_tensor(gguf_name, quantized, raw_dtype=qtype)


def export_gguf(folder_or_model, out_path, outtype: str = "f32", tokenizer=None, progress: bool = True) -> str:
    """Write ``folder_or_model`` (an hfgpt folder or model) as a llama.cpp GGUF at ``out_path``, complete or not at all.
    ``outtype``: ``"f32"``, ``"f16"`` or ``"q8_0"`` (rows not a multiple of 32 stay f16, as in llama.cpp)."""
    import gguf

    from ..convert import to_hf_gpt2

    if outtype not in OUTTYPES:
        raise HfgptInputError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}.")
    out_path = os.fspath(out_path)
    tokenizer = tokenizer_for_export(folder_or_model, tokenizer)
    pre = llama_cpp_pre_tokenizer(tokenizer)  # both checked before any weights are read
    gpt2 = to_hf_gpt2(folder_or_model)
    c = gpt2.config
    tokens, token_types = gguf_vocab(tokenizer, c.vocab_size)
    file_type, matrix_type = (getattr(gguf.LlamaFileType, OUTTYPES[outtype][0]),
                              getattr(gguf.GGMLQuantizationType, OUTTYPES[outtype][1]))

    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    writer.add_type(gguf.GGUFType.MODEL)
    name = os.path.basename(os.path.normpath(os.fspath(folder_or_model))) if isinstance(
        folder_or_model, (str, os.PathLike)) else "hfgpt"
    writer.add_name(name)
    writer.add_block_count(c.n_layer)  # the converter's GPT2Model.set_gguf_parameters
    writer.add_context_length(c.n_ctx)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(c.n_inner or 4 * c.n_embd)
    writer.add_head_count(c.n_head)
    writer.add_layer_norm_eps(c.layer_norm_epsilon)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_tokenizer_model("gpt2")  # the converter's _set_vocab_gpt2
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    with tempfile.TemporaryDirectory() as saved:  # SpecialVocab reads merges, special ids and template from files
        tokenizer.save_pretrained(saved)
        special = gguf.SpecialVocab(saved, load_merges=True, n_vocab=c.vocab_size)
    template = special.chat_template
    if isinstance(template, str):
        special.chat_template = gguf_chat_template(template)
    special.add_to_gguf(writer, quiet=True)

    _add_tensors(gguf, writer, gpt2, matrix_type)
    writer.add_size_label(gguf.size_label(*writer.get_total_parameter_count()))

    partial = out_path + ".partial"
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    try:
        writer.write_header_to_file(path=partial)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=progress)
        writer.close()
        os.replace(partial, out_path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    if is_alpaca_template(template):
        modelfile = os.path.join(os.path.dirname(os.path.abspath(out_path)), "Modelfile")
        with open(modelfile, "w", encoding="utf-8") as f:
            f.write(ollama_modelfile(os.path.basename(out_path), tokenizer.eos_token, c.n_ctx))
    return out_path


__all__ = ["export_gguf", "tokenizer_for_export", "llama_cpp_pre_tokenizer", "gguf_vocab", "gguf_chat_template",
           "ollama_modelfile", "is_alpaca_template", "OUTTYPES"]
