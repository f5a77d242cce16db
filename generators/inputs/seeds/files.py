"""Seeds from a local file (.jsonl .json .csv .tsv .parquet .txt), and the field choice that hub
data sets share: every reader checks its file up front so a bad one fails with one line that
names the file (and the line or row) instead of a traceback halfway through a run."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from generators.core.errors import UsageError
from generators.core.io import iter_jsonl

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


# ---------------------------------------------------------------- field choice (files and hub)

def choose_field(columns: Sequence[str], strings: Sequence[str], where: str) -> str:
    """The only text column, else the first usual name, else ask for --field."""
    if len(strings) == 1:
        return strings[0]
    for name in PREFERRED_FIELDS:
        if name in columns:
            return name
    shown = ", ".join(columns) if columns else "(none)"
    raise UsageError(f"{where}: cannot tell which field holds the seeds (columns: {shown}); "
                     "pass --field NAME")


def checked_strings(values: Sequence[Any], where: str, field: str, *, first_row: int,
                    rows: Sequence[int] | None = None) -> Iterator[str]:
    """Check every value is text (None counts as blank) and yield it; `rows` names each value's
    row or line number for messages."""
    texts: list[str] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        if not isinstance(value, str):
            row = rows[i] if rows is not None else first_row + i
            kind = "line" if rows is not None else "row"
            raise UsageError(f"{where}: {kind} {row}: field {field!r} holds {type(value).__name__}, "
                             "not text; fix the data or pick another --field")
        texts.append(value)
    return iter(texts)


# ---------------------------------------------------------------- readers

def _read_text(path: Path) -> str:
    """Whole file as text; non-UTF-8 bytes reported as file:line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not valid UTF-8 (byte {exc.start}); "
                         "re-encode the file as UTF-8") from None
    return text.removeprefix("\ufeff")


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
    if field is None:
        field = choose_field(names, [c for c in names if c not in non_string], str(path))
    elif field not in columns:
        raise UsageError(f"{path}: no field {field!r}; available: {', '.join(names)}; "
                         "pass --field NAME")
    values = [item.get(field) for item in items]
    if kind == "line":
        return checked_strings(values, str(path), field, first_row=1, rows=numbers)
    return checked_strings(values, str(path), field, first_row=1)


def _read_jsonl(path: Path, field: str | None) -> Iterator[str]:
    pairs = list(iter_jsonl(path))
    return _from_objects(path, [obj for _, obj in pairs], [n for n, _ in pairs], "line", field)


def _read_json(path: Path, field: str | None) -> Iterator[str]:
    text = _read_text(path)
    if not text.strip():
        raise UsageError(f"{path}: file is empty; expected a JSON list of objects or strings")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: bad JSON ({exc.msg} at column {exc.colno}); "
                         "fix the file") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of objects or strings, got "
                         f"{type(data).__name__}; for one object per line use .jsonl")
    return _from_objects(path, data, range(1, len(data) + 1), "row", field)


def _read_delimited(path: Path, field: str | None) -> Iterator[str]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    text = _read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restval="")
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        rows = list(reader)
    except csv.Error as exc:
        raise UsageError(f"{path}:{reader.line_num}: bad {path.suffix[1:].upper()} ({exc}); "
                         "fix that line") from None
    if not columns:
        raise UsageError(f"{path}: file is empty; expected a header row and one seed per row")
    if field is None:
        field = choose_field(columns, columns, str(path))
    elif field not in columns:
        raise UsageError(f"{path}: no field {field!r}; available: {', '.join(columns)}; "
                         "pass --field NAME")
    _require_content(path, rows)
    return iter(row.get(field) or "" for row in rows)


def _read_parquet(path: Path, field: str | None) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise UsageError(f"{path}: file is empty; expected a parquet table")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{path}: not a readable parquet file ({exc}); check the file") from None
    columns = list(schema.names)
    if field is None:
        strings = [f.name for f in schema
                   if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                   or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(f.type))]
        field = choose_field(columns, strings, str(path))
    elif field not in columns:
        raise UsageError(f"{path}: no field {field!r}; available: {', '.join(columns)}; "
                         "pass --field NAME")
    values = pq.read_table(path, columns=[field]).column(field).to_pylist()
    _require_content(path, values)
    return checked_strings(values, str(path), field, first_row=1)


def _read_txt(path: Path, field: str | None) -> Iterator[str]:
    if field is not None:
        raise UsageError(f"{path}: a .txt file has one seed per line and no fields; drop --field")
    lines = _read_text(path).splitlines()
    if not any(line.strip() for line in lines):
        raise UsageError(f"{path}: file is empty; expected one seed per line")
    return iter(lines)


_FILE_READERS: dict[str, Callable[[Path, str | None], Iterator[str]]] = {
    ".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_delimited, ".tsv": _read_delimited,
    ".parquet": _read_parquet, ".txt": _read_txt,
}
