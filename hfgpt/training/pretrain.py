"""Pretraining (the book's chapter 5) with the Hugging Face ``Trainer``.

``recipes/pretrain.py`` parses three dataclasses with ``HfArgumentParser`` and calls :func:`pretrain`. Everything
the recipe does lives here, so the CLI, notebooks and tests share it:

1. load text (the embedded default corpus, local files or a Hub dataset) and check every argument *before*
   anything slow happens;
2. train a byte-level BPE tokenizer on the training text, unless ``--tokenizer_name`` names one;
3. cut the token stream into sliding windows (``hfgpt.data.sampling``);
4. build a ``GPTScratchForCausalLM`` from a preset (or continue from ``--model_name_or_path``: an hfgpt folder
   or a GPT-2, converted on the fly);
5. train with ``Trainer`` plus the book's extras as callbacks (sample text at each evaluation, loss curve PNG),
   and save model, tokenizer, metrics (with perplexity and a unigram baseline) into ``output_dir``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from transformers import TrainingArguments

logger = logging.getLogger("hfgpt.pretrain")


@dataclass
class ModelArguments:
    preset: str = field(
        default="small",
        metadata={"help": "Model size: 124M, 355M, 774M, 1558M (GPT-2 sizes) or tiny, mini, small, medium-cpu."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Continue from an hfgpt folder, or a GPT-2 folder / Hub id (converted on the fly)."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated GPTScratchConfig fields, e.g. 'n_layer=2,n_embd=64,drop_rate=0.0'."},
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "A tokenizer folder or Hub id ('gpt2' for GPT-2's BPE). Default: train a BPE on the corpus."},
    )
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of the BPE trained on the corpus."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager (the book's), sdpa, flash_attention_2."})


@dataclass
class DataArguments:
    train_file: list[str] | None = field(
        default=None, metadata={"help": "Text files (txt, json/jsonl, parquet, csv; globs allowed)."}
    )
    validation_file: list[str] | None = field(default=None, metadata={"help": "Validation files; default: a split."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id, e.g. 'roneneldan/TinyStories'."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    text_column: str = field(default="text", metadata={"help": "The column holding the text."})
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset (needs --max_steps)."})
    max_length: int = field(default=128, metadata={"help": "Tokens per training window (the book's max_length)."})
    stride: int | None = field(default=None, metadata={"help": "Step between windows; default max_length (no overlap)."})
    validation_fraction: float = field(default=0.05, metadata={"help": "Held-out fraction when no validation file."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    max_corpus_chars: int | None = field(
        default=None, metadata={"help": "Use only this many characters of the default corpus (quick runs)."}
    )
    sample_prompt: str = field(default="The return value of", metadata={"help": "Prompt printed with a continuation at each eval."})
    sample_max_new_tokens: int = field(default=40, metadata={"help": "Length of those samples."})


@dataclass
class PretrainingArguments(TrainingArguments):
    """``TrainingArguments`` with defaults for a good first run on a laptop CPU (every flag still works)."""

    output_dir: str | None = field(default="runs/pretrain", metadata={"help": "Where checkpoints and the model go."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Batch size per device."})
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "Eval batch size per device."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps (a fraction < 1 of all steps)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training windows."})
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: steps, epoch or no."})
    eval_steps: float | None = field(default=0.25, metadata={"help": "Evaluate every N steps (or a fraction)."})
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint."})
    save_steps: float = field(default=0.25, metadata={"help": "Checkpoint every N steps (or a fraction)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep this many checkpoints."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "tensorboard, wandb, ... or none."})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "Every parameter gets a grad."})

    def __post_init__(self):
        # Several processes on a machine without GPU (torchrun, or `accelerate launch --multi_gpu`, the one accelerate
        # form that starts several processes there) get DDP only with use_cpu: without it accelerate settles on
        # DistributedType.NO, world_size is 1 and every rank silently trains on all the data on its own.
        if not self.use_cpu and _launched_with_several_processes() and not _has_accelerator():
            self.use_cpu = True
        super().__post_init__()


def _launched_with_several_processes() -> bool:
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def share_cpu_cores() -> None:
    """Give each process its share of the CPU cores when training on CPU.

    ``accelerate launch`` exports ``OMP_NUM_THREADS=1`` unless ``--num_cpu_threads_per_process`` says otherwise, which
    halves a single-process run on a 2-core machine. Under accelerate, with no GPU, use ``cores // local processes``
    threads instead (a value the user chose with ``--num_cpu_threads_per_process N`` above 1 is kept)."""
    import torch

    launched_by_accelerate = any(key.startswith("ACCELERATE_") for key in os.environ)
    if not launched_by_accelerate or _has_accelerator() or os.environ.get("OMP_NUM_THREADS", "1") != "1":
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")) or 1)
    threads = max(1, cores // max(1, local_processes))
    if threads > torch.get_num_threads():
        logger.info("accelerate set OMP_NUM_THREADS=1; using %d CPU threads per process", threads)
        torch.set_num_threads(threads)


def _has_accelerator() -> bool:
    import torch

    if torch.cuda.is_available():
        return True
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, NPU, ...
    return bool(accelerator is not None and accelerator.is_available())


def parse_overrides(text: str | None) -> dict:
    """``'n_layer=2,drop_rate=0.0,qkv_bias=true'`` -> ``{'n_layer': 2, 'drop_rate': 0.0, 'qkv_bias': True}``."""
    values = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"--config_overrides entries look like name=value; got {item!r}.")
        key, raw = (s.strip() for s in item.split("=", 1))
        try:
            values[key] = json.loads(raw.lower() if raw.lower() in ("true", "false", "null") else raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def checked_overrides(text: str | None) -> dict:
    """:func:`parse_overrides`, refusing names that are not ``GPTScratchConfig`` fields (a typo would otherwise be
    stored on the config and silently ignored)."""
    from ..configuration_gpt_scratch import GPTScratchConfig

    overrides = parse_overrides(text)
    unknown = set(overrides) - set(GPTScratchConfig().to_dict()) - {"drop_rate"}
    if unknown:
        raise ValueError(f"--config_overrides names unknown GPTScratchConfig fields: {sorted(unknown)}.")
    return overrides


def check_context(config, max_length: int) -> None:
    if max_length > config.n_positions:
        raise ValueError(
            f"--max_length {max_length} is longer than the model's context (n_positions={config.n_positions}); "
            f"lower --max_length or pass --config_overrides n_positions={max_length}."
        )


def build_config(model_args: ModelArguments, tokenizer, max_length: int):
    """The model config: a preset + overrides, with the tokenizer's vocabulary and special tokens."""
    from ..configuration_gpt_scratch import GPTScratchConfig
    from ..tokenization import special_token_ids

    overrides = checked_overrides(model_args.config_overrides)
    overrides.setdefault("vocab_size", len(tokenizer))
    for key, value in special_token_ids(tokenizer).items():
        overrides.setdefault(key, value)
    config = GPTScratchConfig.from_preset(model_args.preset, **overrides)
    check_context(config, max_length)
    return config


