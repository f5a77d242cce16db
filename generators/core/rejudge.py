"""Judge the lines of a run folder again when only the filter settings changed.

Filters decide what is kept, not what is asked, so they are not part of the run's fingerprint.
Every kept or rejected line carries what its filters read (the model's text), so a rerun with
other filter settings sorts the lines it already has into data.jsonl and rejected.jsonl anew,
without a request; the manifest's "filters" says which settings judged them last.

The two files are rewritten together, safely against a kill at any moment:
  1. the new data.jsonl and rejected.jsonl are written and synced under temporary names;
  2. REJUDGE (the commit record, written atomically) names them;
  3. each is renamed over its old file, then REJUDGE is removed.
A kill before 2 leaves the old files (the temporaries are dropped on the next open); a kill
after 2 is finished on the next open (`finish_pending`). Either way no line is lost or doubled.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from generators.core.io import atomic_lines, dumps, read_json, read_lines, write_json
from generators.core.records import Record, stable_id

REJUDGE = ".rejudge.json"
FILES = ("data.jsonl", "rejected.jsonl")  # kept, rejected: the two files a verdict moves lines between
SUFFIX = ".rejudge"

Verdict = Callable[[Record], "tuple[Record, str | None]"]


@dataclass
class Rejudge:
    """What a stage tells the skeleton so it can judge stored lines again.

    filters: the settings of the current filters (the manifest's "filters", compared with it);
    judge:   makes a fresh judge (empty dedup memory) that gives one stored line (with its old
             "reject", if any) back as (record, reason or None);
    order:   sort key of a line: input order, so dedup keeps the same copy however the lines
             were written."""

    filters: dict[str, Any]
    judge: Callable[[], Verdict]
    order: Callable[[Record], Any] = lambda record: 0


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def finish_pending(folder: Path) -> None:
    """Complete a re-judgement a kill interrupted after its commit record, or drop one that had
    not reached it."""
    marker = folder / REJUDGE
    if marker.exists():
        for name in FILES:
            temporary = folder / (name + SUFFIX)
            if temporary.exists():
                temporary.replace(folder / name)
        marker.unlink()
    for name in FILES:
        (folder / (name + SUFFIX)).unlink(missing_ok=True)


def rejudge_folder(folder: Path, stage: str, settings: dict[str, Any], rejudge: Rejudge | None) -> int | None:
    """Judge the folder's lines again when its filters changed (the caller holds the lock). Returns
    how many lines changed file, or None when there was nothing to do."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    finish_pending(folder)
    if rejudge is None:
        return None
    previous = read_json(folder / "manifest.json", what="run manifest") or {}
    if previous.get("fingerprint") != stable_id(stage, settings):
        return None  # a new folder, or other generation settings (the store refuses those)
    if _plain(previous.get("filters")) == _plain(rejudge.filters):
        return None
    lines = [(order, obj) for order, name in enumerate(FILES) for _, obj in read_lines(folder / name)]
    if not lines:
        return None
    lines.sort(key=lambda entry: (rejudge.order(entry[1]), entry[0]))
    judge = rejudge.judge()
    kept: list[str] = []
    rejected: list[str] = []
    moved = 0
    for was_rejected, line in lines:
        record, reason = judge(line)
        record.pop("reject", None)
        if reason is not None:
            record["reject"] = reason
        moved += bool(was_rejected) != (reason is not None)
        (rejected if reason is not None else kept).append(dumps(record))
    for name, new in zip(FILES, (kept, rejected)):
        atomic_lines(folder / (name + SUFFIX), new)
    write_json(folder / REJUDGE, {"files": list(FILES)})
    finish_pending(folder)  # renames: a SIGKILL cannot undo one, and REJUDGE goes last
    return moved

