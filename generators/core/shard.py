"""`--shard I/N`: split one input (seeds, a corpus) across N machines; this one takes part I."""
from __future__ import annotations

import re

import click

from generators.core.errors import UsageError


def check_shard(shard: tuple[int, int], shown: str) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {shown}: need 0 <= I < N (for example 0/4 .. 3/4)")


def parse_shard(text: str) -> tuple[int, int]:
    """'0/4' -> (0, 4), with a one-line error for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UsageError(f"--shard {text!r}: expected I/N such as 0/4 (shard I of N, counting from 0)")
    shard = int(match.group(1)), int(match.group(2))
    check_shard(shard, text)
    return shard


def shard_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """Click callback for --shard."""
    return None if value is None else parse_shard(value)