def load_model(model_args: ModelArguments, tokenizer, max_length: int):
    """A fresh model from the preset, or the checkpoint in ``--model_name_or_path`` (GPT-2 converted)."""
    from transformers import AutoConfig

    from ..modeling_gpt_scratch import GPTScratchForCausalLM

    if model_args.model_name_or_path is None:
        config = build_config(model_args, tokenizer, max_length)
        return GPTScratchForCausalLM._from_config(config, attn_implementation=model_args.attn_implementation)
    model_type = AutoConfig.from_pretrained(model_args.model_name_or_path).model_type
    if model_type == "gpt2":
        from ..convert import from_hf_gpt2

        model = from_hf_gpt2(model_args.model_name_or_path)
    elif model_type == "gpt_scratch":
        model = GPTScratchForCausalLM.from_pretrained(
            model_args.model_name_or_path, attn_implementation=model_args.attn_implementation
        )
    else:
        raise ValueError(f"--model_name_or_path must be an hfgpt or GPT-2 checkpoint, got model_type={model_type!r}.")
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the model only {model.config.vocab_size}: "
            f"pass the checkpoint's own tokenizer (--tokenizer_name {model_args.model_name_or_path})."
        )
    if max_length > model.config.n_positions:
        raise ValueError(f"--max_length {max_length} is longer than the checkpoint's n_positions={model.config.n_positions}.")
    return model


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Every cheap check, before the corpus is read or a tokenizer trained."""
    from ..configuration_gpt_scratch import GPTScratchConfig

    if model_args.model_name_or_path is None:  # preset, override names and values, context: no data read yet
        config = GPTScratchConfig.from_preset(model_args.preset, **checked_overrides(model_args.config_overrides))
        check_context(config, data_args.max_length)
    if data_args.stride is not None and data_args.stride <= 0:
        raise ValueError(f"--stride must be a positive number of tokens, got {data_args.stride}.")
    if data_args.max_length <= 1:
        raise ValueError(f"--max_length must be at least 2 tokens, got {data_args.max_length}.")
    for files in (data_args.train_file or [], data_args.validation_file or []):
        for pattern in files:
            import glob

            if not glob.glob(os.path.expanduser(pattern)):
                raise FileNotFoundError(f"No file matches {pattern!r}.")
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps: a streamed dataset has no length to count epochs by.")
    if model_args.tokenizer_name is None and model_args.model_name_or_path is not None:
        model_args.tokenizer_name = model_args.model_name_or_path


def prepare_tokenizer(model_args: ModelArguments, raw_train, text_column: str, max_length: int):
    from ..tokenization import load_tokenizer, train_bpe_tokenizer

    if model_args.tokenizer_name is not None:
        return load_tokenizer(model_args.tokenizer_name)

    def texts():
        for start in range(0, len(raw_train), 1000):
            yield raw_train[start : start + 1000][text_column]

    logger.info("Training a byte-level BPE tokenizer (vocab %d) on the training text", model_args.vocab_size)
    return train_bpe_tokenizer(texts(), vocab_size=model_args.vocab_size, model_max_length=max_length)


def last_complete_checkpoint(output_dir: str, flag: str = "last") -> str:
    """The newest ``checkpoint-N`` folder in ``output_dir`` that the Trainer finished writing.

    ``Trainer`` writes ``trainer_state.json`` last, so a run killed while saving leaves a newer folder without it;
    transformers' ``get_last_checkpoint`` would pick that one and resuming would fail on missing files."""
    steps = {}
    if os.path.isdir(output_dir):
        for name in os.listdir(output_dir):
            prefix, _, step = name.partition("-")
            if prefix == "checkpoint" and step.isdigit() and os.path.isdir(os.path.join(output_dir, name)):
                steps[int(step)] = os.path.join(output_dir, name)
    if not steps:
        raise FileNotFoundError(f"--resume_from_checkpoint {flag}: no checkpoint-* folder in {output_dir!r}.")
    for step in sorted(steps, reverse=True):
        if os.path.isfile(os.path.join(steps[step], "trainer_state.json")):
            return steps[step]
        logger.warning("Skipping %s: no trainer_state.json (its run stopped while saving it)", steps[step])
    raise FileNotFoundError(
        f"--resume_from_checkpoint {flag}: no complete checkpoint in {output_dir!r} (none has trainer_state.json)."
    )


