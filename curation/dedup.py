"""Duplicate instructions, caught before rating: the first occurrence in input order is kept.

  duplicate        the same instruction after normalization (case, punctuation, spacing)
  near_duplicate   MinHash LSH over word 3-grams of the instruction, Jaccard >= threshold,
                   confirmed on the signatures (generators.inputs.corpus.dedup.DedupIndex)
Only the instruction (first user turn) is compared: two answers to one question teach the
model one question. Deterministic in input order, so a resumed run decides the same way.
"""
from __future__ import annotations

from typing import Any

from generators.core.filtering import FilterBase, shared_reasons
from generators.core.records import Record, instruction
from generators.inputs.corpus.dedup import DedupIndex


class InstructionDedup(FilterBase):
    name = "dedup"
    reasons = shared_reasons("duplicate", "near_duplicate")

    def __init__(self, *, near: bool = True, threshold: float = 0.8, num_perm: int = 64,
                 shingle: int = 3) -> None:
        self._settings = {"near": near, "threshold": threshold, "num_perm": num_perm, "shingle": shingle}
        self._index = DedupIndex(exact=True, near=near, threshold=threshold, num_perm=num_perm,
                                 shingle=shingle)

    def check(self, record: Record) -> str | None:
        """None (and remember the record) or the duplicate reason."""
        return self._index.check(instruction(record))

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)
