"""Examples → model inputs: the batch plan, padding-free packing, or length-grouped padding.

Packed: a micro-batch becomes one row with position ids restarting at 0 for each example;
transformers then keeps attention inside each example (flash-attention varlen, or a
block-diagonal mask for sdpa/eager), so no compute goes to padding. Padded: right padding with
an attention mask, batches built from examples of similar length. Both use the same plan, so
they see the same examples in the same order (and give the same loss).
Targets are shifted here, per example, so no token is ever predicted across two examples.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from training.tokenize import IGNORE, Example


@dataclass
class Batch:
    input_ids: torch.Tensor        # (B, T)
    targets: torch.Tensor          # (B, T): the next token to predict at each position, or -100
    weights: torch.Tensor          # (B, T): per-target loss weight (0 where no target)
    position_ids: torch.Tensor     # (B, T)
    attention_mask: torch.Tensor | None  # None when packed
    n_tokens: int                  # real (non-pad) tokens
    n_padded: int                  # tokens including padding

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.targets), move(self.weights),
                     move(self.position_ids), move(self.attention_mask), self.n_tokens, self.n_padded)


def plan_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                 group_by_length: bool = True) -> list[list[int]]:
    """Deterministic micro-batches of example indices for one epoch (a resume rebuilds it).

    With grouping, as in transformers' LengthGroupedSampler: shuffle, cut into mega-batches of
    50 batches, sort each by length, split, then shuffle the batch order."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        mega = batch_size * 50
        order = [i for s in range(0, len(order), mega)
                 for i in sorted(order[s:s + mega], key=lambda j: -lengths[j])]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def _targets(ex: Example) -> list[int]:
    return ex.labels[1:] + [IGNORE]


def _weights(targets: list[int], w: float) -> list[float]:
    return [w if t != IGNORE else 0.0 for t in targets]


def collate_packed(examples: list[Example], weight_of: dict[str, float]) -> Batch:
    ids: list[int] = []
    tgt: list[int] = []
    wts: list[float] = []
    pos: list[int] = []
    for ex in examples:
        t = _targets(ex)
        ids += ex.input_ids
        tgt += t
        wts += _weights(t, weight_of[ex.tag or "none"])
        pos += list(range(len(ex.input_ids)))
    n = len(ids)
    return Batch(torch.tensor([ids]), torch.tensor([tgt]), torch.tensor([wts]),
                 torch.tensor([pos]), None, n, n)


def collate_padded(examples: list[Example], weight_of: dict[str, float], pad_id: int) -> Batch:
    width = max(len(ex.input_ids) for ex in examples)
    ids, tgt, wts, mask = [], [], [], []
    for ex in examples:
        pad = width - len(ex.input_ids)
        t = _targets(ex)
        ids.append(ex.input_ids + [pad_id] * pad)
        tgt.append(t + [IGNORE] * pad)
        wts.append(_weights(t, weight_of[ex.tag or "none"]) + [0.0] * pad)
        mask.append([1] * len(ex.input_ids) + [0] * pad)
    pos = torch.arange(width).unsqueeze(0).expand(len(examples), -1).contiguous()
    return Batch(torch.tensor(ids), torch.tensor(tgt), torch.tensor(wts), pos,
                 torch.tensor(mask), sum(len(e.input_ids) for e in examples), width * len(examples))


def collate(examples: list[Example], weight_of: dict[str, float], packed: bool, pad_id: int) -> Batch:
    return collate_packed(examples, weight_of) if packed else collate_padded(examples, weight_of, pad_id)
