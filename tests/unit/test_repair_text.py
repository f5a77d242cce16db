"""repair_text: lone UTF-16 surrogates made U+FFFD and counted; the response cache recovers
from a write that failed."""
from __future__ import annotations

import json

import pytest

from generators.backends.base import ChatResult
from generators.backends.cache import ResponseCache
from generators.core.engine import repaired
from generators.core.io import dumps, read_lines
from generators.core.text import repair_text


def test_lone_surrogates_become_replacement_characters_and_are_counted():
    text, count = repair_text("cut \ud83d here, and \ude00 there")
    assert (text, count) == ("cut \ufffd here, and \ufffd there", 2)
    text.encode("utf-8")
    assert repair_text("a split pair \ud83d\ude00 joins") == ("a split pair \U0001F600 joins", 0)
    assert repair_text("\ufffd already there") == ("\ufffd already there", 0)
    clean = {"messages": [{"content": "fine"}], "n": 3}
    assert repair_text(clean)[0] is clean
    fixed, count = repair_text({"k\ud83d": ["x\ud83d", ("\udc00",), 3, None]})
    assert (fixed, count) == ({"k\ufffd": ["x\ufffd", ("\ufffd",), 3, None]}, 3)


def test_an_answer_is_repaired_before_anyone_sees_it():
    result = repaired(ChatResult(text="half \ud83d", finish="stop",
                                 logprobs=[{"token": " \ud83d", "logprob": -1.0, "top": {" \ud83d": -1.0}}]))
    assert result.text == "half \ufffd" and result.repaired_text == 1
    assert result.logprobs == [{"token": " \ufffd", "logprob": -1.0, "top": {" \ufffd": -1.0}}]
    assert ChatResult.from_json(json.loads(json.dumps(result.to_json()))).repaired_text == 1
    assert "repaired_text" not in ChatResult(text="fine", finish="stop").to_json()


def test_lines_read_back_are_repaired_and_counted_in_meta(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x\ud83d", "meta": {"item": "a"}}) + "\n", "utf-8")
    [(_, line)] = list(read_lines(path))
    assert line == {"id": "a", "text": "x\ufffd", "meta": {"item": "a", "repaired_text": 1}}


def test_a_line_written_never_holds_a_lone_surrogate():
    assert dumps({"reason": "server said \ud83d"}).encode("utf-8") == '{"reason":"server said \ufffd"}'.encode()


def test_the_cache_recovers_from_a_failed_write(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with pytest.raises(UnicodeEncodeError):  # an answer the engine no longer lets through
        cache.put("bad", ChatResult(text="half \ud83d", finish="stop"))
        cache.flush()
    cache.put("good", ChatResult(text="whole", finish="stop"))
    cache.flush()  # not "cannot start a transaction within a transaction"
    cache.close()
    again = ResponseCache(tmp_path / "cache.sqlite")
    assert again.get("good").text == "whole" and again.get("bad") is None
    again.close()
