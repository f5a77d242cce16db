"""What changed between rounds: the curated records of round k against those of round k-1.

Each round is stood for by one run, as in `gen report`: its curate run, else its last run with
records (round0's candidates, say). Records are matched by id, so a candidate rated in two rounds
is the same record. Rows of round k's run are marked new (kept now, not before), kept_again (kept
now and before) or dropped (kept before, rejected or failed now); the counts come from the id
sets, so a dropped record with no line at all in round k still counts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from generators.outputs.view.index import CHANGES, OUTCOMES, Index
from generators.outputs.view.runs import Layout, Run


@dataclass
class RoundDiff:
    round: str
    run: str
    previous_round: str
    previous_run: str
    kept: int
    new: int
    dropped: int
    kept_again: int

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def representative(runs: list[Run]) -> Run | None:
    """The run that stands for a round: its curate run, else its last run with records."""
    data = [r for r in runs if r.has_records]
    curated = [r for r in data if r.stage == "curate"]
    return (curated or data or [None])[-1]


def kept_ids(index: Index, run: int) -> set[str]:
    rows = np.flatnonzero((index.run == run) & (index.outcome == OUTCOMES.index("kept")))
    return {index.ids[i] for i in rows}


def compare_rounds(layout: Layout, index: Index) -> list[RoundDiff]:
    """One RoundDiff per round after the first that has records; marks index.change on the way."""
    diffs: list[RoundDiff] = []
    previous: tuple[str, Run, set[str]] | None = None
    position = {id(run): i for i, run in enumerate(layout.runs)}
    for label in layout.rounds:
        run = representative(layout.runs_of(label))
        if run is None:
            continue
        r = position[id(run)]
        now = kept_ids(index, r)
        if previous is not None:
            before_label, before, before_ids = previous
            diffs.append(RoundDiff(label, run.name, before_label, before.name, len(now),
                                   new=len(now - before_ids), dropped=len(before_ids - now),
                                   kept_again=len(now & before_ids)))
            mark_changes(index, r, before_ids, now)
        previous = (label, run, now)
    return diffs


def mark_changes(index: Index, run: int, before: set[str], now: set[str]) -> None:
    """Set index.change on the rows of `run` (whose kept ids are `now`) against the ids kept
    in the round before."""
    kept = OUTCOMES.index("kept")
    for i in np.flatnonzero(index.run == run):
        was_kept = index.ids[i] in before
        if index.outcome[i] == kept:
            index.change[i] = CHANGES.index("kept_again" if was_kept else "new")
        elif was_kept and index.ids[i] not in now:
            index.change[i] = CHANGES.index("dropped")
