"""Every setting of one training run, with the two published presets (Baize and Humpback).

One frozen-ish dataclass so the trainer, the checkpoint fingerprint and the manifest all read
the same names. Presets only fill what the user did not set on the command line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from generators.core.errors import UsageError

DEFAULT_WEIGHTS = {"seed": 1.0, "augmented": 1.0, "none": 1.0}

# Values a preset sets when the flag was not given. Humpback (arXiv 2308.06259): lr 1e-5 decaying
# linearly to 9e-6, weight decay 0.1, dropout 0.1, batch 32 (8 below 3,000 examples). Baize
# (arXiv 2304.01196): LoRA r 8, alpha 16, dropout 0.05 on q,k,v,gate,up,down; lr 2e-4; batch 64;
# one epoch; max length 512.
PRESETS: dict[str, dict[str, Any]] = {
    "humpback": {"lr": 1e-5, "lr_end_ratio": 0.9, "weight_decay": 0.1, "lora_dropout": 0.1,
                 "batch_size": 32, "small_data_batch_size": 8, "epochs": 1.0, "warmup_ratio": 0.0,
                 "max_length": 2048},
    "baize": {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
              "target_modules": ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
              "lr": 2e-4, "batch_size": 64, "epochs": 1.0, "max_length": 512},
}


@dataclass
class TrainConfig:
    data: list[str]
    base: str
    out: str
    direction: str = "forward"
    seed_data: str | None = None          # "oasst1" or a local OASST export
    seed_limit: int = 3200
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 2e-4
    lr_end_ratio: float = 0.0             # final lr = lr * ratio (linear decay)
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 8
    small_data_batch_size: int | None = None  # used instead when fewer than 3,000 examples
    grad_accum: int = 1
    max_length: int = 1024
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: Any = "all-linear"
    use_dora: bool = False
    lora_bias: str = "none"
    modules_to_save: list[str] | None = None
    max_lora_rank: int = 16
    eval_frac: float = 0.02
    seed: int = 0
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    tag_texts: dict[str, str] = field(default_factory=dict)
    packing: str = "auto"                 # auto | on | off
    attn_implementation: str | None = None  # e.g. flash_attention_2 (where installed), sdpa
    grad_checkpointing: bool = True
    load_4bit: bool = False
    merge: bool = False
    save_every: int = 50
    save_total_limit: int = 2
    eval_every: int = 0                   # 0: only at the end
    log_every: int = 10
    device: str = "auto"
    preset: str | None = None
    cache_dir: str | None = None
    fsdp: bool = False                    # shard the base over torchrun's processes (FSDP2)

    def fingerprint(self, data_digest: str, world_size: int = 1) -> str:
        """Hash of everything that shapes the weights; a checkpoint resumes only on a match.

        What counts is the micro-batches per optimizer step (grad_accum x processes), not how
        they are spread: 2 processes and one process with --grad-accum 2 make the same updates,
        so either may resume the other's checkpoint. FSDP changes only where shards live."""
        keep = {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("out", "merge", "save_every", "save_total_limit", "log_every",
                             "eval_every", "device", "cache_dir", "data", "fsdp")}
        keep["grad_accum"] = self.grad_accum * world_size
        blob = json.dumps([keep, data_digest], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def apply_preset(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Fill preset values into `values` for every key the user did not give explicitly."""
    name = values.get("preset")
    if not name:
        return values
    if name not in PRESETS:
        raise UsageError(f"--preset {name}: unknown; choose one of {', '.join(PRESETS)}")
    for key, value in PRESETS[name].items():
        if key not in given:
            values[key] = value
    return values


def parse_pairs(items: tuple[str, ...] | list[str], flag: str, known: tuple[str, ...],
                cast: type = str) -> dict[str, Any]:
    """Parse repeated TAG=VALUE flags, refusing unknown tags and bad values in one line."""
    out: dict[str, Any] = {}
    for item in items:
        tag, sep, raw = item.partition("=")
        tag = tag.strip()
        if not sep or not tag:
            raise UsageError(f"{flag} {item!r}: expected TAG=VALUE, e.g. {flag} seed=1.0")
        if tag not in known:
            raise UsageError(f"{flag} {item!r}: unknown tag {tag!r}; known: {', '.join(known)}")
        try:
            value = cast(raw)
        except ValueError:
            raise UsageError(f"{flag} {item!r}: {raw!r} is not a valid {cast.__name__}") from None
        if cast is float and value < 0:
            raise UsageError(f"{flag} {item!r}: a weight must be 0 or more")
        out[tag] = value
    return out
