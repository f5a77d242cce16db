"""The engine's OpenAI path, through the real openai client against the loopback server."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest

from generators.accounting import Accounting, BudgetReached
from generators.backends.base import ChatRequest, RequestFailed, Sampling
from generators.backends.cache import ResponseCache
from generators.backends.openai_backend import OpenAIBackend
from generators.backends.ratelimit import RateLimiter, parse_duration
from generators.engine import Engine
from generators.errors import FatalError
from tests.chat_server import ChatServer


def make_engine(server: ChatServer | None, *, base_url: str | None = None, cache=None, retries: int = 4,
                timeout_s: float = 5.0, key: str = "sk-test", accounting=None, **kw) -> Engine:
    backend = OpenAIBackend(model="teacher", base_url=base_url or server.base_url, api_key=key,
                            concurrency=8, retries=retries, timeout_s=timeout_s, backoff_initial_s=0.01,
                            backoff_max_s=0.05, **kw)
    return Engine(backend, cache=cache, accounting=accounting)


def ask(engine: Engine, text: str = "hello there", **sampling) -> object:
    async def go():
        try:
            return await engine.complete(ChatRequest.of([{"role": "user", "content": text}], Sampling(**sampling)))
        finally:
            await engine.aclose()
    return asyncio.run(go())


def test_answer_and_usage_are_returned_and_counted():
    with ChatServer() as server:
        engine = make_engine(server)
        result = ask(engine, "what is rust", temperature=0.5, max_tokens=50, seed=3)
        assert result.text and result.finish == "stop"
        assert result.prompt_tokens > 0 and result.completion_tokens > 0
        assert engine.accounting.requests == 1
        assert engine.accounting.completion_tokens == result.completion_tokens
        body = server.bodies[0]
        assert body["temperature"] == 0.5 and body["max_tokens"] == 50 and body["seed"] == 3
        assert server.authorizations[0] == "Bearer sk-test"


def test_429_with_retry_after_is_retried_and_pauses_everyone():
    with ChatServer(rules=[{"status": 429, "retry_after": 0.2, "times": 2}]) as server:
        engine = make_engine(server)
        result = ask(engine)
        assert result.text
        assert server.by_status[429] == 2 and server.by_status[200] == 1
        assert engine.backend.limiter.paused_until > 0  # the Retry-After became a shared pause


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(status):
    with ChatServer(rules=[{"status": status, "times": 2}]) as server:
        result = ask(make_engine(server))
        assert result.text and server.requests_total == 3


def test_other_4xx_fail_the_item_without_retry():
    with ChatServer(rules=[{"status": 400, "error": {"code": "context_length_exceeded"}}]) as server:
        engine = make_engine(server)
        with pytest.raises(RequestFailed) as info:
            ask(engine)
        assert info.value.status == 400 and "context_length_exceeded" in (info.value.last_response or "")
        assert server.requests_total == 1


def test_refused_key_stops_the_run():
    with ChatServer(api_key="sk-right") as server:
        with pytest.raises(FatalError, match="refused the API key"):
            ask(make_engine(server, key="sk-wrong"))
        assert server.requests_total == 1


def test_timeout_is_retried():
    with ChatServer(rules=[{"delay_s": 2.0, "times": 1}]) as server:
        result = ask(make_engine(server, timeout_s=0.3))
        assert result.text and server.requests_total == 2


def test_malformed_body_is_retried_then_reported_with_the_body():
    with ChatServer(rules=[{"malformed": True, "times": 1}]) as server:
        assert ask(make_engine(server)).text and server.requests_total == 2
    with ChatServer(rules=[{"malformed": True}]) as server:
        with pytest.raises(RequestFailed, match="unreadable response"):
            ask(make_engine(server, retries=2))
        assert server.requests_total == 3


def test_dropped_connection_is_retried():
    with ChatServer(rules=[{"drop": True, "times": 1}]) as server:
        assert ask(make_engine(server)).text and server.requests_total == 2


def test_truncated_answer_reports_length():
    with ChatServer(rules=[{"truncate": 3}]) as server:
        result = ask(make_engine(server))
        assert result.finish == "length" and len(result.text.split()) == 3


def test_unreachable_server_is_a_fatal_one_liner():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FatalError, match="cannot reach the server"):
        ask(make_engine(None, base_url=f"http://127.0.0.1:{port}/v1"))


def test_cache_answers_a_repeated_request_without_the_server(tmp_path):
    with ChatServer() as server:
        first = ask(make_engine(server, cache=ResponseCache(tmp_path / "c.sqlite")), seed=1)
        engine = make_engine(server, cache=ResponseCache(tmp_path / "c.sqlite"))
        again = ask(engine, seed=1)
        assert server.requests_total == 1 and again.cached and again.text == first.text
        assert engine.accounting.cached == 1 and engine.accounting.requests == 0
        ask(make_engine(server, cache=ResponseCache(tmp_path / "c.sqlite")), seed=2)  # other seed, new key
        assert server.requests_total == 2


def test_every_request_failing_stops_the_run():
    with ChatServer(rules=[{"status": 404}]) as server:
        engine = make_engine(server)
        engine.max_consecutive_failures = 3

        async def go():
            try:
                for _ in range(5):
                    try:
                        await engine.complete(ChatRequest.of([{"role": "user", "content": "x"}]))
                    except RequestFailed:
                        pass
            finally:
                await engine.aclose()
        with pytest.raises(FatalError, match="last 3 requests all failed"):
            asyncio.run(go())


def test_token_budget_stops_cleanly():
    with ChatServer() as server:
        engine = make_engine(server, accounting=Accounting(model="teacher", max_tokens=5))
        ask(engine)  # the first request spends past the budget
        with pytest.raises(BudgetReached, match="token budget reached"):
            ask(make_engine(server, accounting=engine.accounting))
        assert server.requests_total == 1


def test_ratelimit_headers_pause_the_limiter():
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
    with ChatServer(rules=[{"headers": headers, "times": 1}]) as server:
        engine = make_engine(server)
        before = time.monotonic()
        ask(engine)
        assert engine.backend.limiter.paused_until >= before + 1.0


def test_rpm_bucket_makes_requests_wait():
    limiter = RateLimiter(rpm=60)  # one a second, a minute's burst
    limiter.requests.level = 0
    assert limiter.requests.wait_time(1) > 0.5


def test_parse_duration_forms():
    assert parse_duration("6m0s") == 360 and parse_duration("20ms") == 0.02
    assert parse_duration("1.5") == 1.5 and parse_duration(None) is None and parse_duration("soon") is None
