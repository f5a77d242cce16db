"""Records → chat conversations to train on, per direction, with the source tag as system text.

Forward: the record's own messages; its tag (seed | augmented) becomes a system-prompt sentence
(Humpback's wording from prompts/tag_*.j2 unless overridden), appended to any system message
the record already has. Tags are plain text, never new tokens, so vLLM serves them unchanged.
Backward (M_yx, output → instruction): user = prompts/backward.j2 with the first answer,
assistant = the first request. No tag text: the backward model is not conditioned on source.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import prompts
from generators.core.errors import UsageError
from generators.core.io import iter_jsonl
from generators.core.records import Record, check_record

Messages = list[dict[str, str]]


@dataclass
class Conversation:
    messages: Messages
    tag: str | None
    record_id: str
    where: str


def default_tag_texts() -> dict[str, str]:
    """Humpback's two sentences, from the prompt files (one source of truth for the wording)."""
    return {"seed": prompts.render("tag_seed"), "augmented": prompts.render("tag_augmented")}


def read_data(paths: Iterable[str]) -> Iterator[tuple[Record, str]]:
    """Yield (validated record, 'file:line') from every path; any bad line stops the run."""
    for path in paths:
        seen = False
        for number, obj in iter_jsonl(path):
            seen = True
            where = f"{path}:{number}"
            yield check_record(obj, where), where
        if not seen:
            raise UsageError(f"{path}: file is empty; expected one JSON record per line")


def to_conversation(record: Record, where: str, direction: str,
                    tag_texts: dict[str, str]) -> Conversation:
    """One training conversation from one record, or a one-line UsageError saying why not."""
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    tag = record.get("tag")
    if direction == "backward":
        return Conversation(_backward(messages, where), tag, record["id"], where)
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()  # trailing prompts teach nothing
    if not any(m["role"] == "assistant" for m in messages):
        raise UsageError(f"{where}: record has no assistant turn, so nothing to learn; "
                         "remove it or add the answer")
    if tag is not None:
        sentence = tag_texts[tag]
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{sentence}"}
        else:
            messages.insert(0, {"role": "system", "content": sentence})
    return Conversation(messages, tag, record["id"], where)


def _backward(messages: Messages, where: str) -> Messages:
    for i in range(len(messages) - 1):
        if messages[i]["role"] == "user" and messages[i + 1]["role"] == "assistant":
            instruction, output = messages[i]["content"], messages[i + 1]["content"]
            return [{"role": "user", "content": prompts.render("backward", output=output)},
                    {"role": "assistant", "content": instruction}]
    raise UsageError(f"{where}: record has no user turn followed by an assistant turn, so no "
                     "(output → instruction) pair for --direction backward; remove it")


def conversations(records: Iterable[tuple[Record, str]], direction: str,
                  tag_texts: dict[str, str]) -> list[Conversation]:
    return [to_conversation(r, w, direction, tag_texts) for r, w in records]


def seed_records_with_where(records: list[Record], source: str) -> list[tuple[Record, str]]:
    return [(r, f"{source}#{i + 1}") for i, r in enumerate(records)]

