"""What the three recipes share: argument dataclasses (``--mode full|last-block|lora``, LoRA, DDP on CPU-only
machines), :func:`load_base_model` (an hfgpt or GPT-2 causal LM, or its body under a new head), :func:`set_trainable`
(the book's three ways to fine-tune), the checks every recipe makes once, CPU threads and the end of a run."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..errors import HfgptFileNotFoundError, HfgptInputError
from .lora import DEFAULT_TARGETS
from .outputs import MERGED_DIR, final_path, staged_output

logger = logging.getLogger("hfgpt.training")

MODES = ("full", "last-block", "lora")


@dataclass
class BaseModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "An hfgpt or GPT-2 folder or Hub id."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer folder or Hub id; default: the model's."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager (the book's), sdpa, flash_attention_2."})
    drop_rate: float | None = field(default=0.0, metadata={
        "help": "The book's drop_rate while training (it fine-tunes with 0.0; short pretraining runs learn faster "
                "without dropout too)."})


@dataclass
class FinetuneArguments(BaseModelArguments):
    mode: str = field(default="full", metadata={"help": "What trains: full, last-block (the book's ch. 6) or lora."})


@dataclass
class LoraArguments:
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (the book's appendix E: 16)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: str = field(default=DEFAULT_TARGETS, metadata={"help": "Linear layers that get adapters."})


@dataclass
class RecipeTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the book's AdamW weight decay, no reporting, DDP on CPU-only machines, pinned memory
    only with an accelerator, bf16 autocast by default on a CPU with native bf16, and Muon on request."""

    bf16: bool | None = field(default=None, metadata={  # a bare --bf16 means true, as for the other switches
        "help": "bf16 autocast; default: on when training on a CPU with native bf16.", "nargs": "?", "const": True})

    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "tensorboard, wandb, ... or none."})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "Every parameter gets a grad."})
    dataloader_pin_memory: bool | None = field(default=None, metadata={"help": "Default: with an accelerator."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace the run already in output_dir."})
    use_muon: bool | None = field(default=False, metadata={
        "help": "Muon for the blocks' matrices, --optim for the rest.", "nargs": "?", "const": True})
    muon_learning_rate: float | None = field(default=None, metadata={"help": "Default: --learning_rate."})

    def __post_init__(self):
        without_accelerator = not has_accelerator()
        # Several processes on a machine without GPU (torchrun, or `accelerate launch --multi_gpu`) get DDP only with
        # use_cpu: without it world_size is 1 and every rank silently trains on all the data on its own.
        self.use_cpu = self.use_cpu or (without_accelerator and int(os.environ.get("WORLD_SIZE") or 1) > 1)
        self._choose_muon()
        if self.dataloader_pin_memory is None:  # without an accelerator torch warns at every dataloader it pins for
            self.dataloader_pin_memory = not without_accelerator
        if self.bf16 is None:  # an explicit --bf16 true/false wins; so does fp16 (here or `accelerate launch`'s)
            fp16 = self.fp16 or launched_with("MIXED_PRECISION", "fp16")
            self.bf16 = self._trains_on_cpu() and not fp16 and cpu_has_native_bf16()
        # TrainingArguments refuses bf16 without a GPU unless use_cpu, which would also drop pinned memory and change
        # the distributed state; accelerate autocasts on the CPU either way. So such a run is validated as fp32, and
        # its bf16 set afterwards the way TrainingArguments sets it.
        bf16_on_cpu = self.bf16 and without_accelerator and not self.use_cpu
        if bf16_on_cpu:
            self.bf16 = False
        super().__post_init__()
        if bf16_on_cpu:
            self.bf16, self.mixed_precision = True, "bf16"

    def _choose_muon(self) -> None:
        """``--use_muon`` unset (a recipe's default): Muon where it can run; Muon needs each weight matrix whole."""
        sharded = bool(self.fsdp or self.deepspeed) or launched_with("USE_FSDP") or launched_with("USE_DEEPSPEED")
        if self.use_muon is None:
            self.use_muon = not sharded
        elif self.use_muon and sharded:
            raise HfgptInputError("--use_muon works with one process or DDP, not with FSDP or DeepSpeed.")

    def _trains_on_cpu(self) -> bool:
        return self.use_cpu or not has_accelerator()

    def precision(self) -> str:
        """Which precision the run trains in, and why: for the first lines of a run's log."""
        mixed = getattr(self, "mixed_precision", "no")  # also what `accelerate launch --mixed_precision` chose
        if self.fp16 or mixed == "fp16":
            return "Precision: fp16 mixed precision"
        if not (self.bf16 or mixed == "bf16"):
            return "Precision: fp32 (bf16 off: pass --bf16 true to use it)"
        if not self._trains_on_cpu():
            return "Precision: bf16 mixed precision on the accelerator"
        native = "native bf16 on this CPU" if cpu_has_native_bf16() else "no native bf16 on this CPU: expect it slow"
        return f"Precision: bf16 autocast on the CPU, fp32 weights ({native}; --bf16 false turns it off)"


# ------------------------------------------------------------------------------------------------ checks
def check_context(max_length: int, config, flag: str = "--max_length") -> None:
    """``max_length`` tokens must fit the model's context (the one place this is checked)."""
    if max_length > config.n_positions:
        raise HfgptInputError(f"{flag} {max_length} is longer than the model's context "
                              f"(n_positions={config.n_positions}); lower {flag} (or, for a new model, pass "
                              f"--config_overrides n_positions={max_length}).")


def check_vocabulary(tokenizer, config, model_source: str | None = None) -> None:
    """Every token id needs a row in the model's embedding (a larger tokenizer fails deep inside training)."""
    if len(tokenizer) > config.vocab_size:
        name = f" {tokenizer.name_or_path!r}" if tokenizer.name_or_path else ""
        model = f"the model {model_source!r}" if model_source else "the model"
        fix = (f"use the model's own tokenizer (--tokenizer_name {model_source}, or leave the flag out)" if model_source
               else "use the model's own tokenizer, or a vocab_size at least the tokenizer's")
        raise HfgptInputError(f"The tokenizer{name} has {len(tokenizer)} tokens but {model} only "
                              f"{config.vocab_size} (vocab_size): {fix}.")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise HfgptInputError(f"--mode must be one of {', '.join(MODES)}; got {mode!r}.")


# ------------------------------------------------------------------------------------------------ models
def checkpoint_config(path: str, flag: str = "--model_name_or_path"):
    """The config of an hfgpt or GPT-2 *causal-LM* checkpoint with readable weights; anything else is refused."""
    from ..checkpoints import check_weight_files, load_checkpoint_config

    expanded = os.path.expanduser(path)
    if (expanded.startswith((".", "/", "~")) or os.path.exists(expanded)) and not os.path.isdir(expanded):
        raise HfgptFileNotFoundError(f"No model folder at {path!r} ({flag}).")  # (a Hub id is left to the Hub)
    config = load_checkpoint_config(path, f" ({flag})")  # config.json readable and of a model transformers knows
    architectures = config.architectures or []
    if config.model_type not in ("gpt2", "gpt_scratch") or (
        architectures and not any(name.endswith("LMHeadModel") or "CausalLM" in name for name in architectures)
    ):
        kind = ", ".join(architectures) or config.model_type
        raise HfgptInputError(f"{flag} {path!r} is {kind}, not a causal language model: start from an hfgpt "
                              f"pretraining checkpoint (GPTScratchForCausalLM) or a GPT-2.")
    check_weight_files(expanded)  # a truncated download fails now, not after the data is prepared
    return config


def load_base_model(path: str, model_class=None, drop_rate: float | None = None, attn_implementation: str = "sdpa",
                    **config_updates):
    """An hfgpt or GPT-2 (converted) causal-LM checkpoint as ``model_class`` (a head class keeps the body and gets a new
    head). ``drop_rate`` sets the three dropouts; ``config_updates`` (e.g. ``num_labels``) go into the config."""
    from ..modeling_gpt_scratch import GPTScratchForCausalLM

    model_class = model_class or GPTScratchForCausalLM
    config = checkpoint_config(path)
    if config.model_type == "gpt2":
        from ..convert import from_hf_gpt2

        causal = from_hf_gpt2(path, drop_rate=drop_rate)  # None keeps the checkpoint's dropouts
        causal.config.update(config_updates)
        causal.config._attn_implementation = attn_implementation
        if model_class is GPTScratchForCausalLM:
            return causal
        model = model_class(causal.config)
        model.model.load_state_dict(causal.model.state_dict())
        return model
    if drop_rate is not None:
        config.drop_rate = drop_rate
    config.update(config_updates)
    return model_class.from_pretrained(path, config=config, attn_implementation=attn_implementation)


def load_chat_model(model_args: FinetuneArguments):
    """The model (hfgpt, or GPT-2 converted) and its tokenizer with the Alpaca chat template."""
    from ..data.instructions import add_chat_template
    from ..tokenization import load_tokenizer

    model = load_base_model(model_args.model_name_or_path, drop_rate=model_args.drop_rate,
                            attn_implementation=model_args.attn_implementation)
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path)
    check_vocabulary(tokenizer, model.config, model_args.model_name_or_path)
    add_chat_template(tokenizer)
    tokenizer.model_max_length = model.config.n_positions
    return model, tokenizer


def set_trainable(model, mode: str, lora: LoraArguments | None = None, head: str = "lm_head", task_type="CAUSAL_LM"):
    """The book's ways to fine-tune: ``full``, ``last-block`` (section 6.5) or ``lora`` (appendix E)."""
    check_mode(mode)
    if mode == "lora":
        from .lora import apply_lora

        lora = lora or LoraArguments()
        modules_to_save = None if head == "lm_head" else [head]
        return apply_lora(model, lora.lora_r, lora.lora_alpha, lora.lora_dropout, lora.lora_target_modules,
                          task_type=task_type, modules_to_save=modules_to_save)
    model.requires_grad_(mode == "full")
    if mode == "last-block":
        for module in (model.model.trf_blocks[-1], model.model.final_norm, getattr(model, head)):
            module.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("Mode %s: %d of %d parameters trainable (%.2f%%)", mode, trainable, total, 100 * trainable / total)
    return model


# ------------------------------------------------------------------------------------------------ running
def launched_with(setting: str, value: str = "true") -> bool:
    """Whether ``accelerate launch`` (its flags or config file) set ``ACCELERATE_<setting>`` to ``value``."""
    return os.environ.get(f"ACCELERATE_{setting}", "").lower() == value


def has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ...
    return torch.cuda.is_available() or bool(accelerator is not None and accelerator.is_available())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX512-BF16 or AMX): elsewhere bf16 autocast is slower."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def share_cpu_cores() -> None:
    """Give each process its share of the CPU cores: ``accelerate launch`` exports ``OMP_NUM_THREADS=1`` unless told
    otherwise, which halves a single-process CPU run (a value above 1 the user chose is kept)."""
    import torch

    launched_by_accelerate = any(key.startswith("ACCELERATE_") for key in os.environ)
    if not launched_by_accelerate or has_accelerator() or os.environ.get("OMP_NUM_THREADS", "1") != "1":
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")) or 1)
    threads = max(1, cores // max(1, local_processes))
    if threads > torch.get_num_threads():
        logger.info("accelerate set OMP_NUM_THREADS=1; using %d CPU threads per process", threads)
        torch.set_num_threads(threads)


def train(trainer, metrics: dict, resume: str | None = None) -> None:
    """``trainer.train()``, its metrics added to ``metrics`` with a ``train_`` prefix and the wall time."""
    import time

    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    metrics["train_seconds"] = time.time() - started
    metrics.update({k if k.startswith("train") else f"train_{k}": v for k, v in result.metrics.items()})


@contextlib.contextmanager
def final_save(trainer, push: bool = False, datasets: list[str] | None = None):
    """Everything written inside goes to ``output_dir`` atomically (:func:`staged_output`); then the Hub push."""
    from ..hub import push_run

    if trainer.is_fsdp_enabled:  # a loadable model, not shards (checkpoints keep the accelerate config's type)
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    with staged_output(trainer) as staging:
        yield staging
    if push and trainer.is_world_process_zero():
        push_run(trainer.args.output_dir, trainer.args, datasets)


def finish_run(trainer, metrics: dict, tokenizer, mode: str) -> dict:
    """The end of every recipe, inside :func:`final_save`: a merged checkpoint for LoRA and ``all_results.json``."""
    if not trainer.is_world_process_zero():
        return metrics
    if mode == "lora":
        from .lora import save_merged

        merged = save_merged(trainer.model, tokenizer, os.path.join(trainer.args.output_dir, MERGED_DIR))
        metrics["merged_dir"] = final_path(merged)
    trainer.log_metrics("all", {k: v for k, v in metrics.items() if not isinstance(v, str)})
    trainer.save_metrics("all", metrics, combined=False)
    return metrics
