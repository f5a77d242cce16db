"""The one shape every corpus reader yields, whatever the source format."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from generators.core.text import repair_text

Kind = Literal["html", "markdown", "text"]

_HTML_HINT = re.compile(r"<(?:!doctype|html|body|head|h[1-6]|p|div|article|section)\b", re.I)
_MD_HEADER = re.compile(r"^#{1,6}[ \t]+\S", re.M)


@dataclass
class Document:
    """A web page or text file. `kind` decides how it is segmented; `id` is stable across runs
    (the source's own id when it has one) so resumed runs and shards agree on what was done."""

    id: str
    text: str
    kind: Kind
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    repaired_text: int = 0  # lone surrogates made U+FFFD (see repaired)


# A document not yet built: readers yield these so that a shard can skip other shards'
# documents before paying for decoding or parsing them.
Pending = Callable[[], "Document | None"]


def repaired(document: Document) -> Document:
    """`document` with every lone UTF-16 surrogate (a cut emoji's escaped half in a JSON row) made
    U+FFFD and counted, so that no parser, cache or file write downstream meets one."""
    (doc_id, text, url), count = repair_text((document.id, document.text, document.url))
    if text is document.text and doc_id is document.id and url is document.url:
        return document
    return dataclasses.replace(document, id=doc_id, text=text, url=url, repaired_text=count)


def guess_kind(text: str) -> Kind:
    """html if it looks like markup, markdown if it has `#` headers, else plain text.

    Used only where the source does not say (a `text` field, an explicit --field)."""
    head = text[:4000]
    if _HTML_HINT.search(head):
        return "html"
    if _MD_HEADER.search(text):
        return "markdown"
    return "text"
