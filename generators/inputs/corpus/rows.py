"""One row of tabular input (a JSONL line, a Parquet row, a Hugging Face row) as a Document.

Shared by the local-file and Hugging Face readers, so a row means the same thing whatever
it came from: the same text field is chosen and the row's own id and URL are kept.
"""
from __future__ import annotations

from typing import Any

from generators.core.errors import UsageError
from generators.inputs.corpus.document import Document, guess_kind
from generators.inputs.reader import choose_field

TEXT_FIELDS = ("html", "text")  # without --field, a page's html is preferred to its text
NO_TEXT_FIELD = "no 'html' or 'text' field"
ID_FIELDS = ("id", "doc_id", "ClueWeb22-ID", "_id")
URL_FIELDS = ("url", "URL", "link")


def pick_text(obj: Any, field: str | None, where: str) -> tuple[str, str] | None:
    """(text, kind) from a row: `field` if given, else `html`, else `text` (TEXT_FIELDS); None
    when empty."""
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    name = choose_field(list(obj), field=field, preferred=TEXT_FIELDS, strings=None, where=where,
                        unknown=NO_TEXT_FIELD)
    value = obj[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{where}: field {name!r} is {type(value).__name__}, expected text")
    if not value.strip():
        return None
    kind = "html" if "html" in name.lower() else guess_kind(value)
    return value, kind


def row_document(obj: Any, field: str | None, where: str, fallback_id: str,
                 meta: dict[str, Any]) -> Document | None:
    """A Document from one JSONL/Parquet/HF row; the row's own id when it has one."""
    picked = pick_text(obj, field, where)
    if picked is None:
        return None
    text, kind = picked
    return Document(_own(obj, ID_FIELDS) or fallback_id, text, kind,  # type: ignore[arg-type]
                    _own(obj, URL_FIELDS), meta)


def _own(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None
