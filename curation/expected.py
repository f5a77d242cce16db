"""The expected score from the rater's own token probabilities at the score position.

A 5 said with 55% confidence and a 5 said with 99% are different ratings; the expected value
sum_k p(k)*k / sum_k p(k) over k in 1..5 (from the top-logprobs of the token that carries the
digit) ranks records within one integer score and breaks ties for --top / --top-frac.
The score itself is read strictly from the answer text (score_parse); here we only locate the
token that carries it, in the text the tokens spell (servers may drop or alter whitespace, so
the locating pattern is not line-anchored): the last "Score: N" there whose N equals the parsed
score, or the `"score": N` of a JSON answer (--constrained auto on an OpenAI-compatible server).
A tokenizer that writes " 5", "5", ": 5" or "5}" works alike.
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

from curation.score_parse import MAX_SCORE, MIN_SCORE

_DECORATION = " \t\n*_:[](){}\""
_DIGIT = re.compile(r"^[0-9]$", re.ASCII)
_LOCATE = re.compile(r"score[\s*_\"]*:[\s*_\[(]*(?P<digit>[0-9])(?![0-9.,])", re.IGNORECASE | re.ASCII)


def _digit_of(token: str) -> int | None:
    core = token.strip(_DECORATION)
    if _DIGIT.match(core):
        value = int(core)
        if MIN_SCORE <= value <= MAX_SCORE:
            return value
    return None


def expected_score(logprobs: Sequence[dict[str, Any]] | None, score: int) -> float | None:
    """E[score] at the token of the deciding "Score: N" (N == score), or None without logprobs or
    when that token cannot be found."""
    if not logprobs:
        return None
    tokens = [str(entry.get("token", "")) for entry in logprobs]
    found = [m for m in _LOCATE.finditer("".join(tokens)) if int(m.group("digit")) == score]
    if not found:
        return None
    digit_at = found[-1].start("digit")
    offset = 0
    for entry, token in zip(logprobs, tokens):
        if offset <= digit_at < offset + len(token):
            return _expectation(entry, token)
        offset += len(token)
    return None


def digit_mass(entry: dict[str, Any], token: str) -> dict[int, float]:
    """Probability of each score 1..5 at one token, from its top alternatives (" 5" and "5" add up)."""
    mass: dict[int, float] = {}
    candidates = dict(entry.get("top") or {})
    candidates.setdefault(token, entry.get("logprob"))
    for alt, logprob in candidates.items():
        value = _digit_of(alt)
        if value is None or logprob is None or not math.isfinite(logprob):
            continue
        mass[value] = mass.get(value, 0.0) + math.exp(logprob)
    return mass


def _expectation(entry: dict[str, Any], token: str) -> float | None:
    mass = digit_mass(entry, token)
    total = sum(mass.values())
    if total <= 0:
        return None
    return round(sum(k * p for k, p in mass.items()) / total, 4)
