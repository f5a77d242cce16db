"""Choose A_k from rated records: score >= threshold, optionally only the top N / top fraction.

Ranking is by expected score (the rater's probability-weighted score, when logprobs were
available), then the integer score, then the record id (a stable order for exact ties). The top
N counts over all rated records, so `--threshold 4 --top-frac 0.1` keeps the best tenth of the
rated records, and of those only the ones scored 4 or 5. Reasons for the rest:
  below_threshold  score < threshold (whatever the rank)
  not_top          score >= threshold, but ranked after the top N
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import click

from generators.core.errors import UsageError
from generators.core.flags import flag


@dataclass(frozen=True)
class SelectConfig:
    threshold: int = flag("--threshold", type=click.IntRange(1, 5), default=5, show_default=True,
                          help="Keep records scored at least this (Humpback's A_k).")
    top: int | None = flag("--top", type=click.IntRange(0), default=None,
                           help="Also keep at most the N best rated records (by expected score, then score).")
    top_frac: float | None = flag(
        "--top-frac", type=click.FloatRange(0, 1, min_open=True), default=None,
        help="Also keep at most this fraction of the rated records (by expected score, then score).")

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= 5:
            raise UsageError(f"--threshold {self.threshold}: must be 1..5")
        if self.top is not None and self.top_frac is not None:
            raise UsageError("give --top or --top-frac, not both")
        if self.top is not None and self.top < 0:
            raise UsageError(f"--top {self.top}: must be 0 or more")
        if self.top_frac is not None and not 0 < self.top_frac <= 1:
            raise UsageError(f"--top-frac {self.top_frac}: must be in (0, 1]")

    def limit(self, rated: int) -> int | None:
        if self.top is not None:
            return self.top
        if self.top_frac is not None:
            return math.floor(self.top_frac * rated + 1e-9)
        return None

    def describe(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "top": self.top, "top_frac": self.top_frac}


@dataclass(frozen=True)
class Rated:
    """What selection needs of a rated record (the record itself stays on disk)."""
    key: Any                 # the caller's handle (e.g. a file offset)
    id: str
    score: int
    score_expected: float | None

    def rank_key(self) -> tuple:
        value = self.score_expected if self.score_expected is not None else float(self.score)
        return (-value, -self.score, self.id)


def select(rated: Sequence[Rated], config: SelectConfig) -> dict[Any, str | None]:
    """key -> None (kept) or the rejection reason."""
    limit = config.limit(len(rated))
    decisions: dict[Any, str | None] = {}
    for rank, item in enumerate(sorted(rated, key=Rated.rank_key)):
        if item.score < config.threshold:
            decisions[item.key] = "below_threshold"
        elif limit is not None and rank >= limit:
            decisions[item.key] = "not_top"
        else:
            decisions[item.key] = None
    return decisions
