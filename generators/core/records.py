"""The one record shape every stage reads and writes, its validation, and stable ids.

A record is a plain dict so it round-trips through JSON untouched:
  {"id", "source", "messages": [{"role", "content"}], "tag", "score", "score_expected",
   "reason", "meta": {...}}
Only id, source and messages are required; the rest is filled in by later stages. With
--keep-reasoning an assistant message also carries the model's thinking as `reasoning_content`.
The parts that filters, dedup, decontamination and the rubric look at (the turns, the user
turns, the instruction) are read here too, so all agree on what "the instruction" of a
multi-turn self-chat dialog is.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from generators.core.errors import UsageError
from generators.core.io import iter_jsonl

Record = dict[str, Any]
ROLES = ("system", "user", "assistant")
TAGS = ("seed", "augmented")


def stable_id(*parts: object) -> str:
    """A 16-hex hash of the parts, stable across runs and machines (JSON, sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def derive_seed(base: int, *parts: object) -> int:
    """A sampling seed for one request: reproducible, different for every item, turn and side."""
    return int(stable_id("seed", base, *parts)[:8], 16) & 0x7FFFFFFF


def make_record(
    *,
    id: str,
    source: str,
    messages: list[dict[str, str]],
    tag: str | None = None,
    meta: dict[str, Any] | None = None,
    **extra: Any,
) -> Record:
    record: Record = {"id": id, "source": source, "messages": messages}
    if tag is not None:
        record["tag"] = tag
    record.update({k: v for k, v in extra.items() if v is not None})
    record["meta"] = meta or {}
    return record


def check_record(obj: Any, where: str) -> Record:
    """Validate one decoded JSON object as a record; `where` is 'file:line' for the message."""
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object (a record), got {type(obj).__name__}")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UsageError(f"{where}: record has no 'messages' list; each record needs "
                         "messages=[{role, content}, ...]")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise UsageError(f"{where}: messages[{i}] must be {{role: system|user|assistant, "
                             "content: text}}")
    tag = obj.get("tag")
    if tag is not None and tag not in TAGS:
        raise UsageError(f"{where}: unknown tag {tag!r}; known tags: {', '.join(TAGS)}")
    obj.setdefault("id", stable_id("record", messages))
    obj.setdefault("source", "file")
    obj.setdefault("meta", {})
    return obj


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield validated records from a JSONL file; an empty file is an error."""
    seen = False
    for number, obj in iter_jsonl(path):
        seen = True
        yield check_record(obj, f"{path}:{number}")
    if not seen:
        raise UsageError(f"{path}: file is empty; expected one JSON record per line")


def turns(record: Record) -> list[dict[str, str]]:
    """The messages of known roles (anything else a file carries is ignored)."""
    return [m for m in record.get("messages") or [] if m.get("role") in ROLES]


def user_turns(record: Record) -> list[str]:
    return [m["content"] for m in turns(record) if m["role"] == "user"]


def instruction(record: Record) -> str:
    """The first user turn ("" when there is none)."""
    users = user_turns(record)
    return users[0] if users else ""
