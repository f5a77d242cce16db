"""Selecting A_k: threshold, --top, --top-frac, ranking by expected score then score."""
from __future__ import annotations

import pytest

from curation.select import Rated, SelectConfig, select
from generators.core.errors import UsageError


def rated(*rows):
    return [Rated(key=i, id=f"r{i}", score=s, score_expected=e) for i, (s, e) in enumerate(rows)]


def kept(decisions):
    return sorted(k for k, v in decisions.items() if v is None)


def test_threshold_keeps_a_k():
    items = rated((5, None), (4, None), (3, None), (5, None))
    assert kept(select(items, SelectConfig(threshold=5))) == [0, 3]
    decisions = select(items, SelectConfig(threshold=4))
    assert kept(decisions) == [0, 1, 3] and decisions[2] == "below_threshold"


def test_top_ranks_by_expected_then_score_then_id():
    items = rated((5, 4.6), (5, 4.9), (4, 4.95), (5, None), (5, 4.9))
    decisions = select(items, SelectConfig(threshold=4, top=2))
    # 4.95 (score 4) > 4.9 (r1) = 4.9 (r4, later id) > 5.0 (no expected counts as 5.0)... order:
    # r3 (5.0), r2 (4.95), r1 (4.9), r4 (4.9), r0 (4.6)
    assert kept(decisions) == [2, 3]
    assert decisions[1] == decisions[4] == decisions[0] == "not_top"


def test_threshold_beats_rank():
    items = rated((3, 3.9), (5, 4.2), (5, 4.1))
    decisions = select(items, SelectConfig(threshold=5, top=2))
    assert decisions[0] == "below_threshold" and kept(decisions) == [1, 2]


def test_top_frac_counts_over_all_rated():
    items = rated(*[(5, 5 - i / 100) for i in range(10)])
    assert kept(select(items, SelectConfig(threshold=1, top_frac=0.3))) == [0, 1, 2]
    assert kept(select(items, SelectConfig(threshold=1, top_frac=0.05))) == []  # floor(0.5) = 0
    assert len(kept(select(items, SelectConfig(threshold=1, top_frac=1.0)))) == 10


def test_ties_without_logprobs_are_broken_by_id():
    items = [Rated(key=k, id=k, score=5, score_expected=None) for k in ("b", "a", "c")]
    assert kept(select(items, SelectConfig(top=2))) == ["a", "b"]


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 6}, {"top": 3, "top_frac": 0.5},
                                    {"top_frac": 0.0}, {"top_frac": 1.5}, {"top": -1}])
def test_bad_selection_settings(kwargs):
    with pytest.raises(UsageError):
        SelectConfig(**kwargs)
