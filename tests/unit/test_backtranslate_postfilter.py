"""The instruction post-filter: cleaning what the backward model adds, salvaging the question
inside meta-text, and each reject reason."""
from __future__ import annotations

import pytest

from generators.backtranslate.postfilter import (Candidate, CopiesSegment, RestatesAnswer, TooLongInstruction,
                                                 clean_instruction, instruction_chain, is_meta, is_request,
                                                 is_statement, judge_instruction, longest_common_run,
                                                 salvage_question, split_heading)
from generators.core.errors import UsageError

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
    ("Eggs are boiled for nine minutes?", True), ("You will act as a chef. Plan a brunch menu.", True),
    ("The shells stick. Please help.", True), ("There are many egg dishes, so let's list some.", True),
    ("I can't get the shells off cleanly.", True), ("Categorize this email:", True),
    ("The text explains how to boil eggs.", False), ("Boiled eggs.", False), ("I like eggs.", False),
])
def test_is_request(text, expected):
    assert is_request(text) is expected


@pytest.mark.parametrize("text,expected", [
    ("I like eggs.", True), ("It is a rare disease that affects the eyes.", True),
    # titles and problem statements are how people ask: they are no statements
    ("SQL query to select the latest row per group", False), ("Merge two MySQL tables", False),
    ("FULL JOIN with =any doesn't use indexes", False), ("Boiled eggs.", False),
    ("I have a dog.\nWhat should I feed it?", False), ("The eggs crack when boiled. Why?", False),
])
def test_is_statement(text, expected):
    assert is_statement(text) is expected


@pytest.mark.parametrize("text", [
    "This text is an excellent answer to the question: Is Felty's syndrome inherited?",
    "The passage describes the symptoms of a rare disease.",
    "Here is a question a user might ask about eggs.",
    "The user asks how to boil eggs.",
    "A person might want to know how long eggs boil.",
    "The most likely question is how to boil eggs.",
    "What is the user's question or instruction?",
    "What is the most appropriate question to ask a user who sent the text?",
    "Write the single question or instruction a user most likely sent.",
    "Based on the text, the user wants egg advice.",
])
def test_meta_text_is_recognised(text):
    assert is_meta(text)


@pytest.mark.parametrize("text", [
    "The given article should be checked for scientific errors and corrected.",
    "What is the best question to ask in a job interview?",
    "A query that selects the number of rows in each table",
    "The wireless signal in my house is weak in some rooms. How can I improve it?",
    "This AI is channeling pure love. Write a letter in its voice.",
    "Write a question about photosynthesis for a quiz.",
])
def test_real_instructions_are_not_meta(text):
    assert not is_meta(text)


@pytest.mark.parametrize("raw,question", [
    ("This text is an excellent answer to the question: Is Felty's syndrome inherited?",
     "Is Felty's syndrome inherited?"),
    ('The user asks: "How long should eggs boil?"', "How long should eggs boil?"),
    ("Here is a question: Explain how to peel a boiled egg.", "Explain how to peel a boiled egg."),
    ("This text answers the question what are the signs of a bad egg? It also covers storage.",
     "what are the signs of a bad egg?"),
])
def test_salvage_question(raw, question):
    assert salvage_question(raw) == question


@pytest.mark.parametrize("raw", [
    "This text is an excellent answer to the question: \"What is the single question or instruction that "
    "would most likely be asked to a user who sent this text?\"",
    "The passage describes how eggs are boiled.",
    "What is the user's question or instruction?",
])
def test_meta_without_a_real_question_is_not_salvaged(raw):
    assert salvage_question(raw) is None
    verdict = judge_instruction(raw, SEGMENT, "Boiling eggs")
    assert verdict.reason == "meta_instruction" and not verdict.salvaged


def test_judge_salvages_and_keeps_the_question():
    verdict = judge_instruction("Sure! This text is an excellent answer to the question: How long do I boil eggs?",
                                SEGMENT, "Boiling eggs")
    assert verdict == type(verdict)("How long do I boil eggs?", None, True)


def test_a_salvaged_question_is_checked_again():
    copied = ("The text answers the question: Why put the eggs in a pot of cold water and bring it to a rolling "
              "boil, then turn off the heat?")
    verdict = judge_instruction(copied, SEGMENT, "Boiling eggs")
    assert verdict.reason == "copies_segment" and not verdict.salvaged


