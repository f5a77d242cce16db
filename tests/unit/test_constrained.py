"""Constrained output (--constrained): the guide a request carries, its place in the cache key,
the wire's response_format, and the parsers reading the JSON answers a schema asks for."""
from __future__ import annotations

import json
import re

import pytest

from curation.eval.verdict import parse_verdict
from curation.score_parse import parse_score, reasoning_of
from generators.backends import openai_wire
from generators.backends.base import Capabilities, ChatRequest, Sampling
from generators.backends.cache import cache_key
from generators.core.guides import form_of, json_guide, pick, reasoned_regex, retry_messages, score_schema
from generators.selfchat.feedback import parse_scores, scores_regex, scores_schema

LOCAL = Capabilities(guides=frozenset({"regex", "choice"}))
SERVER = Capabilities(guides=frozenset({"json"}))
NONE = Capabilities()


def test_a_guide_is_picked_by_capability_and_off_sends_none():
    regex = reasoned_regex(512)
    assert pick(LOCAL, "auto", regex=regex, json_schema=score_schema()) == ("regex", regex)
    assert pick(SERVER, "auto", regex=regex, json_schema=score_schema()) == json_guide(score_schema())
    assert pick(NONE, "auto", regex=regex, json_schema=score_schema()) is None
    assert pick(LOCAL, "off", regex=regex) is None and pick(SERVER, "off", json_schema=score_schema()) is None
    assert pick(LOCAL, "auto", choice=("choice", "a|b.")) == ("choice", "a|b.")
    assert pick(Capabilities(guides=frozenset({"regex"})), "auto", choice=("choice", "a|b.")) == ("regex", "a|b\\.")


def test_the_reasoned_regex_ends_on_the_score_line_and_fits_max_tokens():
    pattern = reasoned_regex(64)
    assert re.fullmatch(pattern, "Fine answer.\nIt is clear.\nScore: 4")
    assert not re.fullmatch(pattern, "Fine answer.\nScore: 7") and not re.fullmatch(pattern, "Score: 4")
    assert not re.fullmatch(pattern, "x" * 49 + "\nScore: 4")  # the free text is bounded: 64 - 16 chars
    assert reasoned_regex(10) == "Score: [1-5]"
    assert re.fullmatch(reasoned_regex(512, scores_regex(2)), "A is better.\nAnswer 1: 10\nAnswer 2: 3")


def test_the_guide_is_part_of_the_cache_key():
    plain = ChatRequest.of([{"role": "user", "content": "rate"}], Sampling(temperature=0.0))
    guided = ChatRequest.of([{"role": "user", "content": "rate"}],
                            Sampling(temperature=0.0, guide=json_guide(score_schema())))
    assert cache_key("openai", "m", plain) != cache_key("openai", "m", guided)
    assert guided.sampling.describe()["guide"] == json_guide(score_schema())
    assert "guide" not in plain.sampling.describe()


def test_a_json_guide_goes_on_the_wire_as_response_format():
    body = openai_wire.params(ChatRequest.of([{"role": "user", "content": "rate"}],
                                             Sampling(guide=json_guide(score_schema()))), "m")
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "rating", "strict": True, "schema": score_schema()}}
    plain = openai_wire.params(ChatRequest.of([{"role": "user", "content": "rate"}], Sampling()), "m")
    assert "response_format" not in plain
    regex = openai_wire.params(ChatRequest.of([{"role": "user", "content": "x"}], Sampling(guide=("regex", "a"))), "m")
    assert "response_format" not in regex  # a server backend is never given a kind it does not declare


@pytest.mark.parametrize("answer,score,problem", [
    ({"reason": "Clear.", "score": 4}, 4, None),
    ({"score": 5, "reason": "  Ideal.  "}, 5, None),
    ({"reason": "x", "score": 7}, None, "out_of_range"),
    ({"reason": "x", "score": 0}, None, "out_of_range"),
    ({"reason": "x", "score": 4.5}, None, "not_integer"),
    ({"reason": "x", "score": "4"}, None, "not_a_number"),
    ({"reason": "x", "score": True}, None, "not_a_number"),
    ({"reason": "x"}, None, "no_score"),
])
def test_json_ratings_are_read_strictly(answer, score, problem):
    text = json.dumps(answer)
    parsed = parse_score(text)
    assert (parsed.score, parsed.problem) == (score, problem)
    if score is not None:
        assert reasoning_of(text, parsed) == answer["reason"].strip()


def test_text_that_is_not_a_json_object_is_read_as_text():
    assert parse_score('{"reason": "cut short", "sco').problem == "no_score"
    assert parse_score('Reasoning {braces}.\nScore: 3').score == 3
    assert parse_score('[4]').problem == "no_score"


def test_json_verdicts_and_feedback_scores():
    assert parse_verdict('{"reason": "B is right.", "winner": "2"}') == "2"
    assert parse_verdict('{"reason": "same", "winner": "Tie"}') == "tie"
    assert parse_verdict('{"reason": "x", "winner": "3"}') is None and parse_verdict('{"winner": 1}') is None
    assert parse_scores('{"reason": "x", "answer_1": 8, "answer_2": 10}', 2) == [8, 10]
    assert parse_scores('{"reason": "x", "answer_1": 8}', 2) is None
    assert parse_scores('{"reason": "x", "answer_1": 8, "answer_2": 11}', 2) is None
    assert scores_schema(2)["required"] == ["reason", "answer_1", "answer_2"]


def test_the_retry_says_what_was_wrong_and_the_form_wanted():
    messages = [{"role": "user", "content": "Rate this."}]
    retry = retry_messages(messages, "Great!", "it has no score", form_of(None, 'the last line "Score: N"'))
    assert retry[:2] == [*messages, {"role": "assistant", "content": "Great!"}]
    assert retry[2]["role"] == "user"
    assert "it has no score" in retry[2]["content"] and 'the last line "Score: N"' in retry[2]["content"]
    shape = form_of(json_guide(score_schema()), "ignored")
    assert shape == 'a JSON object with "reason": string, "score": integer from 1 to 5'
