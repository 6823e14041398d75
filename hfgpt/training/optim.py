"""Muon for the transformer blocks' weight matrices, AdamW for everything else (``--use_muon``).

The book trains every weight with AdamW. ``torch.optim.Muon`` is meant for hidden matrices only, so the embeddings,
``lm_head``, norms and biases keep the Trainer's optimizer; ``adjust_lr_fn="match_rms_adamw"`` lets both halves
share ``--learning_rate`` and the schedule, and :class:`MuonWithAdamW` shows the Trainer one optimizer.
"""

from __future__ import annotations

import logging

import torch

from ..errors import HfgptInputError

logger = logging.getLogger("hfgpt.training")

MUON_ADJUST_LR = "match_rms_adamw"


def is_hidden_matrix(name: str, param: torch.Tensor) -> bool:
    """A 2-D weight inside a transformer block: what Muon trains (embeddings, the head, norms and biases are not)."""
    return param.ndim == 2 and ".trf_blocks." in f".{name}"


def split_parameters(model) -> tuple[list[str], list[str], list[str]]:
    """The names of the trainable parameters: (Muon, AdamW with weight decay, AdamW without), each in one list."""
    from transformers import Trainer

    # The Trainer's own rule (LayerNorms and biases get no decay); the method does not use the Trainer instance.
    decay = set(Trainer.get_decay_parameter_names(None, model))
    muon, adamw_decay, adamw_no_decay = [], [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (muon if is_hidden_matrix(name, param) else adamw_decay if name in decay else adamw_no_decay).append(name)
    return muon, adamw_decay, adamw_no_decay


class MuonWithAdamW(torch.optim.Optimizer):
    """``torch.optim.Muon`` over ``muon_groups`` and ``adamw_cls`` over ``adamw_groups`` as one optimizer (its
    ``param_groups`` are the inner ones', AdamW's first so the Trainer logs ``--learning_rate``)."""

    def __init__(self, muon_groups: list[dict], adamw_groups: list[dict], muon_kwargs: dict | None = None,
                 adamw_cls=torch.optim.AdamW, adamw_kwargs: dict | None = None):
        inner = []
        if adamw_groups:
            inner.append(adamw_cls(adamw_groups, **(adamw_kwargs or {})))
        if muon_groups:
            inner.append(torch.optim.Muon(muon_groups, **(muon_kwargs or {})))
        self.optimizers = inner
        super().__init__([group for optimizer in inner for group in optimizer.param_groups], defaults={})
        self._link_inner()

    def _link_inner(self) -> None:
        start = 0
        for optimizer in self.optimizers:
            count = len(optimizer.param_groups)
            optimizer.param_groups = self.param_groups[start:start + count]
            optimizer.state = self.state
            start += count

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._link_inner()


class MuonWithAdamWFactory:
    """The Trainer's optimizer factory: ``Trainer.create_optimizer`` calls it with the model it trains."""

    def __call__(self, model, *, muon_lr: float, weight_decay: float, adamw_cls, adamw_kwargs: dict):
        params = dict(model.named_parameters())
        if any(type(p).__name__ == "DTensor" for p in params.values()):  # FSDP 2 shards: Muon needs whole matrices
            raise HfgptInputError("--use_muon works with one process or DDP, not with FSDP.")
        muon, adamw_decay, adamw_no_decay = split_parameters(model)
        if not muon:
            raise HfgptInputError("--use_muon: the model has no trainable 2-D weight in its transformer blocks for "
                                  "Muon to train; leave --use_muon out.")
        adamw_groups = [{"params": [params[n] for n in names], "weight_decay": decay}
                        for names, decay in ((adamw_decay, weight_decay), (adamw_no_decay, 0.0)) if names]
        muon_groups = [{"params": [params[n] for n in muon]}]
        muon_kwargs = {"lr": muon_lr, "weight_decay": weight_decay, "adjust_lr_fn": MUON_ADJUST_LR}
        logger.info("Muon (lr %g) trains %d matrices (%d parameters); %s the other %d tensors", muon_lr, len(muon),
                    sum(params[n].numel() for n in muon), adamw_cls.__name__, len(adamw_decay) + len(adamw_no_decay))
        return MuonWithAdamW(muon_groups, adamw_groups, muon_kwargs, adamw_cls, adamw_kwargs)


def optimizer_cls_and_kwargs(args) -> tuple | None:
    """``Trainer(optimizer_cls_and_kwargs=...)``: ``None`` (the Trainer's own) unless ``args.use_muon``."""
    if not getattr(args, "use_muon", False):
        return None
    from transformers import Trainer
    from transformers.trainer_optimizer import is_optimizer_factory

    adamw_cls, adamw_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    if is_optimizer_factory(adamw_cls) or {"params", "model", "optimizer_dict"} & set(adamw_kwargs):
        raise HfgptInputError(f"--use_muon trains the non-matrix weights with --optim, which must then be a plain "
                              f"torch optimizer such as adamw_torch; got --optim {args.optim}.")
    muon_lr = args.learning_rate if args.muon_learning_rate is None else args.muon_learning_rate
    kwargs = {"muon_lr": muon_lr, "weight_decay": args.weight_decay,
              "adamw_cls": adamw_cls, "adamw_kwargs": adamw_kwargs}  # adamw_kwargs: lr (--learning_rate), betas, eps
    return MuonWithAdamWFactory, kwargs