def test_salvage_can_be_turned_off():
    raw = "This text is an excellent answer to the question: How long do I boil eggs?"
    assert judge_instruction(raw, SEGMENT, salvage=False).reason == "meta_instruction"


def test_judge_cleans_like_clean_instruction():
    verdict = judge_instruction('Instruction: "How do I boil an egg?"', SEGMENT, "Boiling eggs")
    assert verdict == type(verdict)("How do I boil an egg?", None, False)


def test_each_reason():
    f = instruction_chain()
    check = lambda text, **kw: f.check(Candidate(text, SEGMENT, "Boiling eggs", **kw))  # noqa: E731
    assert check("") == "empty_instruction"
    assert check("How do I boil eggs?", finish="length") == "instruction_truncated"
    assert check("Why " + "really " * 300 + "?") == "instruction_too_long"
    assert check("The passage describes cooking.") == "meta_instruction"
    copied = "Put the eggs in a pot of cold water and bring it to a rolling boil, then turn off the heat"
    assert check(copied) == "copies_segment"
    assert check("I leave boiled eggs covered for nine minutes, then cool them in ice water.") == "restates_answer"
    assert check("I like toast.") == "not_a_request"
    assert check("How do I boil eggs so the shells come off cleanly?") is None
    assert check("Boiling eggs?") is None  # the header as a question is a fair instruction
    assert check("Boiling eggs without cracking the shells") is None  # a title is a fair instruction


def test_a_heading_is_not_a_copy():
    page = ("What are the signs and symptoms of X-linked Charcot-Marie-Tooth disease type 3? The list below "
            "gives the signs and symptoms for X-linked Charcot-Marie-Tooth disease type 3 and how often they occur.")
    assert split_heading(page, "")[0].startswith("What are the signs")
    flt = instruction_chain()
    assert flt.check(Candidate("What are the symptoms of X-linked Charcot-Marie-Tooth disease type 3?", page)) is None
    lined = "Caring for cast iron pans after every single use at home\nDry the pan, oil it thinly and heat it."
    assert flt.check(Candidate("Caring for cast iron pans after every single use at home", lined)) is None


def test_thresholds_follow_the_flags():
    ten_words = "Why put the eggs in a pot of cold water?"
    assert instruction_chain().check(Candidate(ten_words, SEGMENT)) is None
    strict = instruction_chain({"max_copied_words": 7})
    assert strict.check(Candidate(ten_words, SEGMENT)) == "copies_segment"
    loose = instruction_chain({"max_instruction_chars": 5000, "allow_non_requests": True})
    assert loose.check(Candidate("I like toast.", SEGMENT)) is None
    assert loose.check(Candidate("Why " + "really " * 300 + "?", SEGMENT)) is None
    assert "not_a_request" not in [f.name for f in loose.filters]  # turned off
    with pytest.raises(UsageError, match="max-instruction-chars"):
        TooLongInstruction(0)
    with pytest.raises(UsageError, match="max-copied-words"):
        CopiesSegment(run=1)
    with pytest.raises(UsageError, match="restate share"):
        RestatesAnswer(share=0)


def test_longest_common_run():
    assert longest_common_run("a b c d".split(), "x a b c y".split()) == 3
    assert longest_common_run([], ["a"]) == 0
    assert longest_common_run("a b c d".split(), "x a b c y".split(), free={"b"}) == 2


FANCONI = ("Fanconi anemia (FA) is an inherited disease. The term inherited means that the disease is passed "
           "from parents to children through genes.")


@pytest.mark.parametrize("instruction,reason", [
    # a trained backward model's questions with no question in them (real outputs, tests/data/relevance/)
    ("Which of the following describes Fanconi anemia?", "options_missing"),
    ("How is Fanconi anemia ?", "verbless_question"),
    ("The disease is passed from parents to children through genes?", "statement_as_question"),
    # the requests they resemble pass
    ("Which of the following describes Fanconi anemia: a blood disease or a skin disease?", None),
    ("Which of these treats Fanconi anemia?\nA. transfusion\nB. rest", None),
    ("How is Fanconi anemia inherited?", None),
    ("How is Fanconi anemia different from aplastic anemia?", None),
    ("Is Fanconi anemia an inherited disease?", None),
    ("Fanconi anemia in adults?", None),  # a title with a question mark, not a sentence of the page
])
def test_questions_with_no_question_in_them(instruction, reason):
    assert instruction_chain().check(Candidate(instruction, FANCONI)) == reason
