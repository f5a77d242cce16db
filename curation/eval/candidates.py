"""The labelled candidates `gen eval curation` rates: each held-out pair as it is (label 1), and
negatives (label 0) made from the same pairs, each a failure a backtranslation pipeline really
produces:
  mismatched  the instruction with another pair's answer (a backward model that missed the point)
  truncated   the instruction with its answer cut to the first sentence (an incomplete answer)
  copied      the answer's first sentence as the instruction (a backward model that copies)
Negatives are skipped where they would equal the positive (a one-sentence answer)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from generators.core.errors import UsageError

from curation.eval.pairs import Pair

KINDS = ("mismatched", "truncated", "copied")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")


@dataclass(frozen=True)
class Candidate:
    pair: str          # the held-out pair it was made from
    kind: str          # "true" or one of KINDS
    label: int         # 1 for the true pair, 0 for a negative
    instruction: str
    answer: str


def first_sentence(text: str) -> str:
    """Up to the first sentence end (., ! or ? then a space) or line break."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()


def parse_kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(f"--negatives {value}: expected a comma-separated list of {', '.join(KINDS)}")
    return kinds


def make_candidates(pairs: list[Pair], kinds: tuple[str, ...], seed: int) -> list[Candidate]:
    """Positives and negatives, in a fixed order: per pair, the positive then its negatives. The
    mismatched answer comes from the pair `shift` places on (shift seeded, 1..n-1), so no
    instruction meets its own answer."""
    if "mismatched" in kinds and len(pairs) < 2:
        raise UsageError(f"--pairs: {len(pairs)} pair(s); mismatched negatives need at least 2 pairs "
                         "(or leave mismatched out of --negatives)")
    shift = random.Random(seed).randrange(1, len(pairs)) if len(pairs) > 1 else 0
    out: list[Candidate] = []
    for i, pair in enumerate(pairs):
        out.append(Candidate(pair.id, "true", 1, pair.instruction, pair.answer))
        first = first_sentence(pair.answer)
        for kind in kinds:
            if kind == "mismatched":
                other = pairs[(i + shift) % len(pairs)].answer
                if other.strip() != pair.answer.strip():
                    out.append(Candidate(pair.id, kind, 0, pair.instruction, other))
            elif kind == "truncated" and first and len(first) < len(pair.answer):
                out.append(Candidate(pair.id, kind, 0, pair.instruction, first))
            elif kind == "copied" and first and first.strip() != pair.instruction.strip():
                out.append(Candidate(pair.id, kind, 0, first, pair.answer))
    if not any(c.label == 0 for c in out):
        raise UsageError("--pairs: no negative could be made from these pairs (one pair, one-sentence answers); "
                         "give more pairs")
    return out
