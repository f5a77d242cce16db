"""A reasoning model's thinking is told apart from its answer in every form it comes in
(generators/core/reasoning.py), once, by the engine: stages only ever see the visible answer."""
from __future__ import annotations

import asyncio

from generators.backends.base import Backend, ChatRequest, ChatResult
from generators.backends.cache import ResponseCache
from generators.core.accounting import ITEM_USAGE, empty_usage
from generators.core.engine import Engine
from generators.core.reasoning import Split, cut, separate, split


def test_an_inline_block_at_the_start_is_thinking_and_the_rest_is_the_answer():
    assert split("<think>The user wants practical advice.</think>Rest, ice.") == \
        Split("Rest, ice.", "The user wants practical advice.", True)
    assert split("  <THINK>\nplan\n</think>\n\nAnswer") == Split("Answer", "plan", True)


def test_a_closing_tag_alone_ends_thinking_the_template_opened_in_the_prompt():
    assert split("the template opened it</think>\nAnswer") == Split("Answer", "the template opened it", True)


def test_thinking_that_never_closed_leaves_no_answer():
    assert split("<think>Score: 2 ... no wait, maybe") == Split("", "Score: 2 ... no wait, maybe", False)


def test_text_without_thinking_or_with_a_block_in_the_middle_is_left_alone():
    assert split("Plain answer.") == Split("Plain answer.", None, True)
    middle = "An answer that shows <think>tags</think> as an example."
    assert split(middle) == Split(middle, None, True)


def test_separate_moves_inline_thinking_and_estimates_its_tokens():
    result = separate(ChatResult(text="<think>abcdefgh</think>ab", finish="stop", completion_tokens=10))
    assert (result.text, result.reasoning, result.reasoning_truncated) == ("ab", "abcdefgh", False)
    assert result.reasoning_tokens == 8  # 8 of 10 characters: the server did not count them
    assert separate(result) is result  # once is enough: a cached answer passes through


def test_separate_keeps_a_server_count_and_marks_field_thinking_cut_by_max_tokens():
    field = ChatResult(text="", finish="length", completion_tokens=50, reasoning="thinking...", reasoning_tokens=50)
    out = separate(field)
    assert out.reasoning_truncated and out.reasoning_tokens == 50 and cut(out)
    inline = separate(ChatResult(text="<think>still going", finish="stop", completion_tokens=3))
    assert inline.reasoning_truncated and inline.text == "" and cut(inline)
    empty = separate(ChatResult(text="<think>\n\n</think>\n\nHi", finish="stop"))
    assert (empty.text, empty.reasoning, empty.reasoning_tokens) == ("Hi", None, 0)  # Qwen3 with thinking off


def test_reasoning_fields_stay_out_of_cached_answers_without_them():
    assert "reasoning" not in ChatResult(text="a", finish="stop").to_json()
    data = ChatResult(text="a", finish="stop", reasoning="r", reasoning_tokens=2).to_json()
    assert ChatResult.from_json(data).reasoning == "r" and data["reasoning_tokens"] == 2


class Thinker(Backend):
    """A backend that answers with inline thinking, as vLLM without a reasoning parser does."""

    name, model = "thinker", "thinker-1"

    async def complete(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text="<think>Score: 2 ... no wait</think>Score: 5", finish="stop",
                          prompt_tokens=4, completion_tokens=10)


def test_the_engine_splits_once_books_reasoning_tokens_and_caches_the_split_answer(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    engine = Engine(Thinker(), cache=cache)
    usage = empty_usage()
    ITEM_USAGE.set(usage)
    request = ChatRequest.of([{"role": "user", "content": "rate"}])
    first = asyncio.run(engine.complete(request))
    again = asyncio.run(engine.complete(request))
    assert first.text == again.text == "Score: 5" and again.reasoning == "Score: 2 ... no wait" and again.cached
    assert usage["reasoning_tokens"] == first.reasoning_tokens == 7 and engine.accounting.reasoning_tokens == 7
    assert usage["completion_tokens"] == 10  # reasoning tokens are part of them, priced with them


def test_the_transcript_parser_takes_think_blocks_out_of_turns():
    from generators.selfchat.parser import parse_transcript

    parsed = parse_transcript("[Human] Hi?\n[AI] <think>greet back</think>Hello!\n[Human] Bye?\n[AI] Bye!")
    assert [m["content"] for m in parsed.messages] == ["Hi?", "Hello!", "Bye?", "Bye!"]
    assert parsed.reasoning == ["greet back", None] and parsed.reject is None
    cut = parse_transcript("[Human] Hi?\n[AI] <think>never closed", truncated=True)
    assert cut.messages == [] and cut.reject == "truncated_reasoning"
