"""Checks on the instruction the backward model wrote, before a pair is kept.

A backward model trained on few seed pairs (or not trained at all) often answers with a label
("Instruction: ..."), quotes, talk about the text it was shown ("This text is an excellent answer
to the question: ..."), a copy or a restatement of that text. Labels and quotes are stripped
(`clean_instruction`); meta-text that quotes a real question gives that question back (salvaged);
the rest is rejected under one reason each, checked in this order:

  empty_instruction      nothing left after cleaning
  instruction_truncated  generation hit max_tokens, so the request is cut off
  instruction_too_long   longer than max_chars
  meta_instruction       talks about the text, the answer, the user or the task ("This text ...",
                         "Here is a question ...", "The user asks ...", "What is the user's
                         question?") instead of asking, and quotes no question that could be salvaged
  copies_segment         a long word run copied from the segment's body, or most of the
                         instruction's word 4-grams found in it (the header, or a short heading
                         line that opens the segment, is not counted: a title turned into a request
                         is a fair instruction)
  restates_answer        asks nothing and most of its content words come from the segment: a
                         paraphrase of the answer ("I have X, a rare disorder that ..."), not a request
  not_a_request          a finished statement that asks nothing: one paragraph ending in a full
                         stop that opens with a subject ("I like eggs.", "It is a disease."); can be
                         turned off. Titles, problem statements and tasks with their input pass:
                         real users write "SQL query to select the latest row per group".

`judge_instruction` runs all of it (clean, salvage, filter) in one place, for every caller. The
parts live beside this module: `cleaning.py` (labels, quotes), `asking.py` (does a text ask
anything), `meta.py` (meta-text and the question it quotes).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from generators.core.errors import UsageError
from generators.core.text import content_words, coverage, words
from generators.backtranslate.asking import is_request, is_statement
from generators.backtranslate.cleaning import clean_instruction
from generators.backtranslate.meta import is_meta, salvage_question

__all__ = ["REASONS", "Candidate", "InstructionFilter", "InstructionVerdict", "PostFilterConfig", "clean_instruction",
           "copies_segment", "is_meta", "is_request", "is_statement", "judge_instruction", "longest_common_run",
           "restates_answer", "salvage_question", "split_heading"]

REASONS = ("empty_instruction", "instruction_truncated", "instruction_too_long", "meta_instruction",
           "copies_segment", "restates_answer", "not_a_request")


@dataclass(frozen=True)
class PostFilterConfig:
    """Thresholds of the instruction checks; `describe()` goes into the run's fingerprint."""

    max_chars: int = 1000
    copy_run: int = 12          # this many consecutive words copied from the body: a copy
    copy_fraction: float = 0.6  # ... or this share of the instruction's word 4-grams
    copy_min_words: int = 12    # the share test only applies to instructions this long
    require_request: bool = True  # the not_a_request check (--allow-non-requests turns it off)
    restate_share: float = 0.6  # a non-request with this share of its content words in the segment
    restate_min_words: int = 5  # ... and at least this many content words restates it
    salvage: bool = True        # meta-text that quotes a question keeps that question

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise UsageError(f"--max-instruction-chars {self.max_chars}: must be 1 or more")
        if self.copy_run < 2:
            raise UsageError(f"--max-copied-words {self.copy_run - 1}: must be 1 or more")
        if not 0.0 < self.copy_fraction <= 1.0:
            raise UsageError(f"copy fraction {self.copy_fraction}: must be in (0, 1]")
        if not 0.0 < self.restate_share <= 1.0:
            raise UsageError(f"restate share {self.restate_share}: must be in (0, 1]")

    def describe(self) -> dict[str, object]:
        return asdict(self)


def longest_common_run(a: list[str], b: list[str], free: frozenset[str] | set[str] = frozenset()) -> int:
    """Length of the longest run of consecutive words shared by a and b (a is short). Words in
    `free` (the heading's) continue a run without adding to its length: asking about the page's
    own long title ("symptoms of X-linked Charcot-Marie-Tooth disease type 3") is no copy."""
    if not a or not b:
        return 0
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(b):
        positions.setdefault(word, []).append(j)
    best = 0
    previous: dict[int, int] = {}
    for word in a:
        current: dict[int, int] = {}
        step = 0 if word in free else 1
        for j in positions.get(word, ()):
            length = previous.get(j - 1, 0) + step
            current[j] = length
            if length > best:
                best = length
        previous = current
    return best


