"""WARC files: one document per HTML `response` (or `resource`) record.

The HTTP head, when present, is stripped and its chunked/gzip transfer undone. ClueWeb22's
html form is WARC whose response records carry the HTML with no HTTP head, so the same reader
serves both (records are read raw: warcio's own HTTP parsing refuses a head-less response).

A .warc.gz is decompressed by generators.core.io.open_binary, not by warcio: warcio stops quietly
at a truncated gzip member, which would drop the rest of the file without a word.
"""
from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from generators.core.errors import UsageError
from generators.core.io import open_binary
from generators.core.records import stable_id
from generators.inputs.corpus.charset import decode_html
from generators.inputs.corpus.document import Document, Pending


def iter_warc(path: Path, rel: str) -> Iterator[Pending]:
    """Pending documents, one per HTML response/resource record of a WARC file. A damaged
    file is a UsageError naming it, raised where the damage is met."""
    # warcio imports fsspec (~70 ms): imported here so that only WARC input pays for it
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed
    with open_binary(path) as handle:
        number = 0
        try:
            for record in ArchiveIterator(_ReadOnce(handle), no_record_parse=True):
                if record.format != "warc":
                    raise ArchiveLoadFailed(f"a {record.format} record, not a WARC/1.x header")
                if record.rec_type not in ("response", "resource"):
                    continue
                headers = record.rec_headers
                raw = record.raw_stream.read()
                if record.length is None or len(raw) < record.length:
                    raise UsageError(f"{path}: a WARC record is cut short ({len(raw)} of "
                                     f"{record.length or '?'} bytes); the file is truncated: "
                                     "check or re-download it")
                number += 1
                yield _pending(raw, headers.get_header("WARC-Target-URI"),
                               headers.get_header("ClueWeb22-ID") or headers.get_header("WARC-Record-ID"),
                               headers.get_header("Content-Type"), rel, number)
        except (ArchiveLoadFailed, EOFError, OSError, zlib.error) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{path}: not a readable WARC file ({detail[:200]}); "
                             "check or re-download it") from None


class _ReadOnce:
    """What warcio reads through: read1, what the stream has at hand. warcio asks for 16 KiB
    blocks, and a full-block read() that meets damage drops the good records it held."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read1(size)  # type: ignore[attr-defined]


def _pending(raw: bytes, url: str | None, own_id: str | None, warc_type: str | None,
             rel: str, number: int) -> Pending:
    def build() -> Document | None:
        http, body = split_http(raw)
        ctype = http.get("content-type") or (warc_type if warc_type and "http" not in warc_type else None)
        if ctype and "html" not in ctype.lower() and "text" not in ctype.lower():
            return None  # images, PDFs, scripts: nothing to segment
        if not body.strip():
            return None
        doc_id = (own_id or "").strip("<>") or stable_id("warc", url or rel, number)
        return Document(doc_id, decode_html(body, ctype), "html", url,
                        {"path": rel, "record": number})
    return build


def split_http(raw: bytes) -> tuple[dict[str, str], bytes]:
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
