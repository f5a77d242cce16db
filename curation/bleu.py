"""Sentence BLEU (0-100), written out so decontamination needs no extra package.

It follows sacrebleu's sentence_bleu defaults: 4-gram precisions clipped by the reference,
"exp" smoothing (a zero count at order n counts as 1 / 2^k of a match, k the number of zero
orders so far), effective order for short sentences, and the brevity penalty. Tokens are
lower-cased words and single punctuation marks (close to sacrebleu's 13a tokenizer, lower-cased).
"""
from __future__ import annotations

import math
import re
from collections import Counter

ORDER = 4
_TOKEN = re.compile(r"\w+|[^\w\s]")

NgramCounts = list[Counter]


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngram_counts(tokens: list[str], order: int = ORDER) -> NgramCounts:
    return [Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)) for n in range(1, order + 1)]


def sentence_bleu(hypothesis: NgramCounts, hyp_len: int, reference: NgramCounts, ref_len: int) -> float:
    """BLEU of a hypothesis against one reference, from precomputed n-gram counts."""
    if hyp_len == 0 or ref_len == 0:
        return 0.0
    log_sum, smooth, used = 0.0, 1.0, 0
    for hyp, ref in zip(hypothesis, reference):
        total = sum(hyp.values())
        if total == 0:
            break
        used += 1
        correct = sum(min(count, ref[gram]) for gram, count in hyp.items() if gram in ref)
        if correct == 0:
            smooth *= 2
            precision = 100.0 / (smooth * total)
        else:
            precision = 100.0 * correct / total
        log_sum += math.log(precision)
    if used == 0:
        return 0.0
    penalty = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return penalty * math.exp(log_sum / used)


def bleu(hypothesis: str, reference: str) -> float:
    """Convenience form on raw strings (the decontaminator precomputes counts instead)."""
    h, r = tokenize(hypothesis), tokenize(reference)
    return sentence_bleu(ngram_counts(h), len(h), ngram_counts(r), len(r))
