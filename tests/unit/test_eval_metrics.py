"""The eval metrics on cases worked out by hand, and the parsers and candidate builder they rely on."""
from __future__ import annotations

import math

import pytest

from curation.eval.candidates import first_sentence, make_candidates, parse_kinds
from curation.eval.metrics import (lcs_length, length_controlled, mean_interval, normalized, precision_recall,
                                   roc_auc, rouge_l)
from curation.eval.pairs import Pair
from curation.eval.verdict import outcome, parse_verdict
from generators.core.errors import UsageError


def test_rouge_l_by_hand():
    # LCS "the cat on the mat" = 5 of 6 words each way: P = R = F = 5/6
    assert rouge_l("the cat sat on the mat", "The cat is on the mat.") == pytest.approx(5 / 6)
    # LCS "a c" = 2: P = 2/4, R = 2/2, F = 2PR/(P+R) = 2/3
    assert rouge_l("a b c d", "a c") == pytest.approx(2 / 3)
    assert rouge_l("What causes tides?", "what causes TIDES") == 1.0
    assert rouge_l("", "anything") == 0.0 and rouge_l("x y", "z") == 0.0
    assert lcs_length("abcbdab", "bdcaba") == 4  # the textbook example (BCBA)


def test_roc_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.5, 0.1: 0.9 beats both, 0.4 beats 0.1 only: 3 of 4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert roc_auc([1, 0], [3, 3]) == 0.5  # a tie counts half
    assert roc_auc([1, 1, 0], [5, 3, 3]) == pytest.approx(0.75)  # 1 + 0.5 of 2
    assert roc_auc([0, 1], [1, 2]) == 1.0 and roc_auc([1, 0], [1, 2]) == 0.0
    assert roc_auc([1, 1], [1, 2]) is None  # one class only


def test_precision_recall_counts_unparsed_as_not_kept():
    labels, scores = [1, 1, 0, 0, 1], [5, 3, 5, 2, None]
    table = precision_recall(labels, scores, thresholds=(3, 5))
    assert table["5"] == {"kept": 2, "precision": 0.5, "recall": pytest.approx(1 / 3)}
    assert table["3"] == {"kept": 3, "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3)}
    assert precision_recall([1], [1], thresholds=(2,))["2"] == {"kept": 0, "precision": None, "recall": 0.0}


def test_mean_interval_and_length_control():
    mean, low, high = mean_interval([1.0, 0.0, 1.0, 0.5])
    sd = math.sqrt(((0.375) ** 2 * 2 + 0.625 ** 2 + 0.125 ** 2) / 3)
    assert mean == 0.625 and low == pytest.approx(0.625 - 1.959964 * sd / 2)
    assert high == 1.0  # clipped
    assert mean_interval([]) == (None, None, None) and mean_interval([1.0]) == (1.0, None, None)
    assert length_controlled([1.0] * 5, [1, 2, 3, 4, 5]) is None  # too few to fit
    # outcomes that follow length alone: the model wins exactly when its answer is longer, so at
    # equal lengths it is as good as the baseline (0.5), while the raw rate says 0.75
    diffs = [d for d in (-2, -1, 1, 2, 3, 4, 5, 6) for _ in range(5)]
    wins = [1.0 if d > 0 else 0.0 for d in diffs]
    assert sum(wins) / len(wins) == 0.75
    lc = length_controlled(wins, diffs)
    assert lc is not None and lc < 0.75
    assert length_controlled([0.5] * 30, list(range(30))) == pytest.approx(0.5, abs=1e-6)


def test_verdicts_are_read_strictly_and_orders_cancel():
    assert parse_verdict("Answer 2 is clearer.\nWinner: 2") == "2"
    assert parse_verdict("**Winner:** Tie") == "tie"
    assert parse_verdict("Winner: 1\nOn reflection...\nWinner: [2]") == "2"  # the last one decides
    assert parse_verdict("Winner: 3") is None and parse_verdict("Winner: 1 or 2") is None
    assert parse_verdict("I prefer the first") is None
    assert outcome("1", "2") == 1.0 and outcome("2", "1") == 0.0
    assert outcome("1", "1") == 0.5  # always the first position: no preference
    assert outcome("tie", "2") == 0.75


def test_candidates_and_first_sentence():
    assert first_sentence("Dr. Who? No. Yes.") == "Dr."  # a plain rule, documented: ends at ". "
    assert first_sentence("Line one\nline two. More.") == "Line one"
    pairs = [Pair("a", "Q1?", "One. Two."), Pair("b", "Q2?", "Three. Four."), Pair("c", "Q3?", "Single")]
    cands = make_candidates(pairs, ("mismatched", "truncated", "copied"), seed=0)
    assert [(c.pair, c.kind) for c in cands][:4] == [("a", "true"), ("a", "mismatched"), ("a", "truncated"),
                                                     ("a", "copied")]
    mismatched = [c for c in cands if c.kind == "mismatched"]
    assert all(c.answer != next(p.answer for p in pairs if p.id == c.pair) for c in mismatched)
    assert not any(c.kind == "truncated" and c.pair == "c" for c in cands)  # one sentence: nothing to cut
    assert make_candidates(pairs, ("mismatched",), seed=5) == make_candidates(pairs, ("mismatched",), seed=5)
    with pytest.raises(UsageError, match="at least 2"):
        make_candidates(pairs[:1], ("mismatched",), seed=0)
    with pytest.raises(UsageError):
        parse_kinds("mismatched,nonsense")
    assert normalized("What's  THIS?") == "what s this"
