"""Duplicate instructions, caught before rating: the first occurrence in input order is kept.

  duplicate        the same instruction after normalization (case, punctuation, spacing)
  near_duplicate   MinHash LSH over word 3-grams of the instruction, Jaccard >= threshold,
                   confirmed on the signatures (generators.inputs.corpus.dedup.DedupIndex)
  semantic_duplicate  with --semantic-dedup: the instruction's embedding has cosine >= the
                   threshold with an earlier kept one and the pair test agrees they ask the
                   same (generators.core.embeddings, same_meaning; baleen[embed])
Only the instruction (first user turn) is compared: two answers to one question teach the
model one question. Deterministic in input order, so a resumed run decides the same way.
"""
from __future__ import annotations

from typing import Any, Iterable

from generators.core.embeddings import SemanticDedup
from generators.core.filtering import FilterBase, shared_reasons
from generators.core.records import Record, instruction
from generators.inputs.corpus.dedup import DedupIndex


class InstructionDedup(FilterBase):
    name = "dedup"
    reasons = shared_reasons("duplicate", "near_duplicate", "semantic_duplicate")

    def __init__(self, *, near: bool = True, threshold: float = 0.8, num_perm: int = 64,
                 shingle: int = 3, semantic: SemanticDedup | None = None) -> None:
        self._settings = {"near": near, "threshold": threshold, "num_perm": num_perm, "shingle": shingle}
        self._index = DedupIndex(exact=True, near=near, threshold=threshold, num_perm=num_perm,
                                 shingle=shingle)
        self.semantic = semantic

    def warm(self, records: Iterable[Record]) -> None:
        """Embed every instruction of the input in batches before the one-by-one pass."""
        if self.semantic is not None:
            self.semantic.warm(instruction(r) for r in records)

    def check(self, record: Record) -> str | None:
        """None (and remember the record) or the duplicate reason."""
        text = instruction(record)
        reason = self._index.check(text)
        if reason is None and self.semantic is not None and self.semantic.is_duplicate(text):
            return "semantic_duplicate"
        return reason

    def settings(self) -> dict[str, Any]:
        semantic = {"semantic": self.semantic.settings()} if self.semantic is not None else {}
        return {**self._settings, **semantic}
