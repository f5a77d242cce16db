"""Read documents from any supported source as one lazy stream (DESIGN.md section 5, Humpback).

Sources, chosen by the `spec` string:
  clueweb[:html|txt[:LANG]]   a local ClueWeb22 copy (corpus_dir or $CLUEWEB22_ROOT)
  hf:NAME[:CONFIG[:SPLIT]]    a Hugging Face data set, streamed
  PATH                        a file or a folder (walked recursively, sorted) of
                              .warc/.warc.gz, .html/.htm, .jsonl/.jsonl.gz, .parquet, .txt, .md

Every reader is a generator of *pending* documents (a closure that builds the Document), so
that `shard` can skip other shards' documents before decoding or parsing them, and memory stays
bounded by one document whatever the corpus size. Document indexes are positions in the source,
so shard i/n of a source is the same set of documents on every machine.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from ..shard import parse_shard  # noqa: F401 - part of this module's API
from ..errors import UsageError
from ..records import stable_id
from .document import Document, guess_kind

Pending = Callable[[], "Document | None"]

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
WARC_SUFFIXES = (".warc", ".warc.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".text")
MARKDOWN_SUFFIXES = (".md", ".markdown")
ALL_SUFFIXES = (HTML_SUFFIXES + WARC_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
                + TEXT_SUFFIXES + MARKDOWN_SUFFIXES)
ID_FIELDS = ("id", "doc_id", "ClueWeb22-ID", "_id")
URL_FIELDS = ("url", "URL", "link")


def iter_documents(
    spec: str,
    *,
    corpus_dir: str | None = None,
    field: str | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[Document]:
    """Yield the documents of `spec`, lazily; `shard=(i, n)` keeps document index % n == i,
    `limit` stops after that many documents of this shard. Empty documents are skipped but
    still take their index, so shards never depend on content."""
    if shard is not None:
        i, n = shard
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"shard {i}/{n}: expected 0 <= I < N")
    if limit is not None and limit < 0:
        raise UsageError(f"--limit {limit}: must be 0 or more")
    pending = _open(spec, corpus_dir=corpus_dir, field=field)
    return _select(pending, limit=limit, shard=shard)


def _select(pending: Iterator[Pending], *, limit: int | None,
            shard: tuple[int, int] | None) -> Iterator[Document]:
    if limit == 0:
        return
    count = 0
    for index, build in enumerate(pending):
        if shard is not None and index % shard[1] != shard[0]:
            continue
        document = build()
        if document is None:
            continue
        yield document
        count += 1
        if limit is not None and count >= limit:
            return


def _open(spec: str, *, corpus_dir: str | None, field: str | None) -> Iterator[Pending]:
    if not spec or not spec.strip():
        raise UsageError("no corpus given; pass a path, 'clueweb' or 'hf:NAME:CONFIG'")
    head = spec.split(":", 1)[0]
    if head == "clueweb":
        from .warc import iter_clueweb
        parts = spec.split(":")
        if len(parts) > 3:
            raise UsageError(f"{spec}: expected clueweb[:html|txt[:LANG]]")
        form = parts[1] if len(parts) > 1 and parts[1] else None
        lang = parts[2] if len(parts) > 2 and parts[2] else "en"
        return iter_clueweb(corpus_dir or os.environ.get("CLUEWEB22_ROOT"), form=form, lang=lang)
    if head == "hf":
        from .hf import iter_hf
        parts = spec.split(":")
        if len(parts) < 2 or not parts[1] or len(parts) > 4:
            raise UsageError(f"{spec}: expected hf:NAME[:CONFIG[:SPLIT]], e.g. hf:wikitext:wikitext-2-raw-v1")
        config = parts[2] if len(parts) > 2 and parts[2] else None
        split = parts[3] if len(parts) > 3 and parts[3] else "train"
        return iter_hf(parts[1], config, split, field)
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"{spec}: no such file or folder; give a path, 'clueweb' "
                         "(with --corpus-dir) or 'hf:NAME:CONFIG'")
    return iter_path(path, field=field)


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


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under root whose name ends with a suffix, in sorted order, lazily (hidden skipped)."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"{root}: cannot list folder ({exc.strerror}); check permissions") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from walk_files(Path(entry.path), suffixes)
        elif entry.name.lower().endswith(suffixes):
            yield Path(entry.path)


def _iter_file(path: Path, rel: str, field: str | None) -> Iterator[Pending]:
    name = path.name.lower()
    if name.endswith(WARC_SUFFIXES):
        from .warc import iter_warc
        return iter_warc(path, rel)
    if name.endswith(JSONL_SUFFIXES):
        return _iter_jsonl(path, rel, field)
    if name.endswith(PARQUET_SUFFIXES):
        return _iter_parquet(path, rel, field)
    if name.endswith(HTML_SUFFIXES):
        return iter([lambda: _html_file(path, rel)])
    kind = "markdown" if name.endswith(MARKDOWN_SUFFIXES) else "text"
    return iter([lambda: _text_file(path, rel, kind)])


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror}); check the path") from None


def _text_file(path: Path, rel: str, kind: str) -> Document | None:
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    if not text.strip():
        return None
    return Document(stable_id("file", rel), text, kind, None, {"path": rel})  # type: ignore[arg-type]


def _html_file(path: Path, rel: str) -> Document | None:
    from .warc import declared_charset
    raw = _read_bytes(path)
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


def pick_text(obj: Any, field: str | None, where: str) -> tuple[str, str] | None:
    """(text, kind) from a row: `field` if given, else `html`, else `text`; None when empty."""
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if field is not None:
        if field not in obj:
            raise UsageError(f"{where}: no field {field!r} (fields: {_names(obj)}); "
                             "pass --field with one of them")
        name = field
    elif "html" in obj:
        name = "html"
    elif "text" in obj:
        name = "text"
    else:
        raise UsageError(f"{where}: no 'html' or 'text' field (fields: {_names(obj)}); "
                         "pass --field NAME")
    value = obj[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{where}: field {name!r} is {type(value).__name__}, expected text")
    if not value.strip():
        return None
    kind = "html" if "html" in name.lower() else guess_kind(value)
    return value, kind


def _names(obj: dict[str, Any]) -> str:
    names = list(obj)[:12]
    return ", ".join(names) + (", ..." if len(obj) > 12 else "") if names else "none"


def _own(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def row_document(obj: Any, field: str | None, where: str, fallback_id: str,
                 meta: dict[str, Any]) -> Document | None:
    """A Document from one JSONL/Parquet/HF row; the row's own id when it has one."""
    picked = pick_text(obj, field, where)
    if picked is None:
        return None
    text, kind = picked
    return Document(_own(obj, ID_FIELDS) or fallback_id, text, kind,  # type: ignore[arg-type]
                    _own(obj, URL_FIELDS), meta)


