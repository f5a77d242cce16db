"""The parts of a record that curation looks at: the instruction (first user turn), the user
turns, and the assistant output. One place, so filters, dedup, decontamination and the rubric
agree on what "the instruction" of a multi-turn self-chat dialog is."""
from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def turns(record: Record) -> list[dict[str, str]]:
    return [m for m in record.get("messages") or [] if m.get("role") in ("system", "user", "assistant")]


def user_turns(record: Record) -> list[str]:
    return [m["content"] for m in turns(record) if m["role"] == "user"]


def instruction(record: Record) -> str:
    """The first user turn ("" when there is none)."""
    users = user_turns(record)
    return users[0] if users else ""


def output(record: Record) -> str:
    """Every assistant turn, joined by blank lines."""
    return "\n\n".join(m["content"] for m in turns(record) if m["role"] == "assistant")


def words(text: str) -> int:
    return len(text.split())
