"""Every filter has the one shape (name, reasons with their meanings, check), the catalogue is
what the filter classes declare plus the reasons stages decide, and docs/filters.md carries it as
it is. Run as a script, this module rewrites that table: `.venv/bin/python -m tests.unit.test_filtering`."""
from __future__ import annotations

import pytest

from curation.decontaminate import Decontaminator
from curation.dedup import InstructionDedup
from curation.filters import RECORD_FILTERS, record_chain
from curation.prefilter import DuplicateIds, Prefilter
from generators.backtranslate.postfilter import INSTRUCTION_FILTERS, Candidate, instruction_chain
from generators.core import filtering
from generators.core.filtering import (REASONS, STAGE_REASONS, Filter, FilterBase, FilterChain, build_chain,
                                       reasons_table)
from generators.inputs.corpus.filters import SEGMENT_FILTERS, segment_chain
from generators.selfchat.filters import DIALOG_FILTERS
from tests.helpers import REPO

FAMILIES = {"dialog": DIALOG_FILTERS, "instruction": INSTRUCTION_FILTERS, "record": RECORD_FILTERS,
            "segment": SEGMENT_FILTERS}
BUILD = {**{name: build_chain for name in FAMILIES}, "segment": lambda family: segment_chain()}  # from its config
FILTERS = [*(f for name, family in FAMILIES.items() for f in BUILD[name](family).filters),
           InstructionDedup(), Decontaminator(["What is the capital city of France and why?"]), DuplicateIds()]
DOCS = REPO / "docs" / "filters.md"
BEGIN, END = "<!-- reasons: generated from REASONS -->\n", "\n<!-- reasons: end -->"


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.name)
def test_each_filter_has_the_one_shape_and_catalogued_reasons(flt):
    assert isinstance(flt, Filter)
    assert flt.name and flt.reasons
    assert {reason: REASONS.get(reason) for reason in flt.reasons} == dict(flt.reasons)  # its meanings, catalogued


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_builds_every_class_by_default_and_names_each_once(name):
    chain = BUILD[name](FAMILIES[name])
    assert len(chain.filters) == len(FAMILIES[name])
    names = [f.name for f in chain.filters]
    assert len(set(names)) == len(names)


def test_every_catalogued_reason_says_what_it_means():
    assert all(meaning and meaning != "?" for meaning in REASONS.values())


def test_the_catalogue_is_the_filters_reasons_and_the_stages_own():
    given = {reason for flt in FILTERS for reason in flt.reasons}
    assert set(REASONS) == given | set(STAGE_REASONS) and not given & set(STAGE_REASONS)


def test_a_new_filter_class_brings_its_reason_and_a_clash_fails(monkeypatch):
    monkeypatch.setattr(filtering, "REASONS", dict(REASONS))  # this test's classes stay out of the real one

    class BannedWord(FilterBase):
        name = "banned_word"
        reasons = {"banned_word": "a dialog uses the --banned-word word"}

        def check(self, chat: object) -> str | None:
            return None

    assert filtering.meanings(["banned_word"]) == {"banned_word": "a dialog uses the --banned-word word"}
    with pytest.raises(TypeError, match="'duplicate' already means"):
        type("Clash", (FilterBase,), {"name": "clash", "reasons": {"duplicate": "something else"}})
    with pytest.raises(TypeError, match="reasons must be"):
        type("Bare", (FilterBase,), {"name": "bare", "reasons": ("bare",)})
    assert "banned_word" not in REASONS


def test_the_docs_carry_the_catalogue_as_it_is():
    """docs/filters.md holds reasons_table() between its markers; if not, rewrite it with
    `.venv/bin/python -m tests.unit.test_filtering` (this module loads every filter family)."""
    page = DOCS.read_text("utf-8")
    assert BEGIN in page and END in page
    assert page.split(BEGIN, 1)[1].split(END, 1)[0] == reasons_table(), \
        "docs/filters.md is out of step: run .venv/bin/python -m tests.unit.test_filtering"


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
    assert [f.name for f in memory.filters] == ["duplicate", "semantic_duplicate"]
    assert "duplicate" not in alone.reasons and "semantic_duplicate" not in alone.reasons
    with pytest.raises(ValueError):
        FilterChain([*memory.filters, *alone.filters]).split()


def write_docs_table() -> None:
    """Put reasons_table() between the markers of docs/filters.md."""
    page = DOCS.read_text("utf-8")
    head, rest = page.split(BEGIN, 1)
    DOCS.write_text(head + BEGIN + reasons_table() + END + rest.split(END, 1)[1], "utf-8")


if __name__ == "__main__":
    write_docs_table()
