"""Prompt caching on the wire: a request's cache hint goes to OpenAI as `prompt_cache_key` and to
Anthropic as `cache_control` on the system block, never into the response cache's key; what the
provider's cache served is booked and priced at its own rates."""
from __future__ import annotations

import asyncio

import pytest

from generators.backends import openai_wire
from generators.backends.anthropic_backend import AnthropicBackend
from generators.backends.base import ChatRequest, Sampling
from generators.backends.cache import cache_key
from generators.backends.openai_backend import OpenAIBackend
from generators.core.accounting import Accounting
from generators.core.engine import Engine
from generators.core.prices import lookup_price
from tests.anthropic_server import AnthropicServer
from tests.chat_server import ChatServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is rust"}]


def ask(engine: Engine, requests: list[ChatRequest]) -> None:
    async def go() -> None:
        try:
            for request in requests:
                await engine.complete(request)
        finally:
            await engine.aclose()
    asyncio.run(go())


def test_the_hint_is_no_part_of_the_request_identity():
    plain, hinted = ChatRequest.of(MESSAGES, Sampling(seed=1)), ChatRequest.of(MESSAGES, Sampling(seed=1),
                                                                                  cache_hint="item-1")
    assert plain == hinted and hash(plain) == hash(hinted) and hinted.cache_hint == "item-1"
    assert cache_key("openai", "m", plain, endpoint="http://x") == cache_key("openai", "m", hinted, endpoint="http://x")


def test_openai_sends_the_hint_as_prompt_cache_key_and_books_cached_tokens_at_the_cached_rate():
    assert "prompt_cache_key" not in openai_wire.params(ChatRequest.of(MESSAGES), "m")
    with ChatServer(cached_tokens=3, reasoning_tokens=4) as server:
        backend = OpenAIBackend(model="gpt-4.1", base_url=server.base_url, api_key="k", retries=0)
        engine = Engine(backend, accounting=Accounting(model="gpt-4.1", price=lookup_price("gpt-4.1")))
        ask(engine, [ChatRequest.of(MESSAGES, cache_hint="dialog-7")])
        usage = server.usages[0]
        assert server.cache_keys == ["dialog-7"]
    acc = engine.accounting
    assert acc.cache_read_tokens == 3 and acc.completion_tokens == usage["completion_tokens"]
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]  # 4 reasoning tokens inside
    assert acc.cost == pytest.approx(((prompt - 3) * 2.00 + 3 * 0.50 + completion * 8.00) / 1e6)


def test_anthropic_marks_the_system_block_of_a_hinted_request_and_prices_cache_writes():
    with AnthropicServer(cache_read_tokens=5, cache_write_tokens=2) as server:
        backend = AnthropicBackend(model="claude-haiku-4-5", base_url=server.url, api_key="fake-anthropic-key",
                                   retries=0)
        engine = Engine(backend, accounting=Accounting(model="claude-haiku-4-5",
                                                       price=lookup_price("claude-haiku-4-5")))
        ask(engine, [ChatRequest.of(MESSAGES, cache_hint="dialog-7"), ChatRequest.of(MESSAGES)])
        hinted, plain = server.messages
    assert hinted["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert plain["system"] == "Be brief."  # without a hint the body is as it always was
    acc = engine.accounting
    words = len("Be brief.\nwhat is rust".split())  # input_tokens; the prompt is that plus reads and writes
    assert acc.prompt_tokens == 2 * (words + 7) and acc.cache_read_tokens == 10 and acc.cache_write_tokens == 4
    per_request = (words * 1.00 + 5 * 0.10 + 2 * 1.25) / 1e6
    assert acc.cost == pytest.approx(2 * per_request + acc.completion_tokens * 5.00 / 1e6)


def test_a_server_that_refuses_prompt_cache_key_gets_the_requests_without_it():
    """A strict OpenAI-compatible server answers 400 to a field it does not know: that request is
    sent again without the key, and no later request carries it; nothing fails."""
    with ChatServer(refuse_fields=("prompt_cache_key",)) as server:
        backend = OpenAIBackend(model="m", base_url=server.base_url, api_key="k", retries=0)
        engine = Engine(backend)
        ask(engine, [ChatRequest.of(MESSAGES, cache_hint="dialog-1"),
                     ChatRequest.of(MESSAGES, Sampling(seed=2), cache_hint="dialog-2")])
        assert server.cache_keys == ["dialog-1", None, None] and server.by_status == {400: 1, 200: 2}
    assert engine.accounting.requests == 2 and engine.accounting.failed == 0
