"""``--use_muon`` (hfgpt.training.optim): the parameter split, one optimizer for the real Trainer, checkpoint + resume,
and 2-rank DDP through the real ``accelerate launch`` of the pretraining recipe.

Tiny models (2 layers, 64 wide, vocabulary 128) on a repeating token pattern, a few Trainer steps each."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_config
from test_pretrain import PROBE, TINY, accelerate_launch, free_port, read_json, run
from test_pretrain import corpus  # noqa: F401 (the fixture)

from hfgpt import GPTScratchForCausalLM
from hfgpt.errors import HfgptInputError
from hfgpt.training.common import RecipeTrainingArguments, set_trainable
from hfgpt.training.optim import MuonWithAdamW, optimizer_cls_and_kwargs, split_parameters

BLOCK_MATRICES = ("att.qkv", "att.out_proj", "ff.fc_in", "ff.fc_out")


def hidden_matrices(layers) -> set[str]:
    return {f"model.trf_blocks.{i}.{m}.weight" for i in layers for m in BLOCK_MATRICES}


def tiny_model(**overrides):
    torch.manual_seed(0)
    return GPTScratchForCausalLM(tiny_config(**overrides))


def pattern_dataset(n=64, length=32):
    """Shifted copies of one random 16-token pattern: a loss a tiny model lowers within a few steps."""
    pattern = torch.randint(0, 128, (16,), generator=torch.Generator().manual_seed(0)).repeat(length // 16 + 2)
    return [{"input_ids": (ids := torch.roll(pattern, i)[:length]), "labels": ids} for i in range(n)]


def muon_args(output_dir, **overrides) -> RecipeTrainingArguments:
    values = dict(output_dir=str(output_dir), use_muon=True, max_steps=8, per_device_train_batch_size=8,
                  learning_rate=3e-3, logging_steps=1, save_strategy="no", use_cpu=True, disable_tqdm=True,
                  dataloader_num_workers=0, report_to="none")
    values.update(overrides)
    return RecipeTrainingArguments(**values)


def muon_trainer(args, model=None):
    from transformers import Trainer

    return Trainer(model=model or tiny_model(), args=args, train_dataset=pattern_dataset(),
                   optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(args))


def logged_losses(trainer, after: int = 0) -> dict[int, float]:
    """The training losses logged after step ``after`` (a resumed Trainer's history also holds the checkpoint's)."""
    return {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry
            and entry["step"] > after}


# ====================================================================================================================
# The split


@pytest.mark.parametrize("tied", [True, False])
def test_split_puts_each_parameter_in_exactly_one_group(tied):
    model = tiny_model(tie_word_embeddings=tied)
    muon, decay, no_decay = split_parameters(model)
    everything = [name for name, _ in model.named_parameters()]  # a tied lm_head is listed once, as the embedding
    assert sorted(muon + decay + no_decay) == sorted(everything) and len(set(muon + decay + no_decay)) == len(everything)
    assert set(muon) == hidden_matrices(range(2))  # the blocks' matrices, and nothing else
    assert {"model.embeddings.tok_emb.weight", "model.embeddings.pos_emb.weight"} <= set(decay)
    assert ("lm_head.weight" in decay) == (not tied)  # an untied head stays on AdamW too
    assert all(".bias" in name or "norm" in name for name in no_decay) and no_decay


def test_split_follows_what_trains():
    model = set_trainable(tiny_model(), "last-block")
    muon, decay, no_decay = split_parameters(model)
    assert set(muon) == hidden_matrices([1])
    assert "model.embeddings.tok_emb.weight" in decay  # the tied head trains, so does the embedding it is
    assert not any(".trf_blocks.0." in name for name in muon + decay + no_decay)


def test_trainer_builds_one_optimizer_over_every_parameter_once(tmp_path):
    trainer = muon_trainer(muon_args(tmp_path))
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, MuonWithAdamW)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(grouped) == sorted(names) and len(set(grouped)) == len(grouped)
    muon_groups = [g for g in optimizer.param_groups if g.get("adjust_lr_fn") == "match_rms_adamw"]
    assert {names[id(p)] for g in muon_groups for p in g["params"]} == hidden_matrices(range(2))
    assert optimizer.param_groups[0]["lr"] == trainer.args.learning_rate  # AdamW first: the logged learning rate


# ====================================================================================================================
# One optimizer: steps, state_dict round trip


def test_state_dict_round_trip_continues_both_halves_exactly():
    def build(model):
        muon, decay, no_decay = split_parameters(model)
        params = dict(model.named_parameters())
        return MuonWithAdamW([{"params": [params[n] for n in muon]}],
                             [{"params": [params[n] for n in decay + no_decay]}],
                             {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw"}, torch.optim.AdamW, {"lr": 0.01})

    def step(model, optimizer, seed):
        torch.manual_seed(seed)
        ids = torch.randint(0, 128, (4, 16))
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    model = tiny_model()
    optimizer = build(model)
    for seed in range(3):
        step(model, optimizer, seed)
    saved = copy.deepcopy(optimizer.state_dict())
    assert {"momentum_buffer"} <= set().union(*(s.keys() for s in saved["state"].values()))  # Muon's
    assert {"exp_avg", "exp_avg_sq"} <= set().union(*(s.keys() for s in saved["state"].values()))  # AdamW's

    resumed_model = copy.deepcopy(model)
    resumed = build(resumed_model)
    resumed.load_state_dict(saved)
    for inner in resumed.optimizers:  # the inner optimizers see what was loaded
        assert inner.state is resumed.state
        assert all(any(g is h for h in resumed.param_groups) for g in inner.param_groups)
    for seed in (3, 4):
        step(model, optimizer, seed)
        step(resumed_model, resumed, seed)
    for (name, a), b in zip(model.named_parameters(), resumed_model.parameters()):
        assert torch.equal(a, b), name


# ====================================================================================================================
# The real Trainer


def test_a_few_trainer_steps_lower_the_loss_and_follow_the_schedule(tmp_path):
    args = muon_args(tmp_path, max_steps=12, muon_learning_rate=1e-2, lr_scheduler_type="linear")
    trainer = muon_trainer(args)
    trainer.train()
    losses = list(logged_losses(trainer).values())
    assert losses[-1] < losses[0] - 0.5, losses
    optimizer = trainer.optimizer.optimizer  # inside accelerate's AcceleratedOptimizer
    assert isinstance(optimizer, MuonWithAdamW)
    # The Trainer's one scheduler scales both halves: after a linear decay to 0 at step 12 both learning rates are 0,
    # and at any step they keep the ratio of their peaks.
    peaks = [g["initial_lr"] for g in optimizer.param_groups]
    assert peaks[0] == 3e-3 and peaks[-1] == 1e-2
    assert all(g["lr"] == 0 for g in optimizer.param_groups)


def test_checkpoint_and_resume_match_an_uninterrupted_run(tmp_path):
    whole = muon_trainer(muon_args(tmp_path / "whole", save_strategy="steps", save_steps=4))
    whole.train()
    checkpoint = tmp_path / "whole" / "checkpoint-4"
    assert (checkpoint / "optimizer.pt").is_file()

    resumed = muon_trainer(muon_args(tmp_path / "resumed"), model=tiny_model())
    resumed.train(resume_from_checkpoint=str(checkpoint))
    expected = logged_losses(whole, after=4)
    assert len(expected) == 4 and logged_losses(resumed, after=4) == expected
    for (name, a), b in zip(whole.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name

    # Without the optimizer state (Muon's momentum, AdamW's moments) the same resume ends elsewhere: the check bites.
    (checkpoint / "optimizer.pt").unlink()
    cold = muon_trainer(muon_args(tmp_path / "cold"), model=tiny_model())
    cold.train(resume_from_checkpoint=str(checkpoint))
    assert logged_losses(cold, after=4) != expected


def test_muon_refuses_fsdp(tmp_path):
    with pytest.raises(HfgptInputError, match="--use_muon"):
        muon_args(tmp_path, fsdp="full_shard")


# ====================================================================================================================
# DDP: two CPU processes through the real recipe


def test_ddp_two_ranks_with_muon_agree(corpus, tmp_path):  # noqa: F811 (the fixture)
    out = tmp_path / "ddp"
    cmd = accelerate_launch("--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                            "--dynamo_backend", "no", "--main_process_port", str(free_port()), PROBE, *TINY,
                            "--train_file", corpus, "--output_dir", str(out), "--max_steps", "4", "--use_muon",
                            "--per_device_train_batch_size", "4", "--eval_steps", "4", "--save_steps", "4",
                            "--logging_steps", "2")
    rc, output = run(cmd, tmp_path, "ddp.log")
    assert rc == 0, output[-5000:]
    ranks = [read_json(out / f"rank{r}.json") for r in (0, 1)]
    assert [(r["world_size"], r["global_step"]) for r in ranks] == [(2, 4), (2, 4)]
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"])  # each rank its own data
    assert ranks[0]["initial_weights"] == ranks[1]["initial_weights"]
    assert ranks[0]["final_weights"] == ranks[1]["final_weights"] != ranks[0]["initial_weights"]
    # Muon did train: its groups and momentum buffers are in the checkpoint.
    state = torch.load(out / "checkpoint-4" / "optimizer.pt", weights_only=True)
    assert any(g.get("adjust_lr_fn") == "match_rms_adamw" for g in state["param_groups"])
    assert any("momentum_buffer" in s for s in state["state"].values())


def test_lora_adapters_train_with_muon_alone(tmp_path):
    """``--mode lora`` on a causal LM trains only the adapters, all 2-D and inside the blocks: Muon alone."""
    model = set_trainable(tiny_model(), "lora")
    muon, decay, no_decay = split_parameters(model)
    assert muon and not decay and not no_decay
    assert all("lora_" in name for name in muon)
    trainer = muon_trainer(muon_args(tmp_path, max_steps=2), model=model)
    trainer.train()
    optimizer = trainer.optimizer.optimizer
    assert [type(inner).__name__ for inner in optimizer.optimizers] == ["Muon"]


def test_instruction_recipe_trains_with_muon(tmp_path, caplog):
    """The fine-tuning recipes take the flag too (same Trainer wiring as pretraining): the chapter-7 recipe, in-process."""
    import json
    import logging

    from conftest import INSTRUCTION_RECORDS, alpaca_tokenizer, save_tiny_checkpoint
    from transformers import HfArgumentParser

    from hfgpt.training.finetune_instructions import ARGUMENT_TYPES, finetune_instructions

    model_dir = save_tiny_checkpoint(tmp_path / "base", alpaca_tokenizer(), n_positions=256)[0]
    data_file = tmp_path / "instruction-data.json"
    data_file.write_text(json.dumps(INSTRUCTION_RECORDS * 2))
    args = HfArgumentParser(ARGUMENT_TYPES).parse_args_into_dataclasses(args=[
        "--model_name_or_path", model_dir, "--data_file", str(data_file), "--output_dir", str(tmp_path / "out"),
        "--max_steps", "4", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4", "--max_new_tokens", "5",
        "--eval_strategy", "no", "--use_muon"])
    with caplog.at_level(logging.INFO, logger="hfgpt.training"):
        metrics = finetune_instructions(*args)
    assert any(record.getMessage().startswith("Muon (lr 0.003) trains 8 matrices") for record in caplog.records)
    assert metrics["after_response_loss"] < metrics["before_response_loss"]


def test_pretraining_defaults_to_muon_except_when_sharded(monkeypatch):
    """Muon won the main job's time to loss, so pretraining uses it by default; with FSDP (here as `accelerate
    launch` with an FSDP config says it) AdamW trains everything, and asking for Muon there is refused."""
    from transformers import HfArgumentParser

    from hfgpt.errors import HfgptInputError
    from hfgpt.training.common import RecipeTrainingArguments
    from hfgpt.training.pretrain import PretrainingArguments

    def parse(cls, *argv):
        return HfArgumentParser(cls).parse_args_into_dataclasses([*argv, "--output_dir", "unused"])[0]

    assert parse(PretrainingArguments).use_muon is True
    assert parse(PretrainingArguments).muon_learning_rate == 4e-3  # the time-to-loss sweep's best
    assert parse(PretrainingArguments, "--muon_learning_rate", "2e-3").muon_learning_rate == 2e-3
    assert parse(PretrainingArguments, "--use_muon", "false").use_muon is False
    assert parse(RecipeTrainingArguments).use_muon is False  # fine-tuning keeps AdamW
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert parse(PretrainingArguments).use_muon is False
    with pytest.raises(HfgptInputError, match="not with FSDP"):
        parse(PretrainingArguments, "--use_muon")
