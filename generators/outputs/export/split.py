"""--split train=0.98,test=0.02: named fractions, and a split that does not move records around.

A record's split is decided by a hash of (seed, record id) alone, never by its position or by
the other records: the same record lands in the same split on every export, after the run grew,
after a filter changed, on any machine. So a test split stays a test split.
"""
from __future__ import annotations

import hashlib
import re

from generators.core.errors import UsageError

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a split name the hub and datasets both accept
DEFAULT = (("train", 1.0),)


def parse(spec: str | None) -> tuple[tuple[str, float], ...]:
    """'train=0.98,test=0.02' → (('train', 0.98), ('test', 0.02)); anything else is one UsageError."""
    if spec is None:
        return DEFAULT
    parts: list[tuple[str, float]] = []
    for chunk in spec.split(","):
        name, eq, value = chunk.strip().partition("=")
        name = name.strip()
        if not eq or not NAME.fullmatch(name):
            raise UsageError(f"--split {spec!r}: each part must be NAME=FRACTION with a name of letters, "
                             "digits and _, e.g. train=0.98,test=0.02")
        try:
            fraction = float(value)
        except ValueError:
            raise UsageError(f"--split {spec!r}: {value.strip()!r} is not a number") from None
        if not 0 < fraction <= 1:
            raise UsageError(f"--split {spec!r}: the fraction of {name} must be above 0 and at most 1")
        if name in (n for n, _ in parts):
            raise UsageError(f"--split {spec!r}: {name} is named twice")
        parts.append((name, fraction))
    total = sum(f for _, f in parts)
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"--split {spec!r}: the fractions add up to {total:g}, not 1")
    return tuple(parts)


def position(record_id: str, seed: int) -> float:
    """Where a record falls in [0, 1): the first 8 bytes of sha256(seed:id)."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(record_id: str, splits: tuple[tuple[str, float], ...], seed: int) -> str:
    """The split a record belongs to, by its position against the cumulative fractions."""
    point, edge = position(record_id, seed), 0.0
    for name, fraction in splits:
        edge += fraction
        if point < edge:
            return name
    return splits[-1][0]  # rounding: the last sliver belongs to the last split
