"""The real pretraining recipe under ``recipes/accelerate/fsdp.yaml`` on CPU, recording what each rank ran (used by
tests/test_fsdp.py).

    accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \
        tests/fsdp_probe.py [--probe_lift_cpu_gate] <recipes/pretrain.py flags>

accelerate 1.16 turns a run into FSDP only on an accelerator: ``AcceleratorState`` switches to ``DistributedType.FSDP``
from MULTI_GPU / MULTI_XPU / ... but not from MULTI_CPU, so on a CPU-only machine the ``fsdp_config`` is dropped without
a word and the Trainer trains with DDP over gloo. torch's ``fully_shard`` itself runs on CPU with gloo.
``--probe_lift_cpu_gate`` lets the run take the path a GPU run takes: after the arguments set up the gloo process
group, the shared state reads MULTI_GPU (device and backend stay cpu / gloo), so the Trainer's ``Accelerator`` builds
the FSDP plugin from the yaml and shards the model with accelerate's own ``fsdp2_prepare_model``.

Each rank writes ``output_dir/../fsdp_rank{r}.json``: the distributed type of the Trainer's accelerator, whether its
FSDP plugin is set and its version, the world size and backend, and for every parameter its full and local size
(a DTensor shard holds about 1/world of it).
"""

from __future__ import annotations

import json
import os
import sys

import torch
from transformers import HfArgumentParser, TrainerCallback

from hfgpt.training.pretrain import ARGUMENT_TYPES, pretrain

LIFT_FLAG = "--probe_lift_cpu_gate"


class FSDPProbe(TrainerCallback):
    def __init__(self):
        self.record = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from accelerate.state import AcceleratorState
        from torch.distributed.tensor import DTensor

        accelerator_state = AcceleratorState()
        plugin = getattr(accelerator_state, "fsdp_plugin", None)
        dist = torch.distributed
        self.record = {
            "rank": dist.get_rank() if dist.is_initialized() else 0,
            "world_size": dist.get_world_size() if dist.is_initialized() else 1,
            "backend": dist.get_backend() if dist.is_initialized() else None,
            "args_world_size": args.world_size,
            "distributed_type": str(accelerator_state.distributed_type),
            "fsdp_plugin": plugin is not None,
            "fsdp_version": getattr(plugin, "fsdp_version", None),
            "model_class": type(model).__name__,
            "parameters": {  # name: [full numel, local numel]
                name: [p.numel(), p.to_local().numel() if isinstance(p, DTensor) else p.numel()]
                for name, p in model.named_parameters()
            },
        }

    def on_train_end(self, args, state, control, **kwargs):
        # (output_dir may be the recipe's staging folder by now; the record goes beside the run, not into it)
        path = os.path.join(os.path.dirname(os.path.abspath(self.output_dir)), f"fsdp_rank{self.record['rank']}.json")
        with open(path, "w") as f:
            json.dump(self.record, f)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    lift = LIFT_FLAG in argv
    argv = [arg for arg in argv if arg != LIFT_FLAG]
    model_args, data_args, training_args = HfArgumentParser(ARGUMENT_TYPES).parse_args_into_dataclasses(args=argv)
    if lift:
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType

        assert PartialState().distributed_type == DistributedType.MULTI_CPU, PartialState().distributed_type
        PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
    probe = FSDPProbe()
    probe.output_dir = training_args.output_dir
    pretrain(model_args, data_args, training_args, extra_callbacks=[probe])


if __name__ == "__main__":
    main()
