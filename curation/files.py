"""Reading the input and the --out folder's JSON files, and rewriting derived files atomically
(temp file + rename), so that a kill never leaves a half-written file behind."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from generators.records import read_records

from .text import Record


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


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object written by an earlier run; {} when missing or unreadable."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)


def atomic_lines(path: Path, lines: Iterator[str]) -> int:
    """Write `lines` to `path` through a synced temp file; returns how many were written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line if line.endswith("\n") else line + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return count


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, object) for each complete JSON line of a file (none if it is missing)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        offset = 0
        for raw in handle:
            start, offset = offset, offset + len(raw)
            try:
                yield start, json.loads(raw)
            except ValueError:
                continue


def stored_item(obj: dict[str, Any]) -> str | None:
    """The item id a stored line belongs to (meta.item on records, item on error lines)."""
    return (obj.get("meta") or {}).get("item") or obj.get("item")
