"""Cheap per-record checks run before rating, so no request is spent on junk.

One small filter class per check, in RECORD_FILTERS (the order they run; the first reason wins):
  NoInstruction         no_instruction     no user turn with text
  NoOutput              no_output          no assistant turn with text
  InstructionLength     too_short/too_long the instruction has fewer than --min-words or more than
                                           --max-words words
  English               not_english        --lang en and the text does not look English (looks_english)
  RecordBlockPatterns   refusal, identity, blocked: the self-chat patterns
                        (generators.selfchat.filters), with the same sides: a person may say "I'm
                        sorry, but I can't", an assistant may not
Each class declares its own flags. The prefilter (curation/prefilter.py) puts them in one chain
with duplicate ids, decontamination and dedup.
"""
from __future__ import annotations

from typing import Any, Mapping

import click

from generators.core.errors import UsageError
from generators.core.filtering import FilterBase, FilterChain, build_chain, shared_reasons
from generators.core.blocks import BlockPatterns, joined_sides
from generators.core.records import Record, instruction, turns
from generators.core.text import FUNCTION_WORDS, letter_runs

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


def _shown(record: Record) -> list[dict[str, str]]:
    return [m for m in turns(record) if m["role"] != "system"]


class NoInstruction(FilterBase):
    name = "no_instruction"
    reasons = {"no_instruction": "no user turn with text"}

    def check(self, record: Record) -> str | None:
        return None if instruction(record).strip() else "no_instruction"


class NoOutput(FilterBase):
    name = "no_output"
    reasons = {"no_output": "no assistant turn with text"}

    def check(self, record: Record) -> str | None:
        answered = any(m["role"] == "assistant" and m["content"].strip() for m in _shown(record))
        return None if answered else "no_output"


class InstructionLength(FilterBase):
    name = "instruction_length"
    reasons = shared_reasons("too_short", "too_long")
    options = (
        click.option("--min-words", type=click.IntRange(0), default=2, show_default=True,
                     help="Drop instructions shorter."),
        click.option("--max-words", type=click.IntRange(1), default=1024, show_default=True,
                     help="Drop instructions longer."),
    )

    def __init__(self, min_words: int = 2, max_words: int = 1024) -> None:
        if min_words < 0 or max_words < min_words:
            raise UsageError(f"--min-words {min_words} / --max-words {max_words}: need 0 <= min <= max")
        self.min_words, self.max_words = min_words, max_words

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "InstructionLength":
        return cls(values["min_words"], values["max_words"])

    def settings(self) -> dict[str, Any]:
        return {"min_words": self.min_words, "max_words": self.max_words}

    def check(self, record: Record) -> str | None:
        n = len(instruction(record).split())
        return "too_short" if n < self.min_words else "too_long" if n > self.max_words else None


class English(FilterBase):
    name = "english"
    reasons = {"not_english": "--lang en and the text does not look English"}
    options = (click.option("--lang", type=click.Choice(["en", "any"]), default="en", show_default=True,
                            help="en: drop records that do not look English (letters and stopwords heuristic)."),)

    def __init__(self, min_ascii_ratio: float = 0.85, min_stopword_ratio: float = 0.08) -> None:
        self.min_ascii_ratio = min_ascii_ratio        # share of letters that are ASCII
        self.min_stopword_ratio = min_stopword_ratio  # share of words that are English stopwords (12+ words)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "English | None":
        if values["lang"] not in ("en", "any"):
            raise UsageError(f"--lang {values['lang']}: expected en or any")
        return cls() if values["lang"] == "en" else None

    def settings(self) -> dict[str, Any]:
        return {"min_ascii_ratio": self.min_ascii_ratio, "min_stopword_ratio": self.min_stopword_ratio}

    def check(self, record: Record) -> str | None:
        text = "\n".join(m["content"] for m in _shown(record))
        english = looks_english(text, min_ascii_ratio=self.min_ascii_ratio, min_stopword_ratio=self.min_stopword_ratio)
        return None if english else "not_english"


class RecordBlockPatterns(BlockPatterns):
    """The self-chat block patterns on a record's turns."""

    options = (
        click.option("--block", "block", multiple=True, metavar="REGEX",
                     help="Extra pattern that drops a record (reason 'blocked')."),
        click.option("--no-default-filters", is_flag=True, help="Drop the built-in refusal/identity patterns."),
    )

    def sides(self, record: Record) -> dict[str, str]:
        return joined_sides(_shown(record))


RECORD_FILTERS: tuple[type[FilterBase], ...] = (NoInstruction, NoOutput, InstructionLength, English,
                                                RecordBlockPatterns)


def record_chain(values: Mapping[str, Any] | None = None) -> FilterChain[Record]:
    """The record checks as the flag values ask for them (defaults where none given)."""
    return build_chain(RECORD_FILTERS, values)
