"""`gen train`: flags → TrainConfig → trainer.train. Nothing here but argument handling.

torch and transformers are imported only when the command runs, so `gen train --help` and
bad-flag answers are instant. Errors are UsageError/FatalError; generators.cli prints them as
one line with exit code 2 or 1.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import click
from click.core import ParameterSource

from generators.core.errors import BaleenError, UsageError
from generators.core.flags import options
from generators.core.records import TAGS

from training.config import TrainConfig, apply_preset, parse_pairs

WEIGHT_KEYS = TAGS + ("none",)


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", multiple=True, type=click.Path(dir_okay=False),
              help="Records (JSONL, the format in docs/run-folder.md); more paths may follow: --data a.jsonl b.jsonl.")
@click.argument("more_data", nargs=-1, type=click.Path(dir_okay=False))
@options(TrainConfig, stop="eval_frac")
@click.option("--weight", "weights", multiple=True, metavar="TAG=W",
              help="Loss weight per tag (seed, augmented, none), e.g. --weight augmented=0.1.")
@click.option("--tag-text", "tag_texts", multiple=True, metavar="TAG=TEXT",
              help="Override a tag's system-prompt sentence.")
@options(TrainConfig, start="eval_frac")
@click.pass_context
def train_command(ctx: click.Context, data: tuple[str, ...], more_data: tuple[str, ...], **opts: Any) -> None:
    """Train a LoRA adapter (forward or backward) on records, with source tags.

    Example: gen train --data seed.jsonl curated.jsonl --base smollm2-135m --out runs/m1
    --weight augmented=0.1

    Several processes: torchrun --nproc-per-node N $(which gen) train ... (DDP; --fsdp to shard).
    """
    try:
        if more_data and not data:
            raise UsageError(f"unexpected argument {more_data[0]!r}; data files go after --data")
        given = {name for name in opts if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
        config = build_config(list(data) + list(more_data), opts, given)
    except BaleenError as exc:
        exc.shared = True  # type: ignore[attr-defined]  # flags alone: every rank refuses alike
        _leave_it_to_rank_0(exc)
        raise
    from training.trainer import train

    try:
        train(config)
    except BaleenError as exc:
        _leave_it_to_rank_0(exc)
        raise


def _leave_it_to_rank_0(exc: BaleenError) -> None:
    """Under torchrun, an error every rank met alike is printed by rank 0 alone: the others exit
    with its code, quietly, after giving rank 0 time to print before torchrun ends the group."""
    if _rank() > 0 and getattr(exc, "shared", False):
        time.sleep(5)
        sys.exit(exc.exit_code)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0


def build_config(data: list[str], opts: dict[str, Any], given: set[str]) -> TrainConfig:
    """Flags → TrainConfig, with preset values for flags not given, and one-line refusals."""
    if not data and not opts.get("seed_data"):
        raise UsageError("no training data: give --data PATH [PATH ...] and/or --seed-data oasst1|PATH")
    values = dict(opts)
    values["weights"] = {"seed": 1.0, "augmented": 1.0, "none": 1.0,
                         **parse_pairs(opts["weights"], "--weight", WEIGHT_KEYS, float)}
    values["tag_texts"] = parse_pairs(opts["tag_texts"], "--tag-text", TAGS, str)
    target = values["target_modules"]
    values["target_modules"] = target if target == "all-linear" else [t.strip() for t in target.split(",") if t.strip()]
    mts = values["modules_to_save"]
    values["modules_to_save"] = [m.strip() for m in mts.split(",")] if mts else None
    values = apply_preset(values, given)
    for name in ("batch_size", "grad_accum", "max_length", "seed_limit", "lora_alpha"):
        if values[name] is not None and values[name] < 1:
            raise UsageError(f"--{name.replace('_', '-')} {values[name]}: must be at least 1")
    if values["max_steps"] is not None and values["max_steps"] < 1:
        raise UsageError(f"--max-steps {values['max_steps']}: must be at least 1")
    if not 0 <= values["eval_frac"] < 1:
        raise UsageError(f"--eval-frac {values['eval_frac']}: must be in [0, 1)")
    if values["epochs"] <= 0:
        raise UsageError(f"--epochs {values['epochs']}: must be more than 0")
    return TrainConfig(data=data, **values)
