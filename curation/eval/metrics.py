"""The numbers `gen eval` reports, computed from plain lists so tests can recompute them by hand.

ROUGE-L F1 over lowercased words (longest common subsequence; beta 1, as the rouge-score
package's default), ROC AUC as the Mann-Whitney probability that a positive outscores a negative
(ties count half), precision/recall of "score >= t" (Humpback's Table 7), a win rate with a
normal 95% interval over per-instruction outcomes.
"""
from __future__ import annotations

import math
from typing import Sequence

from generators.core.text import tokens

Z95 = 1.959964


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (one row of the DP table at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of two texts over words; 0.0 when either has no word."""
    p, r = tokens(prediction), tokens(reference)
    if not p or not r:
        return 0.0
    lcs = lcs_length(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def normalized(text: str) -> str:
    """Text for exact match: lowercased words joined by single spaces (punctuation ignored)."""
    return " ".join(tokens(text))


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """P(score of a random positive > score of a random negative), ties half; None without both
    classes. Rank-based (average ranks for ties), O(n log n)."""
    pairs = sorted(zip(scores, labels))
    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # ranks i+1 .. j
        rank_sum += average_rank * sum(1 for _, label in pairs[i:j] if label)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def precision_recall(labels: Sequence[int], scores: Sequence[int | None],
                     thresholds: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[str, dict[str, float | int | None]]:
    """For each t: kept = score >= t (an unparsed score is never kept, as in curate); precision =
    true pairs among the kept, recall = kept true pairs among all true pairs."""
    out: dict[str, dict[str, float | int | None]] = {}
    positives = sum(1 for label in labels if label)
    for t in thresholds:
        kept = [label for label, score in zip(labels, scores) if score is not None and score >= t]
        hits = sum(kept)
        out[str(t)] = {"kept": len(kept), "precision": hits / len(kept) if kept else None,
                       "recall": hits / positives if positives else None}
    return out


def mean_interval(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and its normal 95% interval (standard error of the per-item values), clipped to [0, 1]."""
    n = len(values)
    if not n:
        return None, None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None, None
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = Z95 * math.sqrt(variance / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def length_controlled(outcomes: Sequence[float], length_diffs: Sequence[float], *,
                      min_items: int = 20, iterations: int = 50) -> float | None:
    """AlpacaEval-2 style length control, fitted on this run alone: outcome ~ sigmoid(a + b *
    tanh(d / sd(d))) by Newton's method on the log-loss (outcomes in [0, 1], ties 0.5), and the
    rate predicted for equal lengths, sigmoid(a). None below `min_items` (too few to fit) or
    when the lengths do not vary."""
    n = len(outcomes)
    if n < min_items:
        return None
    mean_d = sum(length_diffs) / n
    sd = math.sqrt(sum((d - mean_d) ** 2 for d in length_diffs) / n)
    if sd == 0:
        return None
    xs = [math.tanh(d / sd) for d in length_diffs]
    a = b = 0.0
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for x, y in zip(xs, outcomes):
            p = 1 / (1 + math.exp(-(a + b * x)))
            w = p * (1 - p) + 1e-9
            ga, gb = ga + (p - y), gb + (p - y) * x
            haa, hab, hbb = haa + w, hab + w * x, hbb + w * x * x
        det = haa * hbb - hab * hab
        if det <= 1e-12:
            break
        step_a, step_b = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a, b = a - step_a, b - step_b
        if abs(step_a) + abs(step_b) < 1e-9:
            break
    return 1 / (1 + math.exp(-a))
