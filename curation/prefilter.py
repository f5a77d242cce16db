"""Everything decided before a record is rated, in one deterministic pass over the input:
repeated record ids, the per-record filters, then decontamination, then instruction dedup (last, so that a record
dropped for another reason does not hide a later good copy). The same input and settings give
the same decisions, which is what lets a killed curate run recompute them and resume."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .decontaminate import Decontaminator
from .dedup import InstructionDedup
from .filters import FilterConfig, RecordFilter
from .text import Record


@dataclass
class Decision:
    record: Record
    reason: str | None           # None: goes on to rating
    detail: dict[str, Any] | None = None


@dataclass
class Prefilter:
    filters: FilterConfig = field(default_factory=FilterConfig)
    decontaminator: Decontaminator | None = None
    dedup: InstructionDedup | None = None
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._filter = RecordFilter(self.filters)
        self._ids: set[str] = set()

    def describe(self) -> dict[str, Any]:
        return {"filters": self.filters.describe(),
                "decontaminate": self.decontaminator.describe() if self.decontaminator else None,
                "dedup": self.dedup.describe() if self.dedup else None}

    def decide(self, record: Record) -> Decision:
        record_id = str(record.get("id"))
        if record_id in self._ids:  # always on: a rating is stored per record
            return self._count(Decision(record, "duplicate_id"))
        self._ids.add(record_id)
        reason = self._filter.check(record)
        if reason:
            return self._count(Decision(record, reason))
        if self.decontaminator is not None:
            match = self.decontaminator.check(record)
            if match is not None:
                prompt = self.decontaminator.prompts[match.eval_index]
                return self._count(Decision(record, match.reason, {"eval_index": match.eval_index,
                                                                   "eval_prompt": prompt[:300],
                                                                   "value": match.value}))
        if self.dedup is not None:
            reason = self.dedup.check(record)
            if reason:
                return self._count(Decision(record, reason))
        return self._count(Decision(record, None))

    def run(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            yield self.decide(record)

    def _count(self, decision: Decision) -> Decision:
        self.counts[decision.reason or "passed"] += 1
        return decision
