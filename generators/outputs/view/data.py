"""Everything the page asks for, answered from the index built once at start.

ViewData is what the server holds: the layout, the index, the round comparisons and the search
cache. Its three answers are plain dicts (JSON for the API): the runs with their counts and the
choices of every filter, one page of rows, and one whole record.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from generators.outputs.view.diff import compare_rounds
from generators.outputs.view.index import CHANGES, OUTCOMES, Index
from generators.outputs.view.query import Query, select
from generators.outputs.view.runs import discover
from generators.outputs.view.search import Searcher

PREVIEW_CHARS = 240


def _score(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def _first(line: dict[str, Any], role: str) -> str:
    for message in line.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == role:
            return str(message.get("content") or "")
    return ""


def preview(line: dict[str, Any]) -> str:
    """One line of text for the table: the first question, or what an error line was about."""
    text = _first(line, "user")
    if not text and "error" in line:
        value = line.get("input")
        text = value if isinstance(value, str) else str(value.get("text", value)) if isinstance(value, dict) else ""
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


class ViewData:
    def __init__(self, folder: Path) -> None:
        started = time.perf_counter()
        self.folder = folder
        self.layout = discover(folder)
        self.index = Index(self.layout.runs)
        self.diffs = compare_rounds(self.layout, self.index)
        self.searcher = Searcher(self.index)
        self.seconds = time.perf_counter() - started

    def _row(self, i: int) -> dict[str, Any]:
        """The index's own fields of row i."""
        x = self.index
        run = self.layout.runs[int(x.run[i])]
        reason, tag = int(x.reason[i]), int(x.tag[i])
        return {"row": int(i), "id": x.ids[i], "run": run.name, "round": run.round, "stage": run.stage,
                "outcome": OUTCOMES[int(x.outcome[i])],
                "reason": x.reasons.names[reason] if reason >= 0 else None,
                "tag": x.tags.names[tag] if tag >= 0 else None,
                "score": _score(x.score[i]), "score_expected": _score(x.expected[i]),
                "change": CHANGES[int(x.change[i])] or None}

    def summary(self) -> dict[str, Any]:
        """/api/runs: the runs with their counts, the rounds compared, and every filter's choices."""
        x = self.index
        runs = []
        for r, run in enumerate(self.layout.runs):
            stats = x.stats[r]
            usage = run.manifest.get("usage") or {}
            runs.append({"name": run.name, "round": run.round, "stage": run.stage, "status": run.status,
                         "kept": stats.kept, "rejected": stats.rejected, "errors": stats.errors,
                         "bad_lines": stats.bad_lines, "reasons": dict(stats.reasons.most_common()),
                         "tokens": (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0),
                         "cost_usd": usage.get("cost_usd"), "has_records": run.has_records})
        reasons = np.bincount(x.reason[x.reason >= 0], minlength=len(x.reasons.names))
        tags = np.bincount(x.tag[x.tag >= 0], minlength=len(x.tags.names))
        scored = x.score[~np.isnan(x.score)]
        return {
            "folder": str(self.folder), "kind": self.layout.kind, "records": len(x),
            "index_seconds": round(self.seconds, 3),
            "rounds": [{"label": label, "runs": [r.name for r in self.layout.runs_of(label)],
                        "lineage": self.layout.lineage.get(label)} for label in self.layout.rounds],
            "runs": runs,
            "diffs": [d.describe() for d in self.diffs],
            "facets": {
                "outcome": {name: int(np.count_nonzero(x.outcome == o)) for o, name in enumerate(OUTCOMES)},
                "reason": {name: int(n) for name, n in sorted(zip(x.reasons.names, reasons), key=lambda p: -p[1])},
                "tag": {name: int(n) for name, n in zip(x.tags.names, tags)},
                "change": {name: int(np.count_nonzero(x.change == c)) for c, name in enumerate(CHANGES) if name},
                "score": [float(scored.min()), float(scored.max())] if len(scored) else None,
            },
        }

    def records(self, params: Mapping[str, str]) -> dict[str, Any]:
        """/api/records: one page of rows matching the filters (QueryError on a bad parameter)."""
        query = Query.parse(params)
        rows = select(self.index, self.layout, query, self.searcher)
        page = rows[query.offset:query.offset + query.limit]
        lines = self.index.read(page)
        out = []
        for i, line in zip(page, lines):
            row = self._row(int(i))
            meta = line.get("meta") if isinstance(line.get("meta"), dict) else {}
            row.update(text=preview(line), header=meta.get("header"),
                       turns=len(line.get("messages") or []))
            out.append(row)
        return {"total": int(len(rows)), "offset": query.offset, "limit": query.limit, "rows": out}

    def record(self, row: int) -> dict[str, Any] | None:
        """/api/record: one whole stored line with the index's fields; None when out of range."""
        if not 0 <= row < len(self.index):
            return None
        return {**self._row(row), "record": self.index.read([row])[0]}
