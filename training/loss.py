"""Per-token weighted cross-entropy, computed only where there is a target.

OpenChat-style conditioning: each token's loss is scaled by its source's weight and the sum is
divided by the sum of weights over the whole optimizer step (passed in as `norm`), so gradient
accumulation gives exactly the same update as one big batch. The vocabulary projection runs only
on supervised positions (`logits_to_keep` as a boolean mask), which saves memory and time.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from training.collate import Batch
from training.tokenize import IGNORE

try:  # transformers >= 5.2x: logits_to_keep accepts a boolean (batch, seq) mask
    from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401

    _MASK_OK = True
except ImportError:
    _MASK_OK = False


def token_losses(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-target cross-entropy, per-target weight), both 1-D over supervised positions."""
    keep = batch.targets != IGNORE
    kwargs = {"input_ids": batch.input_ids, "position_ids": batch.position_ids, "use_cache": False}
    if batch.attention_mask is not None:
        kwargs["attention_mask"] = batch.attention_mask
    logits = None
    if _MASK_OK:
        try:
            logits = model(**kwargs, logits_to_keep=keep).logits
            logits = logits.reshape(-1, logits.shape[-1])
            if logits.shape[0] != int(keep.sum()):
                logits = None
        except (TypeError, IndexError):  # a model file that predates boolean masks
            logits = None
    if logits is None:  # project every position, then select
        logits = model(**kwargs).logits[keep]
    ce = F.cross_entropy(logits.float(), batch.targets[keep], reduction="none")
    return ce, batch.weights[keep].to(ce.dtype)


def weighted_loss(model: Any, batch: Batch, norm: float) -> tuple[torch.Tensor, float]:
    """Sum of weighted token losses / norm (the step's total weight); also the plain sum of CE."""
    ce, w = token_losses(model, batch)
    return (ce * w).sum() / norm, float(ce.detach().sum())
