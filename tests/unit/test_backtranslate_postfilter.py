"""The instruction post-filter: cleaning what the backward model adds, and each reject reason."""
from __future__ import annotations

import pytest

from generators.backtranslate.postfilter import (Candidate, InstructionFilter, PostFilterConfig, clean_instruction,
                                                 is_request, longest_common_run)
from generators.errors import UsageError

SEGMENT = ("Boiling eggs\nPut the eggs in a pot of cold water and bring it to a rolling boil, then turn "
           "off the heat and leave them covered for nine minutes before cooling them in ice water so "
           "the shells come off cleanly.")


@pytest.mark.parametrize("raw,clean", [
    ('Instruction: "How do I boil an egg?"', "How do I boil an egg?"),
    ("**Question:** How long do eggs boil?", "How long do eggs boil?"),
    ("Sure! Here is the most likely request:\nExplain how to boil eggs.", "Explain how to boil eggs."),
    ("\u201cWhat is a soft-boiled egg?\u201d", "What is a soft-boiled egg?"),
    ("User's request: 'Boil an egg for me.'", "Boil an egg for me."),
    ('"Eggs" or "toast"?', '"Eggs" or "toast"?'),  # not one quoted string: left alone
    ("  How do I boil an egg?  ", "How do I boil an egg?"),
])
def test_clean_instruction_strips_labels_and_quotes(raw, clean):
    assert clean_instruction(raw) == clean


@pytest.mark.parametrize("text,expected", [
    ("How do I boil an egg", True), ("Explain how eggs boil.", True), ("Is it safe to eat raw eggs", True),
    ("I need a recipe for soft-boiled eggs.", True), ("In two sentences, describe a boiled egg.", True),
    ("Eggs are boiled for nine minutes?", True), ("The text explains how to boil eggs.", False),
    ("Boiled eggs.", False), ("This answer is about cooking.", False), ("I like eggs.", False),
])
def test_is_request(text, expected):
    assert is_request(text) is expected


def test_each_reason():
    f = InstructionFilter()
    check = lambda text, **kw: f.check(Candidate(text, SEGMENT, "Boiling eggs", **kw))  # noqa: E731
    assert check("") == "empty_instruction"
    assert check("How do I boil eggs?", finish="length") == "instruction_truncated"
    assert check("Why " + "really " * 300 + "?") == "instruction_too_long"
    copied = "Put the eggs in a pot of cold water and bring it to a rolling boil, then turn off the heat"
    assert check(copied) == "copies_segment"
    assert check("The passage describes cooking.") == "not_a_request"
    assert check("How do I boil eggs so the shells come off cleanly?") is None
    assert check("Boiling eggs?") is None  # the header as a question is a fair instruction


def test_thresholds_are_configurable():
    ten_words = "Put the eggs in a pot of cold water and bring?"
    assert InstructionFilter().check(Candidate(ten_words, SEGMENT)) is None
    strict = InstructionFilter(PostFilterConfig(copy_run=8))
    assert strict.check(Candidate(ten_words, SEGMENT)) == "copies_segment"
    loose = InstructionFilter(PostFilterConfig(max_chars=5000, require_request=False))
    assert loose.check(Candidate("The passage describes cooking.", SEGMENT)) is None
    assert loose.check(Candidate("Why " + "really " * 300 + "?", SEGMENT)) is None
    with pytest.raises(UsageError, match="max-instruction-chars"):
        PostFilterConfig(max_chars=0)


def test_longest_common_run():
    assert longest_common_run("a b c d".split(), "x a b c y".split()) == 3
    assert longest_common_run([], ["a"]) == 0
