"""The second test of semantic dedup: do two texts that the embedding puts near each other ask
the same thing?

The cosine of two sentence embeddings is high for two reasons: the texts mean the same in other
words (a paraphrase), or they share most of their words and differ in the one that matters
("the latest row per group" / "the first row per group", "overactive" / "underactive thyroid").
One cosine threshold cannot tell these apart (docs/filters.md, the sweep). What differs between
the two texts can: a paraphrase reaches a high cosine with few words in common, while two
distinct texts that share most words reach it through those words, and their differing words
are a swap of one word for another, a negation or a number.

So a candidate pair (cosine at or above the candidate floor, found by the nearest-neighbour
index) is judged by a logistic model on four cheap features of the pair (no further embedding):

  cosine        the embeddings' cosine
  overlap       Jaccard of the two sets of stemmed content words
  swap          both texts have content words the other lacks (a word replaced, not only added)
  marker        a negation, an order word ("before", "first") or a number is in one text only

The weights were fitted by bench/calibrate_embed.py on a training split of
tests/data/quality/ and measured on the held-out rest (docs/filters.md).

Before the pair test, the margin: in a crowded topic (short SQL titles) generic texts sit close
to many others ("Need help with my query" lies at 0.5 or more from 17 other titles), so their
cosine with any one of them says little. The density of a text is the mean cosine of its
DENSITY_NEIGHBOURS nearest among the texts kept so far (itself excluded, missing neighbours
count 0), and a pair is only a duplicate when its cosine stands out of both neighbourhoods:
cosine - (density(a) + density(b)) / 2 >= MARGIN (CSLS-style). Only kept texts count and they
are taken at decision time, so a streaming input (dialogs as they are written) can use it, and a
resumed run, which remembers the same kept texts in the same order, decides the same way.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from generators.core.text import content_words, words

# Stop words (generators/core/text.py) that still change what is asked.
MARKERS = frozenset("""
not no nor never without n't cannot can't don't doesn't isn't aren't won't shouldn't
before after above below under over against during until more most less least fewer
first last next previous latest earliest oldest newest second third both either neither only
""".split())
NUMBER_WORDS = frozenset("""
zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
hundred thousand million billion once twice half
""".split())
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class PairWeights:
    """Logistic weights: p(same meaning) = sigmoid(bias + sum of weight * feature)."""

    bias: float
    cosine: float
    overlap: float
    swap: float
    marker: float


# Fitted by `bench/calibrate_embed.py --fit` on the training split (see its output and
# docs/filters.md); the held-out figures there are for exactly these numbers.
WEIGHTS = PairWeights(bias=-8.338, cosine=9.338, overlap=-12.033, swap=6.732, marker=-1.304)
DECISION = 0.5  # p(same meaning) at or above which the pair is a duplicate
# The margin over the neighbourhoods, chosen by bench/calibrate_embed.py --cv (docs/filters.md):
DENSITY_NEIGHBOURS = 5  # kept texts whose mean cosine is a text's density
MARGIN = 0.24  # cosine - mean of the two densities at or above which the pair test is asked
RULE = "pair-logistic-v1+margin-k5-0.24"  # in the dedup settings of a run: another rule is another decision


def density(cosines: list[float], k: int = DENSITY_NEIGHBOURS) -> float:
    """Mean cosine of a text's k nearest kept texts (the k largest given; missing ones count 0)."""
    return sum(sorted(cosines, reverse=True)[:k]) / k


def stands_out(cosine: float, density_a: float, density_b: float, margin: float = MARGIN) -> bool:
    """Whether the pair's cosine stands out of the two texts' neighbourhoods by the margin."""
    return cosine - (density_a + density_b) / 2 >= margin


def _markers(text: str) -> set[str]:
    found = {w for w in words(text) if w in MARKERS or w in NUMBER_WORDS or w.endswith("n't")}
    return found | set(_DIGITS.findall(text))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def pair_features(a: str, b: str, cosine: float) -> tuple[float, float, float, float]:
    """(cosine, overlap, swap, marker) of a candidate pair."""
    wa, wb = set(content_words(a)), set(content_words(b))
    swap = 1.0 if (wa - wb) and (wb - wa) else 0.0
    overlap = _jaccard(set(words(a)), set(words(b))) * swap
    marker = 1.0 if _markers(a) ^ _markers(b) else 0.0
    return float(cosine), overlap, swap, marker


def same_meaning_probability(a: str, b: str, cosine: float, weights: PairWeights = WEIGHTS) -> float:
    c, overlap, swap, marker = pair_features(a, b, cosine)
    z = (weights.bias + weights.cosine * c + weights.overlap * overlap + weights.swap * swap
         + weights.marker * marker)
    return 1.0 / (1.0 + math.exp(-z))


def same_meaning(a: str, b: str, cosine: float, weights: PairWeights = WEIGHTS,
                 decision: float = DECISION) -> bool:
    """Whether a candidate pair asks the same thing (the pair test of SemanticDedup)."""
    return same_meaning_probability(a, b, cosine, weights) >= decision
