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
from generators.core.records import TAGS

from training.config import PRESETS, TrainConfig, apply_preset, parse_pairs

WEIGHT_KEYS = TAGS + ("none",)


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", multiple=True, type=click.Path(dir_okay=False),
              help="Records (JSONL, the format in docs/run-folder.md); more paths may follow: --data a.jsonl b.jsonl.")
@click.argument("more_data", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--base", required=True, help="Base model folder or hub name; smollm2-135m = the embedded model.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder: the adapter, manifest.json, checkpoints.")
@click.option("--direction", type=click.Choice(["forward", "backward"]), default="forward", show_default=True,
              help="forward: instruction → answer; backward (M_yx): answer → instruction.")
@click.option("--seed-data", default=None, help="Add Open Assistant seed pairs: 'oasst1' (hub) or a local export.")
@click.option("--seed-limit", "--limit", "seed_limit", type=int, default=3200, show_default=True,
              help="How many seed pairs to take.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Published settings (humpback | baize) for every flag not given.")
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps (overrides --epochs).")
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--lr-end-ratio", type=float, default=0.0, show_default=True, help="Final lr as a fraction of --lr (linear decay).")
@click.option("--warmup-ratio", type=float, default=0.03, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Examples per micro-batch.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--max-length", type=int, default=1024, show_default=True, help="Tokens per example; longer ones are truncated.")
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--lora-dropout", type=float, default=0.05, show_default=True)
@click.option("--lora-target", default="all-linear", show_default=True,
              help="Modules to adapt: all-linear, or a comma list such as q_proj,v_proj.")
@click.option("--max-lora-rank", type=int, default=16, show_default=True, help="vLLM's max_lora_rank; a higher --lora-r is refused.")
@click.option("--dora", is_flag=True, help="DoRA (refused: vLLM cannot serve it).")
@click.option("--lora-bias", type=click.Choice(["none", "all", "lora_only"]), default="none", show_default=True,
              help="Anything but none is refused (vLLM).")
@click.option("--modules-to-save", default=None, help="Comma list (refused: vLLM cannot serve it).")
@click.option("--weight", "weights", multiple=True, metavar="TAG=W",
              help="Loss weight per tag (seed, augmented, none), e.g. --weight augmented=0.1.")
@click.option("--tag-text", "tag_texts", multiple=True, metavar="TAG=TEXT",
              help="Override a tag's system-prompt sentence.")
@click.option("--eval-frac", type=float, default=0.02, show_default=True, help="Share of examples held out for eval loss.")
@click.option("--eval-every", type=int, default=0, show_default=True, help="Eval every N steps (0: at the end only).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--packing", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Padding-free packed batches; auto: where attention has varlen kernels (flash).")
@click.option("--attn-implementation", default=None,
              help="Passed to transformers, e.g. flash_attention_2 (if installed) or sdpa.")
@click.option("--grad-checkpointing/--no-grad-checkpointing", default=True, show_default=True)
@click.option("--4bit", "load_4bit", is_flag=True, help="QLoRA: nf4, double quantization, bf16 compute (CUDA, bitsandbytes).")
@click.option("--merge", is_flag=True, help="Also write base+adapter merged into OUT/merged.")
@click.option("--fsdp", is_flag=True,
              help="Under torchrun: shard the base over the processes (FSDP2), for a base that does not fit one device.")
@click.option("--save-every", type=int, default=50, show_default=True, help="Checkpoint every N steps (a rerun resumes).")
@click.option("--save-total-limit", type=int, default=2, show_default=True)
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--cache-dir", default=None, help="Where the embedded model is kept.")
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
    target = values.pop("lora_target")
    values["target_modules"] = target if target == "all-linear" else [t.strip() for t in target.split(",") if t.strip()]
    if "lora_target" in given:
        given.add("target_modules")
    values["use_dora"] = values.pop("dora")
    mts = values.pop("modules_to_save")
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
