"""Batches and loss: packed equals padded, per-tag weights normalised by their sum, the batch
plan is deterministic, and vLLM-unservable adapter settings are refused up front."""
from __future__ import annotations

import pytest
import torch

from generators.core.errors import UsageError
from training.collate import collate_packed, collate_padded, plan_batches
from training.config import TrainConfig
from training.lora import attach_lora, check_servable, load_base, lora_config, packing_works
from training.loss import token_losses, weighted_loss
from training.render import default_tag_texts, to_conversation
from training.tokenize import encode_all, stop_token_ids

from tests import tiny_model

pytestmark = pytest.mark.slow  # runs a real (tiny) model


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    folder = tiny_model_dir
    tok = AutoTokenizer.from_pretrained(folder)
    convs = [to_conversation(r, f"t:{i}", "forward", default_tag_texts())
             for i, r in enumerate(tiny_model.records(8))]
    examples, _ = encode_all(convs, tok, 512, stop_token_ids(tok))
    cfg = TrainConfig(data=[], base=str(folder), out="", lora_dropout=0.0, grad_checkpointing=False)
    torch.manual_seed(0)
    model = attach_lora(load_base(cfg, str(folder), torch.device("cpu")), cfg)
    with torch.no_grad():  # make the adapter non-trivial so it takes part in the comparison
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.eval()
    return tok, examples, model


def test_packed_and_padded_give_the_same_loss(setup):
    tok, examples, model = setup
    assert packing_works(model, torch.device("cpu"))
    weights = {"seed": 1.0, "augmented": 0.1, "none": 1.0}
    packed = collate_packed(examples, weights)
    padded = collate_padded(examples, weights, tok.pad_token_id)
    assert packed.input_ids.shape[0] == 1 and padded.input_ids.shape[0] == len(examples)
    assert packed.n_tokens == padded.n_tokens < padded.n_padded
    with torch.no_grad():
        ce_p, w_p = token_losses(model, packed)
        ce_d, w_d = token_losses(model, padded)
        norm = float(w_p.sum())
        loss_p, _ = weighted_loss(model, packed, norm)
        loss_d, _ = weighted_loss(model, padded, norm)
    assert ce_p.shape == ce_d.shape
    # padded rows are visited row by row, packed in order: same multiset of (loss, weight)
    assert torch.allclose(ce_p.sort().values, ce_d.sort().values, atol=1e-4)
    assert torch.allclose(loss_p, loss_d, atol=1e-5)


def test_weighted_loss_is_normalised_by_the_sum_of_weights(setup):
    tok, examples, model = setup
    weights = {"seed": 1.0, "augmented": 0.1, "none": 1.0}
    batch = collate_packed(examples, weights)
    with torch.no_grad():
        ce, w = token_losses(model, batch)
        loss, _ = weighted_loss(model, batch, float(w.sum()))
    n_seed = sum(e.n_supervised for e in examples if e.tag == "seed")
    n_aug = sum(e.n_supervised for e in examples if e.tag == "augmented")
    assert float(w.sum()) == pytest.approx(n_seed * 1.0 + n_aug * 0.1)
    assert float(loss) == pytest.approx(float((ce * w).sum() / (n_seed + 0.1 * n_aug)), rel=1e-5)
    # split over two micro-batches with the step's total weight: the same objective
    a, b = collate_packed(examples[:3], weights), collate_packed(examples[3:], weights)
    with torch.no_grad():
        total = weighted_loss(model, a, float(w.sum()))[0] + weighted_loss(model, b, float(w.sum()))[0]
    assert float(total) == pytest.approx(float(loss), rel=1e-4)


def test_targets_never_cross_examples(setup):
    tok, examples, _ = setup
    batch = collate_packed(examples[:2], {"seed": 1.0, "augmented": 1.0, "none": 1.0})
    first = len(examples[0].input_ids)
    assert int(batch.targets[0, first - 1]) == -100  # last token of example 0 predicts nothing
    assert batch.position_ids[0, first] == 0


def test_plan_is_deterministic_and_complete():
    lengths = [5, 50, 7, 300, 12, 40, 8, 9, 100, 1]
    a = plan_batches(lengths, 3, seed=1, epoch=0)
    assert a == plan_batches(lengths, 3, seed=1, epoch=0)
    assert a != plan_batches(lengths, 3, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(10))


@pytest.mark.parametrize("changes, message", [
    ({"lora_r": 32}, "--lora-r 32 is above --max-lora-rank 16"),
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "modules-to-save"),
    ({"lora_bias": "all"}, "--lora-bias all"),
])
def test_unservable_adapters_are_refused(changes, message):
    cfg = TrainConfig(data=[], base="", out="", **changes)
    with pytest.raises(UsageError, match=message):
        check_servable(lora_config(cfg), cfg.max_lora_rank)


def test_rank_up_to_the_limit_is_allowed():
    cfg = TrainConfig(data=[], base="", out="", lora_r=32, max_lora_rank=32)
    check_servable(lora_config(cfg), cfg.max_lora_rank)


def test_auto_packing_only_with_varlen_attention(setup):
    from training.trainer import choose_packing

    _, _, model = setup
    assert model.config._attn_implementation in ("sdpa", "eager")
    assert choose_packing("auto", model, torch.device("cpu")) is False  # sdpa: padded is faster
    assert choose_packing("on", model, torch.device("cpu")) is True     # but packing is correct
    assert choose_packing("off", model, torch.device("cpu")) is False
