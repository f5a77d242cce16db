"""WARC files and local ClueWeb22 copies.

WARC: `response` (and `resource`) records holding HTML; the HTTP head, when present, is
stripped and its chunked/gzip transfer undone. ClueWeb22's html form is WARC whose response
records carry the HTML with no HTTP head and a `ClueWeb22-ID` header, so the same reader
serves both (records are read raw: warcio's own HTTP parsing refuses a head-less response).

ClueWeb22 on disk (licensed, never downloaded; layout as distributed by the Lemur Project):
  ROOT/html/en/en00/en0000/en0000-00.warc.gz   (+ .warc.offset)  the pages as WARC
  ROOT/txt/en/en00/en0000/en0000-00.json.gz    (+ .offset)       one JSON per line:
      {"URL": ..., "URL-hash": ..., "Language": "en", "ClueWeb22-ID": "clueweb22-en0000-00-00000",
       "Clean-Text": "primary content, paragraphs split by newlines"}
The html form keeps the headers Humpback segments at, so it is preferred when present.
"""
from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from pathlib import Path
from typing import Iterator

from ..errors import UsageError
from ..records import stable_id
from .document import Document

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)


def declared_charset(raw: bytes) -> str | None:
    """The charset a page declares in a <meta> tag (first 4 KB), if Python knows it."""
    match = _META_CHARSET.search(raw[:4096])
    return _known(match[1].decode("ascii", "ignore")) if match else None


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_html(raw: bytes, http_content_type: str | None = None) -> str:
    """Web pages lie about encodings; never fail a whole crawl on one page: UTF-8, then the
    declared charset, replacing what does not decode."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = None
    if http_content_type:
        match = _HTTP_CHARSET.search(http_content_type)
        declared = _known(match[1]) if match else None
    declared = declared or declared_charset(raw) or "cp1252"
    return raw.decode(declared, errors="replace")


def _split_http(raw: bytes) -> tuple[dict[str, str], bytes]:
    """(lower-cased HTTP headers, body) when `raw` starts with an HTTP head, else ({}, raw)."""
    if not raw.startswith(b"HTTP/"):
        return {}, raw
    end = raw.find(b"\r\n\r\n")
    skip = 4
    if end < 0:
        end, skip = raw.find(b"\n\n"), 2
    if end < 0:
        return {}, b""
    headers: dict[str, str] = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = raw[end + skip:]
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    encoding = headers.get("content-encoding", "").lower().strip() or None
    if encoding not in ("gzip", "deflate", "br"):
        encoding = None
    if chunked or encoding:
        from warcio.bufferedreaders import BufferedReader, ChunkedDataReader
        reader_cls = ChunkedDataReader if chunked else BufferedReader
        try:
            body = reader_cls(io.BytesIO(body), decomp_type=encoding).read()
        except Exception:  # a broken transfer encoding: keep the raw body rather than stop
            pass
    return headers, body


def iter_warc(path: Path, rel: str) -> Iterator:
    """Pending documents, one per HTML response/resource record of a WARC file."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot open ({exc.strerror}); check the path") from None
    with handle:
        number = 0
        try:
            for record in ArchiveIterator(handle, no_record_parse=True):
                if record.format != "warc":
                    raise ArchiveLoadFailed(f"a {record.format} record, not a WARC/1.x header")
                if record.rec_type not in ("response", "resource"):
                    continue
                headers = record.rec_headers
                raw = record.raw_stream.read()
                number += 1
                yield _pending_warc(raw, headers.get_header("WARC-Target-URI"),
                                    headers.get_header("ClueWeb22-ID") or headers.get_header("WARC-Record-ID"),
                                    headers.get_header("Content-Type"), rel, number)
        except (ArchiveLoadFailed, EOFError, OSError, zlib.error) as exc:
            raise UsageError(f"{path}: not a readable WARC file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                             "check or re-download it") from None


def _pending_warc(raw: bytes, url: str | None, own_id: str | None, warc_type: str | None,
                  rel: str, number: int):
    def build() -> Document | None:
        http, body = _split_http(raw)
        ctype = http.get("content-type") or (warc_type if warc_type and "http" not in warc_type else None)
        if ctype and "html" not in ctype.lower() and "text" not in ctype.lower():
            return None  # images, PDFs, scripts: nothing to segment
        if not body.strip():
            return None
        doc_id = (own_id or "").strip("<>") or stable_id("warc", url or rel, number)
        return Document(doc_id, decode_html(body, ctype), "html", url,
                        {"path": rel, "record": number})
    return build


def iter_clueweb(root: str | None, *, form: str | None = None, lang: str = "en") -> Iterator:
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
    return _iter_clueweb_files(base, folder, form)


def _iter_clueweb_files(base: Path, folder: Path, form: str) -> Iterator:
    from .readers import walk_files
    suffix = ".warc.gz" if form == "html" else ".json.gz"
    found = False
    for file in walk_files(folder, (suffix,)):
        found = True
        rel = f"clueweb22/{file.relative_to(base).as_posix()}"
        if form == "html":
            yield from iter_warc(file, rel)
        else:
            yield from _iter_clueweb_txt(file, rel)
    if not found:
        raise UsageError(f"{folder}: no {suffix} files; is this a ClueWeb22 copy?")


def _iter_clueweb_txt(path: Path, rel: str) -> Iterator:
    try:
        with gzip.open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield lambda raw=raw, number=number: _clueweb_txt(raw, path, rel, number)
    except (OSError, EOFError, zlib.error) as exc:
        raise UsageError(f"{path}: not a readable gzip file ({exc}); check or re-download it") from None


def _clueweb_txt(raw: bytes, path: Path, rel: str, number: int) -> Document | None:
    where = f"{path}:{number}"
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{where}: bad ClueWeb22 txt record ({exc}); check the file") from None
    if not isinstance(obj, dict) or "Clean-Text" not in obj:
        raise UsageError(f"{where}: no 'Clean-Text' field; is this a ClueWeb22 txt file?")
    text = obj.get("Clean-Text") or ""
    if not text.strip():
        return None
    doc_id = str(obj.get("ClueWeb22-ID") or stable_id("clueweb", rel, number))
    url = (obj.get("URL") or "").strip() or None
    return Document(doc_id, text, "text", url,
                    {"path": rel, "line": number, "language": obj.get("Language")})
