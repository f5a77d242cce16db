"""Several trainers, without starting any: what is refused up front, torchrun's environment,
the fingerprint that lets N processes and --grad-accum N resume each other, the step totals
every rank computes from the plan alone, and optimizer state re-keyed from positions to names."""
from __future__ import annotations

import pytest
import torch

from generators.core.errors import FatalError, UsageError
from training import checkpoint, distributed
from training.collate import collate
from training.config import TrainConfig
from training.distributed import Dist
from training.render import default_tag_texts, to_conversation
from training.tokenize import encode_all, stop_token_ids
from training.trainer import MicroBatches

from tests import tiny_model


def cfg(**kw) -> TrainConfig:
    return TrainConfig(data=["d.jsonl"], base="b", out="o", **kw)


@pytest.mark.parametrize("kw, world, expected", [
    ({"fsdp": True}, 1, "--fsdp shards the model over several processes"),
    ({"fsdp": True, "load_4bit": True}, 2, "--fsdp with --4bit"),
    ({"fsdp": True, "merge": True}, 2, "--fsdp with --merge"),
    ({"device": "cuda:1"}, 2, "each process takes cuda:LOCAL_RANK"),
])
def test_combinations_that_cannot_work_are_refused(kw, world, expected):
    with pytest.raises(UsageError, match=expected):
        distributed.check(cfg(**kw), Dist(world=world))


@pytest.mark.parametrize("kw, world", [({}, 1), ({}, 2), ({"fsdp": True}, 2), ({"merge": True}, 2),
                                       ({"device": "cpu"}, 4)])
def test_combinations_that_work_pass(kw, world):
    distributed.check(cfg(**kw), Dist(world=world))


def test_the_place_torchrun_gives(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    alone = distributed.from_env()
    assert (alone.rank, alone.world, alone.main, alone.active) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    d = distributed.from_env()
    assert (d.rank, d.world, d.local_rank, d.local_world, d.main) == (3, 4, 1, 2, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(UsageError, match="not a valid place"):
        distributed.from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(UsageError, match="WORLD_SIZE='two'"):
        distributed.from_env()


def test_one_process_collectives_are_plain():
    d = Dist()
    assert d.broadcast({"a": 1}) == {"a": 1} and d.gather(5) == [5]
    assert d.sum([1.0, 2.0], torch.device("cpu")) == [1.0, 2.0]
    d.agree(None)
    with pytest.raises(FatalError, match="boom"):
        d.agree(FatalError("boom"))
    assert distributed.pick_device("cpu", d) == torch.device("cpu")


def test_processes_times_grad_accum_is_what_the_fingerprint_sees():
    two_procs = cfg(grad_accum=1).fingerprint("x", world_size=2)
    assert two_procs == cfg(grad_accum=2).fingerprint("x") == cfg(grad_accum=2, fsdp=True).fingerprint("x")
    assert two_procs != cfg(grad_accum=1).fingerprint("x")
    assert cfg(grad_accum=2).fingerprint("x", world_size=2) == cfg(grad_accum=4).fingerprint("x")


@pytest.mark.parametrize("packed", [True, False])
def test_step_totals_from_the_plan_match_the_built_batches(packed):
    tok = tiny_model.build_tokenizer()
    convs = [to_conversation(r, f"t:{i}", "forward", default_tag_texts())
             for i, r in enumerate(tiny_model.records(10))]
    examples, _ = encode_all(convs, tok, 512, stop_token_ids(tok))
    weights = {"seed": 1.0, "augmented": 0.25, "none": 1.0}
    stream = MicroBatches(examples, 3, 0, packed, tok.pad_token_id, weights)
    for k in range(stream.per_epoch * 2):  # into the second epoch's plan too
        b = stream[k]
        weight, tokens, padded, supervised = stream.totals(k)
        assert weight == pytest.approx(float(b.weights.sum()), rel=1e-6)
        assert (tokens, padded, supervised) == (b.n_tokens, b.n_padded, int((b.weights > 0).sum()))
        assert b.input_ids.equal(collate([examples[j] for j in stream.indices(k)], weights, packed,
                                         tok.pad_token_id).input_ids)


def test_optimizer_state_by_position_becomes_by_name():
    names = ["a.lora_A.default.weight", "a.lora_B.default.weight"]
    saved = {"state": {0: {"step": 1}, 1: {"step": 2}}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}
    assert checkpoint.by_name(saved, names) == {
        "state": {names[0]: {"step": 1}, names[1]: {"step": 2}},
        "param_groups": [{"lr": 0.1, "params": names}]}
