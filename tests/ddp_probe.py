"""The real pretraining recipe plus a callback that records what each rank did (used by tests/test_pretrain.py).

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        tests/ddp_probe.py <recipes/pretrain.py flags>

Each rank writes ``output_dir/rank{r}.json``: its rank and world size, the optimizer steps it took, a fingerprint of
every training batch its model saw (a forward pre-hook, training mode only, so evaluation and the printed samples
are not counted), a hash of its tokenizer's vocabulary and of its model weights before and after training.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import torch
from transformers import HfArgumentParser, TrainerCallback

from hfgpt.training.pretrain import DataArguments, ModelArguments, PretrainingArguments, pretrain


def state_dict_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def tensor_hash(tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class RankProbe(TrainerCallback):
    def __init__(self):
        self.batches: list[str] = []  # one fingerprint per training forward (micro-batch)
        self.optimizer_steps = 0
        self.initial_weights = None
        self._handle = None

    def _hook(self, module, args, kwargs):
        if module.training:
            input_ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
            self.batches.append(tensor_hash(input_ids))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.initial_weights = state_dict_hash(model)
        # `model` is the unwrapped model: DDP's forward calls it, so the hook sees each rank's own micro-batches.
        self._handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_steps += 1

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._handle.remove()
        dist = torch.distributed
        initialized = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if initialized else 0
        record = {
            "rank": rank,
            "world_size": dist.get_world_size() if initialized else 1,
            "backend": dist.get_backend() if initialized else None,
            "process_index": args.process_index,
            "args_world_size": args.world_size,
            "global_step": state.global_step,
            "optimizer_steps": self.optimizer_steps,
            "batches": self.batches,
            "tokenizer_vocab": hashlib.sha256(
                json.dumps(processing_class.get_vocab(), sort_keys=True).encode()
            ).hexdigest(),
            "initial_weights": self.initial_weights,
            "final_weights": state_dict_hash(model),
        }
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, f"rank{rank}.json"), "w") as f:
            json.dump(record, f)


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    pretrain(model_args, data_args, training_args, extra_callbacks=[RankProbe()])


if __name__ == "__main__":
    main()
