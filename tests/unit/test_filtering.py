"""Every filter has the one shape (name, reasons, check), names only catalogued reasons, and
docs/filters.md carries the catalogue as it is."""
from __future__ import annotations

import pytest

from curation.decontaminate import Decontaminator
from curation.dedup import InstructionDedup
from curation.filters import RECORD_FILTERS, record_chain
from curation.prefilter import DuplicateIds, Prefilter
from generators.backtranslate.postfilter import INSTRUCTION_FILTERS, Candidate, instruction_chain
from generators.inputs.corpus import SegmentFilterConfig, SegmentPipeline
from generators.core.filtering import REASONS, Filter, FilterChain, build_chain, reasons_table
from generators.selfchat.filters import DIALOG_FILTERS
from tests.helpers import REPO

FAMILIES = {"dialog": DIALOG_FILTERS, "instruction": INSTRUCTION_FILTERS, "record": RECORD_FILTERS}
FILTERS = [*(f for family in FAMILIES.values() for f in build_chain(family).filters),
           InstructionDedup(), Decontaminator(["What is the capital city of France and why?"]), DuplicateIds(),
           SegmentPipeline(SegmentFilterConfig())]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.name)
def test_each_filter_has_the_one_shape_and_catalogued_reasons(flt):
    assert isinstance(flt, Filter)
    assert flt.name and flt.reasons
    assert [r for r in flt.reasons if r not in REASONS] == []


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_builds_every_class_by_default_and_names_each_once(name):
    chain = build_chain(FAMILIES[name])
    assert len(chain.filters) == len(FAMILIES[name])
    names = [f.name for f in chain.filters]
    assert len(set(names)) == len(names)


def test_every_catalogued_reason_says_what_it_means():
    assert all(meaning and meaning != "?" for meaning in REASONS.values())


def test_the_docs_carry_the_catalogue_as_it_is():
    """docs/filters.md holds reasons_table() between its markers: regenerate it from REASONS."""
    page = (REPO / "docs" / "filters.md").read_text("utf-8")
    begin, end = "<!-- reasons: generated from REASONS -->\n", "\n<!-- reasons: end -->"
    assert begin in page and end in page
    assert page.split(begin, 1)[1].split(end, 1)[0] == reasons_table()


def record(question: str, answer: str = "A complete and helpful answer about the topic.") -> dict:
    return {"id": question, "messages": [{"role": "user", "content": question},
                                         {"role": "assistant", "content": answer}]}


def test_a_chain_takes_the_first_reason_and_counts_every_verdict():
    chain = FilterChain([DuplicateIds(), *record_chain().filters, InstructionDedup()])
    verdicts = [chain.check(r) for r in (record("How do tides work?"), record("How do tides work?"),
                                          record("Hi"), record("HOW do tides   work"))]
    assert verdicts == [None, "duplicate_id", "too_short", "duplicate"]
    assert chain.counts == {"passed": 1, "duplicate_id": 1, "too_short": 1, "duplicate": 1}
    assert "not_english" in chain.reasons and "duplicate" in chain.reasons


def test_the_prefilter_is_a_chain_and_keeps_the_decontamination_match():
    pre = Prefilter(decontaminator=Decontaminator(["Explain the rules of chess to a complete beginner please"],
                                                  ngram=4, overlap=0.5))
    decision = pre.decide(record("Explain the rules of chess to a complete beginner please"))
    assert decision.reason == "contaminated_ngram" and decision.detail["eval_index"] == 0
    assert pre.decide(record("Why is the sky blue in the day?")).reason is None
    assert pre.counts == {"contaminated_ngram": 1, "passed": 1}


def test_the_instruction_filter_checks_a_candidate():
    flt = instruction_chain()
    assert flt.check(Candidate("How do I boil an egg?", "Boil water, add the egg, wait ten minutes.")) is None
    assert flt.check(Candidate("How do I boil an egg?", "text", finish="length")) == "instruction_truncated"


def test_a_split_chain_keeps_the_filters_that_remember_for_last():
    alone, memory = build_chain(DIALOG_FILTERS).split()
    assert [f.name for f in memory.filters] == ["duplicate"] and "duplicate" not in alone.reasons
    with pytest.raises(ValueError):
        FilterChain([*memory.filters, *alone.filters]).split()
