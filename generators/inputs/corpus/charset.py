"""Turn a web page's bytes into text. Pages lie about their encoding, and one bad page must
never stop a whole crawl, so decoding falls back step by step and never fails."""
from __future__ import annotations

import codecs
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)


def declared_charset(raw: bytes) -> str | None:
    """The charset a page declares in a <meta> tag (first 4 KB), if Python knows it."""
    match = _META_CHARSET.search(raw[:4096])
    return _known(match[1].decode("ascii", "ignore")) if match else None


def decode_html(raw: bytes, http_content_type: str | None = None) -> str:
    """UTF-8, else the charset the HTTP head or the page declares (else cp1252), replacing
    what does not decode."""
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


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
