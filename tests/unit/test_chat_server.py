"""The loopback chat-completions server, checked through the real openai client."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import openai
import pytest

from tests.chat_server import HTML_PAGE, ChatServer, start_subprocess_server

MSG = [{"role": "user", "content": "Explain how bicycles stay upright when moving"}]


def client(server: ChatServer, key: str = "sk-test", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, **kw)


def test_normal_answer_with_usage_and_models():
    with ChatServer() as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0
        c = client(server)
        r = c.chat.completions.create(model="m1", messages=MSG)
        text = r.choices[0].message.content
        assert r.object == "chat.completion" and r.model == "m1"
        assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason == "stop"
        assert "Explain how bicycles stay upright" in text
        assert r.usage.prompt_tokens == len(MSG[0]["content"].split())
        assert r.usage.completion_tokens == len(text.split())
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert [m.id for m in c.models.list()] == ["baleen-test-model"]
        assert server.requests_total == 1 and server.by_status == {200: 1}
        assert server.bodies[0]["messages"] == MSG and server.bodies[0]["model"] == "m1"
        assert server.authorizations == ["Bearer sk-test"]


def test_default_transcript_reply():
    prompt = "Write a chat between [Human] and [AI] about 'growing tomatoes in pots', nothing else."
    with ChatServer() as server:
        r = client(server).chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
    lines = r.choices[0].message.content.splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == ["[Human]", "[AI]"] * 3
    assert all(len(ln.split()) >= 13 for ln in lines if ln.startswith("[AI] "))
    assert "growing tomatoes in pots" in lines[0]
    assert "openai" not in r.choices[0].message.content.lower()
    assert "as an ai" not in r.choices[0].message.content.lower()


def test_custom_reply_fn_and_fixed_reply_rule():
    seen = []

    def reply(req):
        seen.append(req["temperature"])
        return "custom words here"

    with ChatServer(reply=reply, rules=[{"match": "fixed", "reply": "the fixed one"}]) as server:
        c = client(server)
        assert c.chat.completions.create(model="m", messages=MSG, temperature=0.3).choices[0].message.content == (
            "custom words here"
        )
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "fixed please"}])
        assert r.choices[0].message.content == "the fixed one"
    assert seen == [0.3]


def test_429_retry_after_headers_and_times():
    rule = {"match": "bicycles", "times": 2, "status": 429, "retry_after": 3,
            "headers": {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}}
    with ChatServer(rules=[rule]) as server:
        c = client(server)
        for _ in range(2):
            with pytest.raises(openai.RateLimitError) as ei:
                c.chat.completions.create(model="m", messages=MSG)
            e = ei.value
            assert e.status_code == 429 and e.code == "rate_limit_exceeded"
            assert e.response.headers["retry-after"] == "3"
            assert e.response.headers["x-ratelimit-remaining-requests"] == "0"
            assert e.response.headers["x-ratelimit-reset-requests"] == "3s"
        # the third matching request is past `times`: answered normally
        raw = c.chat.completions.with_raw_response.create(model="m", messages=MSG)
        assert raw.status_code == 200 and "retry-after" not in raw.headers
        assert raw.parse().choices[0].finish_reason == "stop"
        assert server.by_status == {429: 2, 200: 1} and server.rules[0].hits == 2


def test_client_retries_on_429_then_succeeds():
    with ChatServer(rules=[{"times": 1, "status": 429, "retry_after": 0.01}]) as server:
        r = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=2).chat.completions.create(
            model="m", messages=MSG)
        assert r.choices[0].message.content
        assert server.by_status == {429: 1, 200: 1}


@pytest.mark.parametrize(
    "status,exc",
    [(500, openai.InternalServerError), (503, openai.InternalServerError), (400, openai.BadRequestError),
     (403, openai.PermissionDeniedError)],
)
def test_error_statuses(status, exc):
    with ChatServer(rules=[{"status": status}]) as server:
        with pytest.raises(exc) as ei:
            client(server).chat.completions.create(model="m", messages=MSG)
        assert ei.value.status_code == status and isinstance(ei.value.message, str)
        assert server.by_status == {status: 1}


def test_wrong_api_key_gets_401():
    with ChatServer(api_key="sk-right-key-123456") as server:
        with pytest.raises(openai.AuthenticationError) as ei:
            client(server, key="sk-wrong-key-000000").chat.completions.create(model="m", messages=MSG)
        assert ei.value.status_code == 401 and ei.value.code == "invalid_api_key"
        assert "sk-wrong-key-000000" not in ei.value.message  # the key is masked, as OpenAI does
        r = client(server, key="sk-right-key-123456").chat.completions.create(model="m", messages=MSG)
        assert r.choices[0].message.content
        assert server.authorizations == ["Bearer sk-wrong-key-000000", "Bearer sk-right-key-123456"]
        assert server.by_status == {401: 1, 200: 1}


def test_malformed_body_raises():
    with ChatServer(rules=[{"malformed": True}]) as server:
        with pytest.raises((openai.OpenAIError, json.JSONDecodeError)):
            client(server).chat.completions.create(model="m", messages=MSG)
        assert server.by_status == {200: 1}


def test_html_rule_answers_200_with_an_html_page():
    with ChatServer(rules=[{"html": True, "times": 1}]) as server:
        raw = client(server).chat.completions.with_raw_response.create(model="m", messages=MSG)
        assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/html")
        assert raw.parse() == HTML_PAGE  # the client hands back a non-JSON body as text
        assert client(server).chat.completions.create(model="m", messages=MSG).choices[0].message.content
        assert server.by_status == {200: 2} and server.rules[0].hits == 1


def test_query_string_is_recorded():
    with ChatServer() as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0,
                          default_query={"api-version": "2024-06-01"})
        c.chat.completions.create(model="m", messages=MSG)
        client(server).chat.completions.create(model="m", messages=MSG)
        assert server.queries == ["api-version=2024-06-01", None]


def test_truncate_gives_finish_reason_length():
    with ChatServer(rules=[{"truncate": 4}]) as server:
        r = client(server).chat.completions.create(model="m", messages=MSG)
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].message.content.split()) == 4 and r.usage.completion_tokens == 4


def test_delay_and_client_timeout():
    with ChatServer(rules=[{"match": "slow", "delay_s": 3}]) as server:
        c = client(server, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "slow one"}])
        assert c.chat.completions.create(model="m", messages=MSG).choices[0].message.content


def test_drop_connection():
    with ChatServer(rules=[{"drop": True, "times": 1}]) as server:
        c = client(server)
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=MSG)
        assert c.chat.completions.create(model="m", messages=MSG).choices[0].message.content
        assert server.by_status == {0: 1, 200: 1}


def test_logprobs_parsed_by_client():
    with ChatServer() as server:
        r = client(server).chat.completions.create(model="m", messages=MSG, logprobs=True, top_logprobs=3)
        plain = client(server).chat.completions.create(model="m", messages=MSG)
    lp = r.choices[0].logprobs.content
    words = r.choices[0].message.content.split()
    assert len(lp) == len(words) == r.usage.completion_tokens
    assert [t.token.strip() for t in lp] == words
    assert all(t.logprob < 0 and len(t.top_logprobs) == 3 for t in lp)
    assert all(t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob
               for t in lp)
    assert bytes(lp[1].bytes).decode() == lp[1].token
    assert plain.choices[0].logprobs is None


def test_concurrency_stats_and_429_fraction():
    async def go(server: ChatServer, n: int) -> list:
        c = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        try:
            return await asyncio.gather(
                *[c.chat.completions.create(model="m", messages=MSG) for _ in range(n)], return_exceptions=True)
        finally:
            await c.close()

    with ChatServer(latency_s=0.5) as server:
        out = asyncio.run(go(server, 20))
        assert all(not isinstance(o, Exception) for o in out)
        assert server.requests_total == 20 and server.by_status == {200: 20}
        assert server.max_in_flight >= 15 and server.in_flight == 0
        server.reset()
        assert server.requests_total == 0 and server.requests == [] and server.max_in_flight == 0

    with ChatServer(fail_429_frac=0.5, seed=1) as server:
        out = asyncio.run(go(server, 40))
        limited = [o for o in out if isinstance(o, openai.RateLimitError)]
        assert 5 <= len(limited) <= 35 and len(limited) + server.by_status[200] == 40
        assert all(e.response.headers["retry-after"] == "0" for e in limited)
        assert server.by_status[429] == len(limited)


def test_subprocess_server_stats_and_reset():
    proc, base_url = start_subprocess_server(latency_ms=10, rules=[{"match": "nope", "status": 500}])
    try:
        c = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
        assert c.chat.completions.create(model="m", messages=MSG).choices[0].message.content
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "nope"}])
        root = base_url.removesuffix("/v1")
        stats = json.load(urllib.request.urlopen(root + "/_stats"))
        assert stats["requests_total"] == 2 and stats["by_status"] == {"200": 1, "500": 1}
        assert stats["requests"][0]["body"]["messages"] == MSG
        assert stats["requests"][0]["authorization"] == "Bearer k"
        urllib.request.urlopen(urllib.request.Request(root + "/_reset", method="POST", data=b""))
        assert json.load(urllib.request.urlopen(root + "/_stats?bodies=0")) == {
            "requests_total": 0, "by_status": {}, "in_flight": 0, "max_in_flight": 0, "first_at": None,
            "last_at": None, "rule_hits": [1]}
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


async def _burst(server_url: str, n: int, release: asyncio.Event | None = None) -> list:
    c = openai.AsyncOpenAI(base_url=server_url, api_key="k", max_retries=0)
    try:
        return await asyncio.gather(*[c.chat.completions.create(model="m", messages=MSG) for _ in range(n)],
                                    return_exceptions=True)
    finally:
        await c.close()


def test_capacity_refuses_requests_above_k_with_retry_after():
    with ChatServer(latency_s=0.5, capacity=4, capacity_retry_after=0.25) as server:
        out = asyncio.run(_burst(server.base_url, 10))
        refused = [o for o in out if isinstance(o, openai.RateLimitError)]
        assert len(refused) == 6 and server.by_status == {200: 4, 429: 6}
        assert all(e.response.headers["retry-after"] == "0.25" for e in refused)
        assert server.max_in_flight == 5  # the fifth is counted while it is refused
        assert server.first_at is not None and server.last_at >= server.first_at
        assert len(server.requests) == 4  # refused before the body is read, like a gateway
        again = asyncio.run(_burst(server.base_url, 3))  # room again once the others finished
        assert not any(isinstance(o, Exception) for o in again)


def test_capacity_in_the_subprocess_server():
    proc, base_url = start_subprocess_server(latency_ms=300, capacity=2)
    try:
        out = asyncio.run(_burst(base_url, 5))
        assert sum(isinstance(o, openai.RateLimitError) for o in out) == 3
        stats = json.load(urllib.request.urlopen(base_url.removesuffix("/v1") + "/_stats?bodies=0"))
        assert stats["by_status"] == {"200": 2, "429": 3} and stats["first_at"] <= stats["last_at"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
