"""Checks on the instruction the backward model wrote, before a pair is kept.

A backward model trained on few seed pairs often answers with a label ("Instruction: ..."),
quotes, a copy of the text it was shown, or a sentence that asks nothing. The label and quotes
are stripped (`clean_instruction`); the rest is rejected under one reason each, checked in
this order:

  empty_instruction      nothing left after cleaning
  instruction_truncated  generation hit max_tokens, so the request is cut off
  instruction_too_long   longer than max_chars
  copies_segment         a long word run copied from the segment's body, or most of the
                         instruction's word 4-grams found in it (the header is not counted:
                         a title turned into a request is a fair instruction)
  not_a_request          no question mark and no request word (question word, imperative verb,
                         "please", "can you", ...) at the start; can be turned off
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..errors import UsageError

REASONS = ("empty_instruction", "instruction_truncated", "instruction_too_long", "copies_segment",
           "not_a_request")

# Words a request usually opens with: question words, auxiliaries, polite forms, imperatives.
REQUEST_STARTS = frozenset("""
what whats what's how hows how's why when where which who whom whose is are am was were do does
did can could would will should shall may might must have has had isn't aren't don't doesn't
didn't can't couldn't wouldn't won't shouldn't
please kindly help let let's lets tell give write explain
describe list summarize summarise create make provide generate compose draft suggest recommend
compare contrast define translate find show outline discuss analyze analyse calculate compute
convert name identify classify design plan develop build implement rewrite edit correct fix
solve prepare teach share propose evaluate review assess estimate predict elaborate clarify
illustrate detail state mention enumerate rank sort organize organise format paraphrase
rephrase simplify expand shorten continue complete finish fill answer respond reply brainstorm
imagine pretend act play consider think choose select pick determine check verify prove derive
express convince persuade argue debate justify demonstrate walk guide instruct advise recount
narrate report note highlight point offer present produce draw sketch code program debug
optimize optimise refactor install configure set setup use apply add remove delete update
change modify improve fix craft devise invent come look search read study learn introduce
given assuming suppose using based according
""".split())
REQUEST_PHRASES = ("i need", "i want", "i would like", "i'd like", "i am looking", "i'm looking",
                   "i am trying", "i'm trying", "i have a question", "i wonder", "i was wondering",
                   "we need", "we want", "we would like", "we'd like", "my question")

_LABEL = re.compile(
    r"^\s*(?:[*_#>]+\s*)?(?:the\s+|a\s+|new\s+|generated\s+|likely\s+|most\s+likely\s+)*"
    r"(?:user(?:'s)?\s+)?(?:instruction|question|request|query|prompt|task|user|input|human)"
    r"(?:\s*\d+)?\s*(?:[*_]+\s*)?[:：]\s*(?:[*_]+\s*)?", re.I)
_LEAD_IN = re.compile(r"^\s*(?:sure|okay|ok|certainly|here(?:'s| is| are)?)\b[^\n]{0,80}[:：]\s*\n", re.I)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"),
           ("\u00ab", "\u00bb"), ("**", "**"))
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class PostFilterConfig:
    """Thresholds of the instruction checks; `describe()` goes into the run's fingerprint."""

    max_chars: int = 1000
    copy_run: int = 12          # this many consecutive words copied from the body: a copy
    copy_fraction: float = 0.6  # ... or this share of the instruction's word 4-grams
    copy_min_words: int = 12    # the share test only applies to instructions this long
    require_request: bool = True

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise UsageError(f"--max-instruction-chars {self.max_chars}: must be 1 or more")
        if self.copy_run < 2:
            raise UsageError(f"--max-copied-words {self.copy_run - 1}: must be 1 or more")
        if not 0.0 < self.copy_fraction <= 1.0:
            raise UsageError(f"copy fraction {self.copy_fraction}: must be in (0, 1]")

    def describe(self) -> dict[str, object]:
        return asdict(self)


def clean_instruction(text: str) -> str:
    """The request alone: lead-ins ("Sure, here is the question:"), labels ("Instruction:",
    "**Question:**") and wrapping quotes removed, repeatedly, since models stack them."""
    text = text.strip()
    for _ in range(4):
        before = text
        text = _LEAD_IN.sub("", text, count=1).strip()
        text = _LABEL.sub("", text, count=1).strip()
        for left, right in _QUOTES:
            if len(text) >= len(left) + len(right) + 1 and text.startswith(left) and text.endswith(right):
                inner = text[len(left):len(text) - len(right)]
                if left not in inner or left != right:  # "a" and "b" is not one quoted string
                    text = inner.strip()
        if text == before:
            break
    return text


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _body(segment_text: str, header: str) -> str:
    """The segment without its header line (the first line when it is the header)."""
    first, _, rest = segment_text.partition("\n")
    if header and first.strip().lstrip("#").strip() == header.strip():
        return rest
    return segment_text


def longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest run of consecutive words shared by a and b (a is short)."""
    if not a or not b:
        return 0
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(b):
        positions.setdefault(word, []).append(j)
    best = 0
    previous: dict[int, int] = {}
    for word in a:
        current: dict[int, int] = {}
        for j in positions.get(word, ()):
            length = previous.get(j - 1, 0) + 1
            current[j] = length
            if length > best:
                best = length
        previous = current
    return best


def copies_segment(instruction: str, segment_text: str, header: str, config: PostFilterConfig) -> bool:
    mine, body = _words(instruction), _words(_body(segment_text, header))
    if longest_common_run(mine, body) >= config.copy_run:
        return True
    if len(mine) < config.copy_min_words:
        return False
    grams = [tuple(mine[i:i + 4]) for i in range(len(mine) - 3)]
    theirs = {tuple(body[i:i + 4]) for i in range(len(body) - 3)}
    return sum(g in theirs for g in grams) >= config.copy_fraction * len(grams)


def is_request(instruction: str) -> bool:
    """A question mark anywhere, a request word or phrase first (after list marks), or a request
    word opening the clause after a short lead ("In 100 words, describe ...")."""
    if "?" in instruction or "\uff1f" in instruction:
        return True
    text = re.sub(r"^[\s\-*\d.)]+", "", instruction).lower()
    words = _words(text)
    if not words:
        return False
    if words[0] in REQUEST_STARTS or " ".join(words[:5]).startswith(REQUEST_PHRASES):
        return True
    lead, comma, rest = text[:80].partition(",")
    after = _words(rest)
    return bool(comma and after and after[0] in REQUEST_STARTS and len(_words(lead)) <= 8)


@dataclass(frozen=True)
class Candidate:
    """One generated instruction with what it is checked against."""

    instruction: str
    segment_text: str
    header: str = ""
    finish: str = "stop"


class InstructionFilter:
    """Says why a generated (and cleaned) instruction is rejected, or None."""

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
        if copies_segment(instruction, segment_text, header, c):
            return "copies_segment"
        if c.require_request and not is_request(instruction):
            return "not_a_request"
        return None
