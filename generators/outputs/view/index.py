"""One pass over every line of every run, kept as columns: what a filter needs, and where the line is.

A run of 100k records is too big to hold as dicts (and to send to a page), but the fields people
filter on are tiny: outcome, reason, score, tag, id. Each line becomes one row of numpy columns
plus its byte offset, so a filter is a vector operation and a page reads only its own lines back
from disk (`read`).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from generators.core.io import read_lines, repaired_record
from generators.core.store import FILES
from generators.outputs.view.runs import Run

OUTCOMES = ("kept", "rejected", "error")   # the three files of a run folder, in store.FILES order
CHANGES = ("", "new", "kept_again", "dropped")  # between rounds; "" for rows outside a comparison


@dataclass
class RunStats:
    kept: int = 0
    rejected: int = 0
    errors: int = 0
    bad_lines: int = 0                       # lines a kill cut short, passed over
    reasons: Counter = field(default_factory=Counter)


def error_kind(line: dict[str, Any]) -> str:
    """A short, groupable reason for an error line: "HTTP 500", "local generation failed", ...
    (the full text stays in the line)."""
    text = str(line.get("error") or "").strip()
    head = text.split(":", 1)[0].strip()[:60]
    if head:
        return head
    return f"HTTP {line['status']}" if line.get("status") else "error"


NAN = float("nan")


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return NAN


class Codes:
    """Strings as small integers (reasons, tags), in first-seen order; -1 is "none"."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._code: dict[str, int] = {}

    def code(self, name: Any) -> int:
        if name is None or name == "":
            return -1
        name = str(name)
        if name not in self._code:
            self._code[name] = len(self.names)
            self.names.append(name)
        return self._code[name]

    def find(self, name: str) -> int | None:
        return self._code.get(name)


class Index:
    """Rows of every run's data.jsonl, rejected.jsonl and errors.jsonl, in that order per run."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs
        self.files: list[Path] = []
        self.reasons = Codes()
        self.tags = Codes()
        self.stats = [RunStats() for _ in runs]
        self.ids: list[str] = []
        cols: dict[str, list[Any]] = {k: [] for k in
                                      ("file", "offset", "run", "outcome", "reason", "tag", "score", "expected")}
        for r, run in enumerate(runs):
            for o, kind in enumerate(OUTCOMES):
                self._read_file(r, o, run.path / FILES[kind], cols)
        self.file = np.asarray(cols["file"], dtype=np.int32)
        self.offset = np.asarray(cols["offset"], dtype=np.int64)
        self.run = np.asarray(cols["run"], dtype=np.int32)
        self.outcome = np.asarray(cols["outcome"], dtype=np.int8)
        self.reason = np.asarray(cols["reason"], dtype=np.int32)
        self.tag = np.asarray(cols["tag"], dtype=np.int32)
        self.score = np.asarray(cols["score"], dtype=np.float32)
        self.expected = np.asarray(cols["expected"], dtype=np.float32)
        self.change = np.zeros(len(self.ids), dtype=np.int8)  # set by diff.mark_changes

    def __len__(self) -> int:
        return len(self.ids)

    def _read_file(self, r: int, o: int, path: Path, cols: dict[str, list[Any]]) -> None:
        stats = self.stats[r]
        f = len(self.files)
        self.files.append(path)

        def bad() -> None:
            stats.bad_lines += 1

        ids, reasons, tags = self.ids, self.reasons, self.tags
        offsets, reason_col, tag_col = cols["offset"], cols["reason"], cols["tag"]
        score_col, expected_col = cols["score"], cols["expected"]
        first = len(ids)
        for offset, line in read_lines(path, on_bad=bad):
            offsets.append(offset)
            if o == 2:  # an error line: no record, its item id and a short reason
                rid = line.get("item")
                reason = error_kind(line)
                tag_col.append(-1)
                score_col.append(NAN)
                expected_col.append(NAN)
            else:
                rid = line.get("id")
                reason = line.get("reject") if o == 1 else None
                tag_col.append(tags.code(line.get("tag")))
                score_col.append(_number(line.get("score")))
                expected_col.append(_number(line.get("score_expected")))
            ids.append(str(rid) if rid is not None else "")
            reason_col.append(reasons.code(reason))
            if reason is not None:
                stats.reasons[str(reason)] += 1
        added = len(ids) - first
        for key, value in (("file", f), ("run", r), ("outcome", o)):
            cols[key].extend([value] * added)
        if o == 0:
            stats.kept += added
        elif o == 1:
            stats.rejected += added
        else:
            stats.errors += added

    def read(self, rows: Iterable[int]) -> list[dict[str, Any]]:
        """The stored lines of `rows`, read back by offset (one open per file)."""
        rows = [int(i) for i in rows]
        out: dict[int, dict[str, Any]] = {}
        by_file: dict[int, list[int]] = {}
        for i in rows:
            by_file.setdefault(int(self.file[i]), []).append(i)
        for f, members in by_file.items():
            with self.files[f].open("rb") as handle:
                for i in sorted(members, key=lambda j: self.offset[j]):
                    handle.seek(int(self.offset[i]))
                    try:
                        out[i] = repaired_record(json.loads(handle.readline()))
                    except ValueError:  # the file changed under us since the index was built
                        out[i] = {}
        return [out[i] for i in rows]