def resolve_resume(training_args) -> str | None:
    """``--resume_from_checkpoint last`` (or ``true``) means the newest complete checkpoint in ``output_dir``."""
    resume = training_args.resume_from_checkpoint
    if resume is None or str(resume).lower() in ("", "false", "none"):
        return None
    if str(resume).lower() in ("last", "true"):
        return last_complete_checkpoint(training_args.output_dir, flag=str(resume))
    if not os.path.isdir(resume):
        raise FileNotFoundError(f"--resume_from_checkpoint: no checkpoint folder at {resume!r}.")
    return resume


def pretrain(model_args: ModelArguments, data_args: DataArguments, training_args: PretrainingArguments,
             extra_callbacks: list | None = None) -> dict:
    """Run the whole recipe; returns the final metrics (also saved as ``all_results.json`` in ``output_dir``)."""
    from transformers import Trainer, default_data_collator, set_seed

    from ..data.sampling import load_text_datasets, tokenize_and_window
    from ..hub import defer_trainer_push, push_run
    from .baselines import unigram_loss
    from .callbacks import LossCurveCallback, SampleGenerationCallback, perplexity

    check_arguments(model_args, data_args, training_args)
    share_cpu_cores()
    push = defer_trainer_push(training_args)
    resume = resolve_resume(training_args)
    if resume is not None and model_args.tokenizer_name is None:
        model_args.tokenizer_name = resume  # the checkpoint's own tokenizer, not a freshly trained one
    set_seed(training_args.seed)

    raw = load_text_datasets(
        train_files=data_args.train_file,
        validation_files=data_args.validation_file,
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        text_column=data_args.text_column,
        streaming=data_args.streaming,
        validation_fraction=data_args.validation_fraction,
        seed=training_args.seed,
        default_corpus_max_chars=data_args.max_corpus_chars,
    )
    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = prepare_tokenizer(model_args, raw["train"], data_args.text_column, data_args.max_length)
    model = load_model(model_args, tokenizer, data_args.max_length)

    with training_args.main_process_first(desc="windowing"):
        windows = {
            split: tokenize_and_window(
                raw[split],
                tokenizer,
                data_args.max_length,
                data_args.stride if split == "train" else None,
                text_column=data_args.text_column,
                num_proc=data_args.preprocessing_num_workers,
                n_positions=model.config.n_positions,
            )
            for split in ("train", "validation")
        }

    baseline = None
    if not data_args.streaming:
        baseline = unigram_loss(windows["train"], windows["validation"], model.config.vocab_size)
        logger.info("Unigram baseline on the validation windows: loss %.3f (perplexity %.1f)", baseline,
                    perplexity(baseline))
    world = max(1, training_args.world_size)
    tokens_per_step = (
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world
        * data_args.max_length
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=windows["train"],
        eval_dataset=windows["validation"],
        processing_class=tokenizer,
        data_collator=default_data_collator,
        callbacks=[
            SampleGenerationCallback(tokenizer, data_args.sample_prompt, data_args.sample_max_new_tokens),
            LossCurveCallback(
                tokens_per_step,
                title=f"hfgpt pretraining ({model.num_parameters() / 1e6:.1f}M parameters)",
                baseline=None if baseline is None else ("unigram baseline (validation)", baseline),
            ),
            *(extra_callbacks or []),
        ],
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(train_result.metrics)
    metrics["train_tokens"] = trainer.state.global_step * tokens_per_step
    trainer.save_model()  # model + tokenizer (processing_class) + the remote code, into output_dir
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    eval_metrics = trainer.evaluate()
    eval_metrics["eval_perplexity"] = perplexity(eval_metrics["eval_loss"])
    if baseline is not None:
        eval_metrics["eval_unigram_loss"] = baseline
        eval_metrics["eval_unigram_perplexity"] = perplexity(baseline)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    if push and trainer.is_world_process_zero():  # model + tokenizer + code + metrics + model card
        push_run(training_args.output_dir, training_args, [data_args.dataset_name] if data_args.dataset_name else None)
    return {**metrics, **eval_metrics}
