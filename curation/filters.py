"""Cheap per-record checks run before rating, so no request is spent on junk.

Reasons, in the order checked:
  no_instruction     no user turn with text
  no_output          no assistant turn with text
  too_short          instruction has fewer than min_words words
  too_long           instruction has more than max_words words
  not_english        --lang en and the text does not look English (see looks_english)
  refusal            an assistant turn refuses or hedges as a model
  identity           a teacher's identity (OpenAI, ChatGPT, GPT-4, ...) on either side
  blocked            a --block pattern matched on either side
The refusal and identity patterns are the self-chat ones (generators.core.blocks), with the
same sides: a person may say "I'm sorry, but I can't", an assistant may not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from generators.core.blocks import BOTH_SIDES, DEFAULT_BLOCK_PATTERNS, EXTRA_REASON, compile_block_patterns
from generators.core.errors import UsageError
from generators.core.records import Record, instruction, turns
from generators.core.text import FUNCTION_WORDS, letter_runs, normalize_quotes




@dataclass
class RecordFilterConfig:
    min_words: int = 2
    max_words: int = 1024
    lang: str = "en"                 # "en" or "any"
    min_ascii_ratio: float = 0.85    # share of letters that are ASCII
    min_stopword_ratio: float = 0.08  # share of words that are English stopwords (texts of 12+ words)
    block_patterns: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_BLOCK_PATTERNS.items()})

    @classmethod
    def with_overrides(cls, *, min_words: int | None = None, max_words: int | None = None,
                       lang: str | None = None, extra_block: Sequence[str] = (),
                       drop_defaults: bool = False) -> "RecordFilterConfig":
        config = cls()
        if min_words is not None:
            config.min_words = min_words
        if max_words is not None:
            config.max_words = max_words
        if lang is not None:
            config.lang = lang
        patterns = {} if drop_defaults else config.block_patterns
        if extra_block:
            patterns = {**patterns, EXTRA_REASON: [*patterns.get(EXTRA_REASON, []), *extra_block]}
        config.block_patterns = patterns
        return config

    def describe(self) -> dict[str, Any]:
        return {"min_words": self.min_words, "max_words": self.max_words, "lang": self.lang,
                "min_ascii_ratio": self.min_ascii_ratio, "min_stopword_ratio": self.min_stopword_ratio,
                "block_patterns": {k: list(v) for k, v in self.block_patterns.items()}}


def looks_english(text: str, *, min_ascii_ratio: float = 0.85, min_stopword_ratio: float = 0.08) -> bool:
    """Most letters ASCII and, for texts long enough to tell, enough English function words.
    Cheap (no model) and wrong only at the margins: mixed code/prose, very short texts pass."""
    words = letter_runs(text)
    if not words:
        return True  # nothing to judge (numbers, code symbols): other filters decide
    letters = sum(len(w) for w in words)
    ascii_letters = sum(1 for w in words for c in w if c.isascii())
    if ascii_letters < min_ascii_ratio * letters:
        return False
    if len(words) >= 12:
        return sum(1 for w in words if w in FUNCTION_WORDS) >= min_stopword_ratio * len(words)
    return True


class RecordFilter:
    """check(record) -> None to keep, else the reason (see the module docstring)."""

    name = "record"
    reasons = ("no_instruction", "no_output", "too_short", "too_long", "not_english",
               *DEFAULT_BLOCK_PATTERNS, EXTRA_REASON)

    def __init__(self, config: RecordFilterConfig) -> None:
        if config.min_words < 0 or config.max_words < config.min_words:
            raise UsageError(f"--min-words {config.min_words} / --max-words {config.max_words}: "
                             "need 0 <= min <= max")
        if config.lang not in ("en", "any"):
            raise UsageError(f"--lang {config.lang}: expected en or any")
        self.config = config
        self._blocks = compile_block_patterns(config.block_patterns, BOTH_SIDES)

    def check(self, record: Record) -> str | None:
        shown = [m for m in turns(record) if m["role"] != "system"]
        if not instruction(record).strip():
            return "no_instruction"
        if not any(m["role"] == "assistant" and m["content"].strip() for m in shown):
            return "no_output"
        n = len(instruction(record).split())
        if n < self.config.min_words:
            return "too_short"
        if n > self.config.max_words:
            return "too_long"
        if self.config.lang == "en":
            text = "\n".join(m["content"] for m in shown)
            if not looks_english(text, min_ascii_ratio=self.config.min_ascii_ratio,
                                 min_stopword_ratio=self.config.min_stopword_ratio):
                return "not_english"
        prepared = [(m["role"], normalize_quotes(m["content"])) for m in shown]
        for reason, regex, both in self._blocks:
            if any((both or role == "assistant") and regex.search(text) for role, text in prepared):
                return reason
        return None
