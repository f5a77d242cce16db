"""A reasoning model's thinking, apart from its answer.

Thinking comes in three forms: inline, as `<think>...</think>` at the start of the text (vLLM
without a reasoning parser, local models such as DeepSeek-R1 distills or Qwen3), or only its
closing tag when the chat template already opened it in the prompt; as a field beside the
content (`reasoning_content` / `reasoning` from OpenAI-compatible servers); or as Anthropic
`thinking` blocks. The backends read the fields; `separate`, called once by the engine on every
answer, splits the inline form, so a stage sees `text` (the visible answer) and `reasoning` (the
thinking) and never parses tags itself.

Thinking that never closed (`<think>` with no `</think>`, or a field with no answer after it
because max_tokens ran out) leaves no answer: `reasoning_truncated` says so, and the stages
reject such a turn as `truncated_reasoning`.
"""
from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

from generators.backends.base import ChatResult

OPEN, CLOSE = "<think>", "</think>"
_OPENING = re.compile(r"\A\s*<think>", re.IGNORECASE)
_CLOSING = re.compile(r"</think>", re.IGNORECASE)


class Split(NamedTuple):
    """An answer split: the visible text, the thinking (None: there was none), and whether the
    thinking closed (True when there was none)."""

    visible: str
    reasoning: str | None
    closed: bool


def split(text: str) -> Split:
    """Split inline thinking off the start of `text`: `<think>...</think>` (leading space
    allowed), or text up to a lone `</think>` (the template opened the block in the prompt). A
    `<think>` that never closes makes all the rest thinking, with no visible answer."""
    opening = _OPENING.match(text)
    start = opening.end() if opening else 0
    closing = _CLOSING.search(text, start)
    if closing is None:
        if opening is None:
            return Split(text, None, True)
        return Split("", text[start:].strip(), False)
    if opening is None and "<think>" in text[:closing.start()].lower():
        return Split(text, None, True)  # a block in the middle of the answer: not thinking ahead of it
    return Split(text[closing.end():].lstrip(), text[start:closing.start()].strip(), True)


def separate(result: ChatResult) -> ChatResult:
    """`result` with inline thinking moved from `text` to `reasoning` (once: an answer already
    separated, or one whose backend read the thinking from a field, passes through), its
    reasoning tokens estimated when the server did not count them, and `reasoning_truncated` set
    when the thinking left no answer."""
    if result.reasoning is not None:
        truncated = result.reasoning_truncated or (not result.text.strip() and result.finish == "length")
        return _with(result, result.text, result.reasoning, truncated)
    parts = split(result.text)
    if parts.reasoning is None:
        return result
    return _with(result, parts.visible, parts.reasoning, not parts.closed)


def estimate_tokens(result: ChatResult, reasoning: str, visible: str) -> int:
    """The thinking's share of completion_tokens, by characters, for servers that do not say
    (inline thinking, Anthropic): an estimate, documented as one in docs/backends.md."""
    if not result.completion_tokens or not reasoning:
        return 0
    return round(result.completion_tokens * len(reasoning) / (len(reasoning) + len(visible)))


def cut(result: ChatResult) -> bool:
    """The answer is not a whole one: cut by max_tokens, or its thinking never closed."""
    return result.finish == "length" or result.reasoning_truncated


def _with(result: ChatResult, visible: str, reasoning: str, truncated: bool) -> ChatResult:
    reasoning = reasoning or None  # an empty block (Qwen3 with thinking off) is no thinking
    tokens = result.reasoning_tokens or estimate_tokens(result, reasoning or "", visible)
    if (visible, reasoning, truncated, tokens) == (result.text, result.reasoning, result.reasoning_truncated,
                                                   result.reasoning_tokens):
        return result
    return dataclasses.replace(result, text=visible, reasoning=reasoning, reasoning_truncated=truncated,
                               reasoning_tokens=tokens)
