"""Every filter has the one shape (name, reasons, check) and names only catalogued reasons."""
from __future__ import annotations

import pytest

from curation.decontaminate import Decontaminator
from curation.dedup import InstructionDedup
from curation.filters import RecordFilter, RecordFilterConfig
from curation.prefilter import DuplicateIds, Prefilter
from generators.backtranslate.postfilter import Candidate, InstructionFilter
from generators.inputs.corpus import SegmentFilterConfig, SegmentPipeline
from generators.core.filtering import REASONS, Filter, FilterChain
from generators.selfchat.filters import DialogFilter, DialogFilterConfig

FILTERS = [DialogFilter(DialogFilterConfig()), RecordFilter(RecordFilterConfig()), InstructionFilter(),
           InstructionDedup(), Decontaminator(["What is the capital city of France and why?"]), DuplicateIds(),
           SegmentPipeline(SegmentFilterConfig())]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.name)
def test_each_filter_has_the_one_shape_and_catalogued_reasons(flt):
    assert isinstance(flt, Filter)
    assert flt.name and flt.reasons
    assert [r for r in flt.reasons if r not in REASONS] == []


def test_every_catalogued_reason_says_what_it_means():
    assert all(meaning and meaning != "?" for meaning in REASONS.values())


def record(question: str, answer: str = "A complete and helpful answer about the topic.") -> dict:
    return {"id": question, "messages": [{"role": "user", "content": question},
                                         {"role": "assistant", "content": answer}]}


def test_a_chain_takes_the_first_reason_and_counts_every_verdict():
    chain = FilterChain([DuplicateIds(), RecordFilter(RecordFilterConfig()), InstructionDedup()])
    verdicts = [chain.check(r) for r in (record("How do tides work?"), record("How do tides work?"),
                                          record("Hi"), record("HOW do tides   work"))]
    assert verdicts == [None, "duplicate_id", "too_short", "duplicate"]
    assert chain.counts == {"passed": 1, "duplicate_id": 1, "too_short": 1, "duplicate": 1}
    assert set(chain.summary()) == set(chain.reasons) and chain.summary()["not_english"] == 0


def test_the_prefilter_is_a_chain_and_keeps_the_decontamination_match():
    pre = Prefilter(decontaminator=Decontaminator(["Explain the rules of chess to a complete beginner please"],
                                                  ngram=4, overlap=0.5))
    decision = pre.decide(record("Explain the rules of chess to a complete beginner please"))
    assert decision.reason == "contaminated_ngram" and decision.detail["eval_index"] == 0
    assert pre.decide(record("Why is the sky blue in the day?")).reason is None
    assert pre.counts == {"contaminated_ngram": 1, "passed": 1}


def test_the_instruction_filter_checks_a_candidate():
    flt = InstructionFilter()
    assert flt.check(Candidate("How do I boil an egg?", "Boil water, add the egg, wait ten minutes.")) is None
    assert flt.check(Candidate("How do I boil an egg?", "text", finish="length")) == "instruction_truncated"
