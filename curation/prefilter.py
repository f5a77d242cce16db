"""Everything decided before a record is rated, in one deterministic pass over the input: a
chain of filters (generators.core.filtering) of repeated record ids, the per-record checks, then
decontamination, then instruction dedup (last, so that a record dropped for another reason does
not hide a later good copy). The same input and settings give
the same decisions, which is what lets a killed curate run recompute them and resume."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from generators.core.filtering import Filter, FilterBase, FilterChain
from generators.core.records import Record

from curation.decontaminate import Decontaminator
from curation.dedup import InstructionDedup
from curation.filters import record_chain


@dataclass
class Decision:
    record: Record
    reason: str | None           # None: goes on to rating
    detail: dict[str, Any] | None = None


class DuplicateIds(FilterBase):
    """Always on: a rating is stored per record id, so an id seen before is dropped."""

    name = "duplicate_id"
    reasons = {"duplicate_id": "a record id seen earlier in the input"}

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def check(self, record: Record) -> str | None:
        record_id = str(record.get("id"))
        if record_id in self._ids:
            return "duplicate_id"
        self._ids.add(record_id)
        return None


@dataclass
class Prefilter:
    filters: dict[str, Any] = field(default_factory=dict)  # the record filter flags (defaults where absent)
    decontaminator: Decontaminator | None = None
    dedup: InstructionDedup | None = None

    def __post_init__(self) -> None:
        self.records = record_chain(self.filters)
        chain: list[Filter[Record]] = [DuplicateIds(), *self.records.filters]
        chain += [f for f in (self.decontaminator, self.dedup) if f is not None]
        self.chain = FilterChain(chain)

    @property
    def counts(self) -> Counter:
        return self.chain.counts

    def describe(self) -> dict[str, Any]:
        return {"filters": self.records.settings(),
                "decontaminate": self.decontaminator.settings() if self.decontaminator else None,
                "dedup": self.dedup.settings() if self.dedup else None}

    def decide(self, record: Record) -> Decision:
        reason = self.chain.check(record)
        match = self.decontaminator.last if self.decontaminator is not None else None
        if reason is not None and match is not None and reason == match.reason:
            prompt = self.decontaminator.prompts[match.eval_index]
            return Decision(record, reason, {"eval_index": match.eval_index, "eval_prompt": prompt[:300],
                                             "value": match.value})
        return Decision(record, reason)

    def run(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            yield self.decide(record)
