"""Seeds from a local file (.jsonl .json .csv .tsv .parquet .txt): every reader checks its file
up front, through the shared reader (generators/inputs/reader.py), so a bad one fails with one
line that names the file (and the line or row) instead of a traceback halfway through a run."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from generators.core.errors import UsageError
from generators.inputs.reader import (checked_strings, choose_field, iter_json_lines, iter_text_lines, open_parquet,
                                      parquet_columns, parquet_rows, read_text)

PREFERRED_FIELDS = ("question", "text", "title", "prompt", "instruction", "query")
FILE_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")


def read_file(spec: str, field: str | None) -> tuple[Iterator[str], str, str]:
    """(texts, source name, where-for-messages) for a SOURCE that is neither a named set nor hf:."""
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix not in FILE_EXTENSIONS:
        if not path.exists():
            raise UsageError(f"--seeds {spec}: not a named set and no such file; use quora, "
                             "stackoverflow, medquad, medqa, hf:NAME:FIELD or a file path")
        raise UsageError(f"{spec}: unsupported file type {suffix or '(none)'!r}; use "
                         f"{' '.join(FILE_EXTENSIONS)}")
    if not path.exists():
        raise UsageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file, or hf:{path}:FIELD to read a folder")
    reader = _FILE_READERS[suffix]
    return reader(path, field), path.stem, str(path)


def choose_seed_field(columns: Sequence[str], strings: Sequence[str], where: str,
                      field: str | None = None) -> str:
    """--field when given, else the only text column, else the first usual name (files and hub)."""
    return choose_field(columns, field=field, preferred=PREFERRED_FIELDS, strings=strings, where=where,
                        unknown="cannot tell which field holds the seeds")


# ---------------------------------------------------------------- readers

def _require_content(path: Path, rows: Sequence[Any]) -> None:
    if not rows:
        raise UsageError(f"{path}: file is empty; expected one seed per row")


def _from_objects(path: Path, items: Sequence[Any], numbers: Sequence[int], kind: str,
                  field: str | None) -> Iterator[str]:
    """Seeds from decoded JSON values: all strings, or all objects with a text field."""
    _require_content(path, items)
    if all(isinstance(item, str) for item in items):
        if field is not None:
            raise UsageError(f"{path}: holds plain strings, so there is no field {field!r}; "
                             "drop --field")
        return iter(items)
    columns: dict[str, None] = {}
    non_string: set[str] = set()
    for item, number in zip(items, numbers):
        if not isinstance(item, dict):
            raise UsageError(f"{path}: {kind} {number}: expected an object (or all plain strings), "
                             f"got {type(item).__name__}")
        for key, value in item.items():
            columns.setdefault(key, None)
            if value is not None and not isinstance(value, str):
                non_string.add(key)
    names = list(columns)
    field = choose_seed_field(names, [c for c in names if c not in non_string], str(path), field)
    values = [item.get(field) for item in items]
    if kind == "line":
        return checked_strings(values, str(path), field, first_row=1, rows=numbers)
    return checked_strings(values, str(path), field, first_row=1)


def _read_jsonl(path: Path, field: str | None) -> Iterator[str]:
    pairs = list(iter_json_lines(path))
    return _from_objects(path, [obj for _, obj in pairs], [n for n, _ in pairs], "line", field)


def _read_json(path: Path, field: str | None) -> Iterator[str]:
    text = read_text(path)
    if not text.strip():
        raise UsageError(f"{path}: file is empty; expected a JSON list of objects or strings")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: bad JSON ({exc.msg} at column {exc.colno}); "
                         "fix the file") from None
    except RecursionError:
        raise UsageError(f"{path}: JSON nested too deeply to read; fix the file") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of objects or strings, got "
                         f"{type(data).__name__}; for one object per line use .jsonl")
    return _from_objects(path, data, range(1, len(data) + 1), "row", field)


def _read_delimited(path: Path, field: str | None) -> Iterator[str]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    text = read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restval="")
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        rows = list(reader)
    except csv.Error as exc:
        raise UsageError(f"{path}:{reader.line_num}: bad {path.suffix[1:].upper()} ({exc}); "
                         "fix that line") from None
    if not columns:
        raise UsageError(f"{path}: file is empty; expected a header row and one seed per row")
    field = choose_seed_field(columns, columns, str(path), field)
    _require_content(path, rows)
    return iter(row.get(field) or "" for row in rows)


def _read_parquet(path: Path, field: str | None) -> Iterator[str]:
    parquet = open_parquet(path)
    columns, strings = parquet_columns(parquet)
    field = choose_seed_field(columns, strings, str(path), field)
    values = [row[field] for row in parquet_rows(parquet, [field])]
    _require_content(path, values)
    return checked_strings(values, str(path), field, first_row=1)


def _read_txt(path: Path, field: str | None) -> Iterator[str]:
    if field is not None:
        raise UsageError(f"{path}: a .txt file has one seed per line and no fields; drop --field")
    lines = [line for text in iter_text_lines(path) for line in text.splitlines()]
    if not any(line.strip() for line in lines):
        raise UsageError(f"{path}: file is empty; expected one seed per line")
    return iter(lines)


_FILE_READERS: dict[str, Callable[[Path, str | None], Iterator[str]]] = {
    ".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_delimited, ".tsv": _read_delimited,
    ".parquet": _read_parquet, ".txt": _read_txt,
}
