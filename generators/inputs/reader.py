"""The one reader under seeds (generators/inputs/seeds) and the corpus (generators/inputs/corpus):
the bytes, lines and rows of JSON Lines, Parquet and Hugging Face data, and the choice of the
field that holds the text.

Each input kind fails here the same way for both, with one line that names the file (and the
line or row) and says what to do, instead of a traceback halfway through a run. What differs
stays with the caller: seeds read a whole file and pick one field for all of it; the corpus
streams rows lazily (a shard skips other shards' rows before decoding them) and prefers a page's
html to its text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

from generators.core.errors import UsageError, first_line
from generators.core.io import bounded_lines, open_binary, parse_json_line, too_long

SHOWN_COLUMNS = 12  # a wider table's columns are cut with ", ..." in messages


# ---------------------------------------------------------------- bytes and text

def read_bytes(path: Path) -> bytes:
    """A whole file, a read failure as a UsageError naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror}); check the path") from None


def read_text(path: Path) -> str:
    """A whole file as UTF-8 text (a leading byte-order mark dropped); bad bytes are reported as
    file:line."""
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not valid UTF-8 (byte {exc.start}); "
                         "re-encode the file as UTF-8") from None
    return text.removeprefix("\ufeff")


# ---------------------------------------------------------------- JSON Lines

def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for each non-blank line of a plain, .gz or .zst file, lazily.
    A truncated or corrupt archive is a UsageError naming the file (generators.core.io.open_binary),
    raised where the damage is met, after the lines before it; so is a line over --max-line-bytes,
    which is never read whole."""
    with open_binary(path) as handle:
        try:
            for number, raw in enumerate(bounded_lines(handle), start=1):
                if raw is None:
                    raise too_long(f"{path}:{number}")
                if raw.strip():
                    yield number, raw
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror or exc}); check the file") from None


def iter_text_lines(path: Path) -> Iterator[str]:
    """Each line of a UTF-8 text file as text (a leading byte-order mark dropped, the newline
    kept), read one line at a time within --max-line-bytes; bad bytes are reported as file:line."""
    with open_binary(path) as handle:
        for number, raw in enumerate(bounded_lines(handle), start=1):
            if raw is None:
                raise too_long(f"{path}:{number}")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"{path}:{number}: not valid UTF-8 (byte {exc.start}); "
                                 "re-encode the file as UTF-8") from None
            yield text.removeprefix("\ufeff") if number == 1 else text


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) for each non-blank line; a bad line names file:line."""
    for number, raw in iter_lines(path):
        yield number, parse_json_line(raw, f"{path}:{number}")


# ---------------------------------------------------------------- Parquet

def open_parquet(path: Path) -> Any:
    """A `pyarrow.parquet.ParquetFile`, read lazily by row groups; an empty or broken file is
    one UsageError."""
    import pyarrow.parquet as pq  # heavy; only a Parquet input pays for it

    if path.stat().st_size == 0:
        raise UsageError(f"{path}: file is empty; expected a Parquet table")
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UsageError(f"{path}: not a readable Parquet file ({first_line(exc)}); "
                         "check the file") from None


def parquet_columns(parquet: Any) -> tuple[list[str], list[str]]:
    """(every column, the columns typed as text) of an open Parquet file."""
    import pyarrow as pa

    schema = parquet.schema_arrow
    strings = [f.name for f in schema
               if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
               or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(f.type))]
    return list(schema.names), strings


def parquet_rows(parquet: Any, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The rows of an open Parquet file as dicts of `columns`, lazily, a few hundred at a time."""
    for batch in parquet.iter_batches(batch_size=256, columns=list(columns)):
        yield from batch.to_pylist()


# ---------------------------------------------------------------- Hugging Face data sets

def dataset_columns(ds: Any) -> tuple[list[str], list[str]]:
    """(every column, the columns typed as text) of a loaded `datasets.Dataset`."""
    columns = list(ds.column_names)
    strings = [c for c in columns
               if getattr(ds.features[c], "dtype", None) in ("string", "large_string", "string_view")]
    return columns, strings


# ---------------------------------------------------------------- the field that holds the text

def shown(columns: Sequence[str]) -> str:
    """Column names for a message: at most SHOWN_COLUMNS, '(none)' when there are none."""
    names = list(columns)
    if not names:
        return "(none)"
    return ", ".join(names[:SHOWN_COLUMNS]) + (", ..." if len(names) > SHOWN_COLUMNS else "")


def choose_field(columns: Sequence[str], *, field: str | None, preferred: Sequence[str],
                 strings: Sequence[str] | None, where: str, unknown: str) -> str:
    """The field named by --field (it must exist), else the only text column (when `strings`
    is given), else the first `preferred` name present; otherwise ask for --field, saying
    `unknown` ("cannot tell which field holds the seeds")."""
    if field is not None:
        if field not in columns:
            raise UsageError(f"{where}: no field {field!r}; available: {shown(columns)}; "
                             "pass --field NAME")
        return field
    if strings is not None and len(strings) == 1:
        return strings[0]
    for name in preferred:
        if name in columns:
            return name
    raise UsageError(f"{where}: {unknown} (columns: {shown(columns)}); pass --field NAME")


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
