"""A local ClueWeb22 copy, in its html (WARC) or txt (JSON lines) form.

ClueWeb22 on disk (licensed, never downloaded; layout as distributed by the Lemur Project):
  ROOT/html/en/en00/en0000/en0000-00.warc.gz   (+ .warc.offset)  the pages as WARC
  ROOT/txt/en/en00/en0000/en0000-00.json.gz    (+ .offset)       one JSON per line:
      {"URL": ..., "URL-hash": ..., "Language": "en", "ClueWeb22-ID": "clueweb22-en0000-00-00000",
       "Clean-Text": "primary content, paragraphs split by newlines"}
The html form keeps the headers Humpback segments at, so it is preferred when present.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from generators.core.errors import UsageError
from generators.core.records import stable_id
from generators.inputs.corpus.document import Document, Pending
from generators.inputs.corpus.files import walk_files
from generators.inputs.corpus.warc import iter_warc
from generators.inputs.reader import iter_lines


def iter_clueweb(root: str | None, *, form: str | None = None, lang: str = "en") -> Iterator[Pending]:
    """Pending documents of a local ClueWeb22 copy, files in sorted order (stable shards).
    The root is checked at once, so a wrong path fails before any model is loaded."""
    if not root:
        raise UsageError("clueweb: no ClueWeb22 copy given; pass --corpus-dir DIR or set "
                         "CLUEWEB22_ROOT (ClueWeb22 is licensed and is never downloaded)")
    base = Path(root)
    if not base.is_dir():
        raise UsageError(f"{root}: no such folder; pass --corpus-dir (or CLUEWEB22_ROOT) "
                         "pointing at the ClueWeb22 root that holds html/ and txt/")
    if form is None:
        form = "html" if (base / "html").is_dir() else "txt"
    if form not in ("html", "txt"):
        raise UsageError(f"clueweb:{form}: unknown form; use clueweb:html or clueweb:txt")
    folder = base / form / lang
    if not folder.is_dir():
        have = sorted(p.name for p in (base / form).iterdir()) if (base / form).is_dir() else []
        hint = f"languages here: {', '.join(have)}" if have else f"no {form}/ folder here"
        raise UsageError(f"{folder}: missing ({hint}); point --corpus-dir at the ClueWeb22 root "
                         "(the folder holding html/ and txt/)")
    return _iter_files(base, folder, form)


def _iter_files(base: Path, folder: Path, form: str) -> Iterator[Pending]:
    suffix = ".warc.gz" if form == "html" else ".json.gz"
    found = False
    for file in walk_files(folder, (suffix,)):
        found = True
        rel = f"clueweb22/{file.relative_to(base).as_posix()}"
        if form == "html":
            yield from iter_warc(file, rel)
        else:
            yield from _iter_txt(file, rel)
    if not found:
        raise UsageError(f"{folder}: no {suffix} files; is this a ClueWeb22 copy?")


def _iter_txt(path: Path, rel: str) -> Iterator[Pending]:
    for number, raw in iter_lines(path):
        yield lambda raw=raw, number=number: _txt_record(raw, path, rel, number)


def _txt_record(raw: bytes, path: Path, rel: str, number: int) -> Document | None:
    where = f"{path}:{number}"
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"{where}: bad ClueWeb22 txt record ({type(exc).__name__}: {exc}); "
                         "check the file") from None
    if not isinstance(obj, dict) or "Clean-Text" not in obj:
        raise UsageError(f"{where}: no 'Clean-Text' field; is this a ClueWeb22 txt file?")
    text = obj.get("Clean-Text") or ""
    if not text.strip():
        return None
    doc_id = str(obj.get("ClueWeb22-ID") or stable_id("clueweb", rel, number))
    url = (obj.get("URL") or "").strip() or None
    return Document(doc_id, text, "text", url,
                    {"path": rel, "line": number, "language": obj.get("Language")})
