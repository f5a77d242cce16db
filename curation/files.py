"""Where curate reads its input: a records file, or a run folder (its data.jsonl)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from generators.core.records import Record, read_records



def resolve_input(path: Path) -> Path:
    """A records file, or a run folder (its data.jsonl)."""
    if path.is_dir() and (path / "data.jsonl").is_file():
        return path / "data.jsonl"
    return path


def input_records(path: Path, limit: int | None) -> Iterator[tuple[int, Record]]:
    """(input position, record) for the first `limit` records (all when None)."""
    for position, record in enumerate(read_records(path)):
        if limit is not None and position >= limit:
            return
        yield position, record
