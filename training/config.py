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

import click

from generators.core.errors import UsageError
from generators.core.flags import flag

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


@dataclass(kw_only=True)
class TrainConfig:
    """Each field that is a flag declares it (generators/core/flags.py), in `gen train --help`
    order; the flag values arrive as given (--lora-target and --modules-to-save as comma lists)."""

    data: list[str]
    base: str = flag("--base", help="Base model folder or hub name; smollm2-135m = the embedded model.")
    out: str = flag("--out", type=click.Path(file_okay=False),
                    help="Output folder: the adapter, manifest.json, checkpoints.")
    direction: str = flag("--direction", type=click.Choice(["forward", "backward"]), default="forward",
                          show_default=True, help="forward: instruction → answer; backward (M_yx): answer → instruction.")
    seed_data: str | None = flag("--seed-data", default=None,  # "oasst1" or a local OASST export
                                 help="Add Open Assistant seed pairs: 'oasst1' (hub) or a local export.")
    seed_limit: int = flag("--seed-limit", "--limit", type=int, default=3200, show_default=True,
                           help="How many seed pairs to take.")
    preset: str | None = flag("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                              help="Published settings (humpback | baize) for every flag not given.")
    epochs: float = flag("--epochs", type=float, default=1.0, show_default=True)
    max_steps: int | None = flag("--max-steps", type=int, default=None,
                                 help="Stop after this many optimizer steps (overrides --epochs).")
    lr: float = flag("--lr", type=float, default=2e-4, show_default=True)
    lr_end_ratio: float = flag("--lr-end-ratio", type=float, default=0.0, show_default=True,
                               help="Final lr as a fraction of --lr (linear decay).")
    warmup_ratio: float = flag("--warmup-ratio", type=float, default=0.03, show_default=True)
    weight_decay: float = flag("--weight-decay", type=float, default=0.0, show_default=True)
    batch_size: int = flag("--batch-size", type=int, default=8, show_default=True, help="Examples per micro-batch.")
    small_data_batch_size: int | None = None  # used instead when fewer than 3,000 examples
    grad_accum: int = flag("--grad-accum", type=int, default=1, show_default=True,
                           help="Micro-batches per optimizer step.")
    max_length: int = flag("--max-length", type=int, default=1024, show_default=True,
                           help="Tokens per example; longer ones are truncated.")
    lora_r: int = flag("--lora-r", type=int, default=16, show_default=True)
    lora_alpha: int = flag("--lora-alpha", type=int, default=32, show_default=True)
    lora_dropout: float = flag("--lora-dropout", type=float, default=0.05, show_default=True)
    target_modules: Any = flag("--lora-target", default="all-linear", show_default=True,
                               help="Modules to adapt: all-linear, or a comma list such as q_proj,v_proj.")
    max_lora_rank: int = flag("--max-lora-rank", type=int, default=16, show_default=True,
                              help="vLLM's max_lora_rank; a higher --lora-r is refused.")
    use_dora: bool = flag("--dora", is_flag=True, default=False, help="DoRA (refused: vLLM cannot serve it).")
    lora_bias: str = flag("--lora-bias", type=click.Choice(["none", "all", "lora_only"]), default="none",
                          show_default=True, help="Anything but none is refused (vLLM).")
    modules_to_save: list[str] | None = flag("--modules-to-save", default=None,
                                             help="Comma list (refused: vLLM cannot serve it).")
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    tag_texts: dict[str, str] = field(default_factory=dict)
    eval_frac: float = flag("--eval-frac", type=float, default=0.02, show_default=True,
                            help="Share of examples held out for eval loss.")
    eval_every: int = flag("--eval-every", type=int, default=0, show_default=True,
                           help="Eval every N steps (0: at the end only).")
    seed: int = flag("--seed", type=int, default=0, show_default=True)
    packing: str = flag("--packing", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
                        help="Padding-free packed batches; auto: where attention has varlen kernels (flash).")
    attn_implementation: str | None = flag(
        "--attn-implementation", default=None,
        help="Passed to transformers, e.g. flash_attention_2 (if installed) or sdpa.")
    grad_checkpointing: bool = flag("--grad-checkpointing/--no-grad-checkpointing", default=True, show_default=True)
    load_4bit: bool = flag("--4bit", is_flag=True, default=False,
                           help="QLoRA: nf4, double quantization, bf16 compute (CUDA, bitsandbytes).")
    merge: bool = flag("--merge", is_flag=True, default=False, help="Also write base+adapter merged into OUT/merged.")
    fsdp: bool = flag(  # shard the base over torchrun's processes (FSDP2)
        "--fsdp", is_flag=True, default=False,
        help="Under torchrun: shard the base over the processes (FSDP2), for a base that does not fit one device.")
    save_every: int = flag("--save-every", type=int, default=50, show_default=True,
                           help="Checkpoint every N steps (a rerun resumes).")
    save_total_limit: int = flag("--save-total-limit", type=int, default=2, show_default=True)
    log_every: int = flag("--log-every", type=int, default=10, show_default=True)
    device: str = flag("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
    cache_dir: str | None = flag("--cache-dir", default=None, help="Where the embedded model is kept.")

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
