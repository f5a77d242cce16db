"""Documents from local files: one file, or every known file under a folder (sorted walk).

.warc/.warc.gz, .html/.htm, .jsonl (plain, .gz, .zst), .parquet, .txt, .md. Document indexes
are positions in the walk, so shard i/n of a folder is the same set of documents everywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from generators.core.errors import UsageError
from generators.core.io import parse_json_line
from generators.core.records import stable_id
from generators.inputs.corpus.charset import declared_charset
from generators.inputs.corpus.document import Document, Pending
from generators.inputs.corpus.files import (
    ALL_SUFFIXES,
    HTML_SUFFIXES,
    JSONL_SUFFIXES,
    MARKDOWN_SUFFIXES,
    PARQUET_SUFFIXES,
    WARC_SUFFIXES,
    walk_files,
)
from generators.inputs.corpus.rows import ID_FIELDS, NO_TEXT_FIELD, TEXT_FIELDS, URL_FIELDS, row_document
from generators.inputs.corpus.warc import iter_warc
from generators.inputs.reader import (choose_field, iter_lines, open_parquet, parquet_columns, parquet_rows,
                                      read_bytes, read_text)


def iter_path(path: Path, *, field: str | None = None) -> Iterator[Pending]:
    """Pending documents of a file, or of every known file under a folder (sorted walk)."""
    if path.is_dir():
        return _iter_folder(path, field)
    if not path.name.lower().endswith(ALL_SUFFIXES):
        raise UsageError(f"{path}: unknown file type; expected one of {', '.join(ALL_SUFFIXES)}")
    return _iter_file(path, path.name, field)


def _iter_folder(root: Path, field: str | None) -> Iterator[Pending]:
    found = False
    for file in walk_files(root, ALL_SUFFIXES):
        found = True
        rel = f"{root.name}/{file.relative_to(root).as_posix()}"
        yield from _iter_file(file, rel, field)
    if not found:
        raise UsageError(f"{root}: no readable files inside; expected {', '.join(ALL_SUFFIXES)}")


def _iter_file(path: Path, rel: str, field: str | None) -> Iterator[Pending]:
    name = path.name.lower()
    if name.endswith(WARC_SUFFIXES):
        return iter_warc(path, rel)
    if name.endswith(JSONL_SUFFIXES):
        return _iter_jsonl(path, rel, field)
    if name.endswith(PARQUET_SUFFIXES):
        return _iter_parquet(path, rel, field)
    if name.endswith(HTML_SUFFIXES):
        return iter([lambda: _html_file(path, rel)])
    kind = "markdown" if name.endswith(MARKDOWN_SUFFIXES) else "text"
    return iter([lambda: _text_file(path, rel, kind)])


def _text_file(path: Path, rel: str, kind: str) -> Document | None:
    text = read_text(path)
    if not text.strip():
        return None
    return Document(stable_id("file", rel), text, kind, None, {"path": rel})  # type: ignore[arg-type]


def _html_file(path: Path, rel: str) -> Document | None:
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        charset = declared_charset(raw)
        if charset is None:
            raise UsageError(f"{path}: not valid UTF-8 (byte {exc.start}) and no <meta charset>; "
                             "re-encode the file as UTF-8") from None
        text = raw.decode(charset, errors="replace")
    if not text.strip():
        return None
    return Document(stable_id("file", rel), text, "html", None, {"path": rel})


def _iter_jsonl(path: Path, rel: str, field: str | None) -> Iterator[Pending]:
    for number, raw in iter_lines(path):
        yield lambda raw=raw, number=number: _jsonl_row(raw, number, path, rel, field)


def _jsonl_row(raw: bytes, number: int, path: Path, rel: str, field: str | None) -> Document | None:
    where = f"{path}:{number}"
    return row_document(parse_json_line(raw, where), field, where, stable_id("file", rel, number),
                        {"path": rel, "line": number})


def _iter_parquet(path: Path, rel: str, field: str | None) -> Iterator[Pending]:
    parquet = open_parquet(path)
    names, _ = parquet_columns(parquet)
    text_col = choose_field(names, field=field, preferred=TEXT_FIELDS, strings=None, where=str(path),
                            unknown=NO_TEXT_FIELD)
    columns = [text_col] + [n for n in ID_FIELDS + URL_FIELDS if n in names and n != text_col]
    for row, obj in enumerate(parquet_rows(parquet, columns), start=1):
        yield lambda obj=obj, row=row: row_document(
            obj, text_col, f"{path}:row {row}", stable_id("file", rel, row),
            {"path": rel, "row": row})