def _iter_jsonl(path: Path, rel: str, field: str | None) -> Iterator[Pending]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        handle = opener(path, "rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot open ({exc.strerror}); check the path") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            yield lambda raw=raw, number=number: _jsonl_row(raw, number, path, rel, field)


def _jsonl_row(raw: bytes, number: int, path: Path, rel: str, field: str | None) -> Document | None:
    where = f"{path}:{number}"
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{where}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: bad JSON ({exc.msg} at column {exc.colno}); fix or remove that line") from None
    return row_document(obj, field, where, stable_id("file", rel, number),
                        {"path": rel, "line": number})


def _iter_parquet(path: Path, rel: str, field: str | None) -> Iterator[Pending]:
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UsageError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    names = parquet.schema_arrow.names
    text_col = field or next((n for n in ("html", "text") if n in names), None)
    if text_col is None or text_col not in names:
        wanted = f"field {field!r}" if field else "'html' or 'text' column"
        raise UsageError(f"{path}: no {wanted} (columns: {', '.join(names[:12])}); pass --field NAME")
    columns = [text_col] + [n for n in ID_FIELDS + URL_FIELDS if n in names and n != text_col]
    row = 0
    for batch in parquet.iter_batches(batch_size=256, columns=columns):
        for obj in batch.to_pylist():
            row += 1
            yield lambda obj=obj, row=row: row_document(
                obj, text_col, f"{path}:row {row}", stable_id("file", rel, row),
                {"path": rel, "row": row})
