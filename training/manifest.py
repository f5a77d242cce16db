"""The training fields of a `gen train` manifest: what went in, what came out, how fast.

The manifest itself is written as every stage's is (generators.core.manifest, which adds
duration_s, sessions and versions), at each checkpoint (status "running") and at the end
("complete"), atomically, so a reader never sees half a file and `gen report` can describe an
interrupted run too.
"""
from __future__ import annotations

import dataclasses
import resource
import sys
from collections import Counter
from typing import Any

import torch

from training.config import TrainConfig
from training.tokenize import EncodeStats, Example

TRAINING_PACKAGES = ("accelerate", "tokenizers", "bitsandbytes")  # versions named beside the common ones


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    out = {"cpu_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def data_summary(train: list[Example], eval_: list[Example], stats: EncodeStats) -> dict[str, Any]:
    def per_tag(examples: list[Example]) -> dict[str, dict[str, int]]:
        ex, sup, tok = Counter(), Counter(), Counter()
        for e in examples:
            key = e.tag or "none"
            ex[key] += 1
            sup[key] += e.n_supervised
            tok[key] += len(e.input_ids)
        return {k: {"examples": ex[k], "supervised_tokens": sup[k], "tokens": tok[k]} for k in sorted(ex)}

    return {"train": per_tag(train), "eval": per_tag(eval_), "truncated": stats.truncated,
            "dropped": dict(stats.dropped), "dropped_total": sum(stats.dropped.values())}


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def argv() -> list[str]:
    return list(sys.argv)
