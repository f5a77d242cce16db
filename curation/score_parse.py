"""Read a rater's "Score: N" strictly (Humpback reproductions lost quality to loose regexes that
read "Score: 10" as 1 and accepted "10502").

The rules, each chosen so that a doubtful answer is resampled rather than misread:
- A score statement is a line that starts (after markdown decoration: spaces, `>`, `#`, `*`,
  `_`, `-`) with "Score" (any case, optionally "Final score" / "Overall score"), then a colon
  (markdown emphasis around it is fine: `**Score:** 4`, `**Score: 4**`), then the number.
- The LAST statement in the text decides. If it is not valid, the answer is unparsed even when an
  earlier statement was valid: the rater's final word is what counts.
- Valid: an integer 1..5 written in ASCII digits, optionally in brackets, optionally followed by
  "/5" or "out of 5" ("Score: 5/5" is 5; "Score: 4/10" is not read). Anything may follow on the
  line ("Score: 4 (minor issues)") and after it ("Score: 4" then more reasoning is read as 4).
- Not valid: 0 or 6 and above ("Score: 10", "Score: 10502"), decimals ("4.5", "4,5"), ranges
  ("4-5", "4 to 5", "4 or 5"), words ("five"), non-ASCII digits ("５", "٥": a rater that writes
  these is off-format and is resampled), and a score mentioned mid-sentence ("I would give it a
  score: 3") with no score line.
- An answer that is a JSON object (a rater under a JSON-schema guide, --constrained auto on an
  OpenAI-compatible server) is read as {"reason": text, "score": integer 1..5}, as strictly: a
  score that is a string, a float, a boolean or out of range is not read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from generators.core.guides import json_object

MIN_SCORE, MAX_SCORE = 1, 5

_STATEMENT = re.compile(
    r"^[ \t>#*_\-]*(?:(?:final|overall)[ \t]+)?score[ \t*_]*:[ \t*_]*(?P<rest>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"[\[(]?(?P<num>[0-9]+(?:[.,][0-9]+)?)(?P<tail>[^\n]*)", re.ASCII)
_OUT_OF = re.compile(r"[\])]?[ \t*_]*(?:/|out[ \t]+of)[ \t]*(?P<den>[0-9]+(?:[.,][0-9]+)?)", re.IGNORECASE)
_RANGE = re.compile(r"[ \t]*(?:-|–|—|to|or)[ \t]*[0-9]", re.IGNORECASE)


@dataclass(frozen=True)
class ScoreParse:
    score: int | None          # 1..5, or None when unparsed
    problem: str | None        # why unparsed: no_score | not_a_number | not_integer | out_of_range | bad_scale | range
    statement_at: int | None = None  # offset of the start of the deciding statement line
    reason: str | None = None  # a JSON answer's "reason"

    @property
    def ok(self) -> bool:
        return self.score is not None


# what each problem means, in the words of the retry that sends it back (--constrained auto)
PROBLEM_TEXT = {
    "no_score": "it has no score",
    "not_a_number": "the score is not a number",
    "not_integer": "the score is not a whole number",
    "out_of_range": f"the score is not a whole number from {MIN_SCORE} to {MAX_SCORE}",
    "bad_scale": f"the score is not on the scale {MIN_SCORE} to {MAX_SCORE}",
    "range": "the score is a range, not one number",
}


def parse_score(text: str) -> ScoreParse:
    """The score of a rating text under the rules above."""
    answer = json_object(text)
    if answer is not None:
        return _json_score(answer)
    statements = list(_STATEMENT.finditer(text or ""))
    if not statements:
        return ScoreParse(None, "no_score")
    last = statements[-1]
    rest = last.group("rest")
    number = _NUMBER.match(rest)
    if number is None:
        return ScoreParse(None, "not_a_number", statement_at=last.start())
    raw = number.group("num")
    if not raw.isdigit():
        return ScoreParse(None, "not_integer", statement_at=last.start())
    tail = number.group("tail")
    if _RANGE.match(tail):
        return ScoreParse(None, "range", statement_at=last.start())
    scale = _OUT_OF.match(tail)
    if scale is not None and scale.group("den") != "5":
        return ScoreParse(None, "bad_scale", statement_at=last.start())
    value = int(raw)
    if not MIN_SCORE <= value <= MAX_SCORE or len(raw) != 1:
        return ScoreParse(None, "out_of_range", statement_at=last.start())
    return ScoreParse(value, None, statement_at=last.start())


def _json_score(answer: dict) -> ScoreParse:
    reason = answer.get("reason")
    reason = reason.strip() if isinstance(reason, str) else None
    value = answer.get("score")
    if value is None:
        return ScoreParse(None, "no_score", reason=reason)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ScoreParse(None, "not_a_number", reason=reason)
    if not isinstance(value, int):
        return ScoreParse(None, "not_integer", reason=reason)
    if not MIN_SCORE <= value <= MAX_SCORE:
        return ScoreParse(None, "out_of_range", reason=reason)
    return ScoreParse(value, None, reason=reason)


def reasoning_of(text: str, parsed: ScoreParse) -> str:
    """The rater's reasoning: the text without the deciding score line (what the record keeps
    as `reason`), or a JSON answer's "reason"."""
    if parsed.reason is not None:
        return parsed.reason
    if parsed.statement_at is None:
        return (text or "").strip()
    end = text.find("\n", parsed.statement_at)
    after = "" if end < 0 else text[end + 1:]
    return "\n".join(part for part in (text[:parsed.statement_at].strip(), after.strip()) if part)
