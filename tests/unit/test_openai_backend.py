"""The engine's OpenAI path, through the real openai client against the loopback server."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import time

import openai
import pytest

from generators.core.accounting import Accounting, BudgetReached
from generators.backends.base import Capabilities, ChatRequest, RequestFailed, Sampling
from generators.backends.cache import ResponseCache, cache_key
from generators.backends.openai_backend import OpenAIBackend
from generators.backends.ratelimit import RateLimiter, parse_duration, ratelimit_reset, retry_after
from tests.chat_server import HTML_PAGE
from generators.core.engine import Engine
from generators.core.errors import FatalError
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


@pytest.mark.parametrize("retries", [20, 2])
def test_a_server_gone_mid_run_stops_the_run_instead_of_failing_requests(capsys, retries):
    """After an answer, connection failures (5 tries in a row, or a request's last try) are
    a FatalError saying the server is unreachable, not a RequestFailed for errors.jsonl."""
    server = ChatServer().start()
    engine = make_engine(server, retries=retries)

    async def go():
        try:
            assert (await engine.complete(ChatRequest.of([{"role": "user", "content": "first"}]))).text
            server.stop()
            with pytest.raises(FatalError, match="is unreachable.*rerun the same command once the server is back"):
                await engine.complete(ChatRequest.of([{"role": "user", "content": "second"}]))
        finally:
            await engine.aclose()
    asyncio.run(go())
    assert engine.accounting.failed == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "cannot connect to the server" in line]
    assert len(warnings) == 1 and server.base_url.rsplit("/", 1)[0] in warnings[0]


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


TRANSPORTS = ["aiohttp", "httpx"]


def backend_for(server: ChatServer, **kw) -> OpenAIBackend:
    settings = dict(model="teacher", base_url=server.base_url, api_key="sk-test", retries=2, timeout_s=5.0,
                    backoff_initial_s=0.01, backoff_max_s=0.05)
    return OpenAIBackend(**{**settings, **kw})


def ask_backend(backend: OpenAIBackend, *texts: str) -> list:
    """Send each text in turn; the results, or the exception that stopped them."""
    async def go():
        out = []
        try:
            for text in texts:
                out.append(await backend.complete(ChatRequest.of([{"role": "user", "content": text}])))
        finally:
            await backend.aclose()
        return out
    return asyncio.run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("rule", [{"html": True}, {"malformed": True}])
def test_a_200_that_is_not_json_is_retried(transport, rule):
    with ChatServer(rules=[{**rule, "times": 1}]) as server:
        [result] = ask_backend(backend_for(server, transport=transport), "hello")
        assert result.text and server.requests_total == 2 and server.by_status == {200: 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_html_200_fails_the_item_after_retries_keeping_the_body(transport):
    with ChatServer(rules=[{"html": True}]) as server:
        backend = backend_for(server, transport=transport)
        assert backend.transport == transport
        with pytest.raises(RequestFailed, match="unreadable response.*text/html") as info:
            ask_backend(backend, "hello")
        assert server.requests_total == 3  # retries=2: three attempts
        assert info.value.last_response == HTML_PAGE[:2000] and info.value.status is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_json_fails_the_item_keeping_the_body(transport):
    with ChatServer(rules=[{"malformed": True}]) as server:
        with pytest.raises(RequestFailed, match="unreadable response") as info:
            ask_backend(backend_for(server, transport=transport), "hello")
        assert info.value.last_response.startswith('{"id": "chatcmpl-broken"')


@pytest.mark.parametrize("rule,source", [
    ({"status": 429, "retry_after": 86400}, "Retry-After"),
    ({"status": 503, "retry_after": 86400}, "Retry-After"),
    ({"status": 429, "headers": {"retry-after-ms": "86400000"}}, "retry-after-ms"),
    ({"status": 429, "headers": {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "24h"}},
     "x-ratelimit-reset-tokens"),
])
def test_a_wait_past_max_retry_after_stops_the_run_at_once(rule, source):
    with ChatServer(rules=[rule]) as server:
        started = time.monotonic()
        with pytest.raises(FatalError) as info:
            ask_backend(backend_for(server, retries=6), "hello")
        assert time.monotonic() - started < 3 and server.requests_total == 1
    message = info.value.message
    assert f"the server asked to wait 86400 s ({source}), more than --max-retry-after 300 s" in message
    assert "rerun the same command after " in message and " UTC, or raise --max-retry-after" in message
    assert "\n" not in message


def test_a_wait_within_max_retry_after_is_waited():
    with ChatServer(rules=[{"status": 429, "retry_after": 0.3, "times": 1}]) as server:
        started = time.monotonic()
        [result] = ask_backend(backend_for(server, max_retry_after=1.0), "hello")
        assert result.text and time.monotonic() - started >= 0.3 and server.requests_total == 2


def test_a_long_reset_on_a_good_answer_keeps_it_and_stops_the_next_request():
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2h"}
    with ChatServer(rules=[{"headers": headers, "times": 1}]) as server:
        backend = backend_for(server)
        request = ChatRequest.of([{"role": "user", "content": "hello"}])

        async def go():
            try:
                first = await backend.complete(request)
                with pytest.raises(FatalError, match=r"asked to wait 7200 s \(x-ratelimit-reset-requests\)"):
                    await backend.complete(request)
                return first
            finally:
                await backend.aclose()
        started = time.monotonic()
        assert asyncio.run(go()).text
        assert time.monotonic() - started < 3 and server.requests_total == 1


def test_retry_after_and_reset_headers_are_read():
    assert retry_after({"retry-after": "7"}) == (7.0, "Retry-After")
    assert retry_after({"retry-after-ms": "250", "retry-after": "7"}) == (0.25, "retry-after-ms")
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == (0.0, "Retry-After")
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None
    both = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    assert ratelimit_reset(both) == (360.0, "x-ratelimit-reset-tokens")
    assert ratelimit_reset({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"}) is None


def test_the_endpoint_is_part_of_the_cache_key():
    request = ChatRequest.of([{"role": "user", "content": "hi"}], Sampling(seed=1))
    local = cache_key("hf", "m", request)
    one = cache_key("openai", "m", request, endpoint="http://127.0.0.1:8000/v1")
    other = cache_key("openai", "m", request, endpoint="http://127.0.0.1:8001/v1")
    assert one != other and local == cache_key("hf", "m", request, endpoint=None)
    before = json.dumps(["hf", "m", request.messages, request.sampling.describe()], ensure_ascii=False,
                        separators=(",", ":"), sort_keys=True)  # the key before endpoints existed
    assert local == hashlib.sha256(before.encode("utf-8")).hexdigest()


def test_capabilities_are_declared():
    # batch_api belongs to the Batch API's own tests; everything else is declared here
    declared = dataclasses.replace(OpenAIBackend.capabilities, batch_api=False)
    assert declared == Capabilities(prefill=False, logprobs=True, adapters=False, per_request_model=True,
                                    batching=False, local=False, adaptive=True, reasoning_effort=True,
                                    guides=frozenset({"json"}))


def gather_backend(backend: OpenAIBackend, texts: list[str]) -> list:
    """Send every text at once; the results (or exceptions) in order."""
    async def go():
        try:
            return await asyncio.gather(*(backend.complete(ChatRequest.of([{"role": "user", "content": t}]))
                                          for t in texts), return_exceptions=True)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def test_fixed_concurrency_reports_nothing_adaptive():
    with ChatServer() as server:
        backend = backend_for(server)
        assert backend.gate is None and backend.progress() == {} and backend.report() == {}
        ask_backend(backend, "hello")


def test_adaptive_backend_finds_a_hidden_capacity():
    with ChatServer(capacity=6, latency_s=0.05, capacity_retry_after=0.01) as server:
        backend = backend_for(server, concurrency=64, adaptive=True, retries=30)
        assert backend.progress() == {"conc": 16}  # starts at the default fixed concurrency
        results = gather_backend(backend, [f"question {i}" for i in range(120)])
        assert all(not isinstance(r, BaseException) and r.text for r in results)
        assert server.by_status[200] == 120 and server.max_in_flight <= 7
        report = backend.report()["concurrency"]
        assert report["max"] == 64 and report["cuts"] >= 1 and report["final"] == backend.progress()["conc"]
        assert report["final"] < 16  # 16 was too many for a server that takes 6
        assert report["history"][0] == [0.0, 16] and report["history"][-1][1] == report["final"]
        assert backend.gate.in_flight == 0 and backend.gate.waiting == 0
        assert backend.limiter.paused_until > 0  # the 429s' Retry-After still paused everyone


@pytest.mark.parametrize("status,cuts", [(429, True), (503, True), (500, False), (502, False)])
def test_only_429_and_503_cut_the_level(status, cuts):
    with ChatServer(rules=[{"status": status, "times": 1}]) as server:
        backend = backend_for(server, concurrency=64, adaptive=True)
        [result] = ask_backend(backend, "hello")
        assert result.text and server.requests_total == 2
        assert (backend.report()["concurrency"]["cuts"] == 1) is cuts
        assert backend.gate.in_flight == 0


def test_adaptive_failures_release_their_slot():
    with ChatServer(rules=[{"status": 400}]) as server:
        backend = backend_for(server, concurrency=4, adaptive=True)
        results = gather_backend(backend, ["a", "b", "c", "d", "e", "f"])
        assert all(isinstance(r, RequestFailed) for r in results)
        assert backend.gate.in_flight == 0 and backend.gate.aimd.level == 4


def test_create_builds_an_adaptive_backend_from_settings():
    from generators.backends.base import BackendSettings

    settings = BackendSettings(model="teacher", base_url="http://127.0.0.1:9/v1", concurrency=100, adaptive=True)
    backend = OpenAIBackend.create(settings)
    assert backend.gate is not None and backend.gate.aimd.maximum == 100
    assert OpenAIBackend.create(BackendSettings(model="teacher", base_url="http://127.0.0.1:9/v1")).gate is None
    asyncio.run(backend.aclose())


def test_the_lean_aiohttp_client_sends_what_the_sdk_sends():
    """The same request through our aiohttp client and through the SDK's own reaches the server
    with the same headers and body."""
    with ChatServer() as server:
        lean = backend_for(server, transport="aiohttp")
        sdk = backend_for(server, transport="aiohttp")
        sdk.client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=5.0,
                                        http_client=openai.DefaultAioHttpClient(timeout=5.0))
        assert type(lean.client._client) is not openai.DefaultAioHttpClient  # the lean one is in use
        ask_backend(lean, "hello there")
        ask_backend(sdk, "hello there")
        first, second = server.requests
        assert first["body"] == second["body"]
        assert sorted(first["headers"]) == sorted(second["headers"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cookies_the_server_sets_are_sent_back(transport):
    with ChatServer(rules=[{"headers": {"Set-Cookie": "lb=node7; Path=/"}, "times": 1}]) as server:
        ask_backend(backend_for(server, transport=transport), "one", "two")
        cookies = [dict((k.lower(), v) for k, v in r["headers"]).get("cookie") for r in server.requests]
        assert cookies == [None, "lb=node7"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirect_is_followed(transport):
    with ChatServer() as server:
        server.add_rule({"status": 307, "headers": {"Location": f"{server.base_url}/chat/completions"}, "times": 1})
        [result] = ask_backend(backend_for(server, transport=transport), "hello")
        assert result.text and server.by_status == {307: 1, 200: 1}