def _heading_line(first: str) -> bool:
    """A short opening line with no full stop: a title or the question the page answers."""
    first = first.strip()
    return bool(first) and len(first.split()) <= 25 and not first.endswith(".")


_OPENING_QUESTION = re.compile(r"^[^.!?\n]{3,250}\?\s")


def split_heading(segment_text: str, header: str) -> tuple[str, str]:
    """(heading, body): the heading is the first line when it is the header or reads as one, or
    an opening question (FAQ pages start with the question they answer); else empty."""
    text = segment_text.strip()
    first, newline, rest = text.partition("\n")
    if newline and ((header and first.strip().lstrip("#").strip() == header.strip()) or _heading_line(first)):
        return first, rest
    question = _OPENING_QUESTION.match(text)
    if question:
        return text[:question.end()], text[question.end():]
    return header, segment_text


def copies_segment(instruction: str, segment_text: str, header: str, config: PostFilterConfig) -> bool:
    """A long run of the body's words, or most 4-grams found in it; the heading's words are free."""
    heading, body_text = split_heading(segment_text, header)
    mine, body, free = words(instruction), words(body_text), frozenset(words(heading))
    if longest_common_run(mine, body, free) >= config.copy_run:
        return True
    if len(mine) < config.copy_min_words:
        return False
    grams = [tuple(mine[i:i + 4]) for i in range(len(mine) - 3)]
    theirs = {tuple(body[i:i + 4]) for i in range(len(body) - 3)}
    copied = sum(g in theirs and not free.issuperset(g) for g in grams)
    return copied >= config.copy_fraction * len(grams)


def restates_answer(instruction: str, segment_text: str, header: str, config: PostFilterConfig) -> bool:
    """Asks nothing and takes most of its content words from the segment's body (the heading's
    words are not counted: a title is a fair instruction)."""
    heading, body = split_heading(segment_text, header)
    mine = set(content_words(instruction)) - set(content_words(heading))
    if len(mine) < config.restate_min_words or is_request(instruction):
        return False
    return coverage(list(mine), set(content_words(body))) >= config.restate_share


@dataclass(frozen=True)
class Candidate:
    """One generated instruction with what it is checked against."""

    instruction: str
    segment_text: str
    header: str = ""
    finish: str = "stop"


class InstructionFilter:
    """Says why a generated (and cleaned) instruction is rejected, or None. Meta-text is
    rejected here; salvaging the question it quotes is `judge_instruction`'s part."""

    name = "instruction"
    reasons = REASONS

    def __init__(self, config: PostFilterConfig | None = None) -> None:
        self.config = config or PostFilterConfig()

    def check(self, candidate: Candidate) -> str | None:
        c = self.config
        instruction, segment_text = candidate.instruction, candidate.segment_text
        header, finish = candidate.header, candidate.finish
        if not instruction.strip():
            return "empty_instruction"
        if finish == "length":
            return "instruction_truncated"
        if len(instruction) > c.max_chars:
            return "instruction_too_long"
        if is_meta(instruction):
            return "meta_instruction"
        if copies_segment(instruction, segment_text, header, c):
            return "copies_segment"
        if restates_answer(instruction, segment_text, header, c):
            return "restates_answer"
        if c.require_request and is_statement(instruction):
            return "not_a_request"
        return None


@dataclass(frozen=True)
class InstructionVerdict:
    """What became of one raw backward output: the instruction to keep (cleaned, or the question
    salvaged from meta-text), the reason it is rejected (None: kept), and whether it was salvaged."""

    instruction: str
    reason: str | None
    salvaged: bool = False


def judge_instruction(raw_text: str, segment_text: str, header: str = "", finish: str = "stop",
                      config: PostFilterConfig | None = None) -> InstructionVerdict:
    """Clean, salvage and filter one raw backward output in the one place every caller shares
    (`gen backtranslate` and `gen eval backward` must judge alike). A salvaged question goes
    through every check again; if it fails one, that reason is the verdict."""
    flt = InstructionFilter(config)
    instruction = clean_instruction(raw_text)
    reason = flt.check(Candidate(instruction, segment_text, header, finish))
    if reason != "meta_instruction" or not flt.config.salvage:
        return InstructionVerdict(instruction, reason, False)
    question = salvage_question(instruction)
    if question is None:
        return InstructionVerdict(instruction, reason, False)
    again = flt.check(Candidate(question, segment_text, header, finish))
    return InstructionVerdict(question, again, again is None)
