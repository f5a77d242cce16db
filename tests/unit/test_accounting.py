"""Every attempt is counted: the usage an item books holds each try sent (`attempts`), the tries
sent again by cause (`retried`) and the requests that got no answer, while tokens come only from
answers; older lines without these keys still add up (missing keys read as 0)."""
from __future__ import annotations

import asyncio

from generators.backends.base import ChatRequest, RequestFailed, Sampling
from generators.backends.openai_backend import OpenAIBackend
from generators.core.accounting import ITEM_USAGE, Accounting, add_usage, empty_usage, sum_usage
from generators.core.engine import Engine
from generators.core.prices import Price
from generators.core.stage import usage_summary
from tests.chat_server import ChatServer


def item_usage(server: ChatServer, texts: list[str], *, retries: int = 4, timeout_s: float = 5.0,
               price: Price | None = None) -> dict:
    """The usage one item books asking `texts` in turn (failed requests included)."""
    backend = OpenAIBackend(model="teacher", base_url=server.base_url, api_key="k", concurrency=4, retries=retries,
                            timeout_s=timeout_s, backoff_initial_s=0.01, backoff_max_s=0.02)
    engine = Engine(backend, accounting=Accounting(model="teacher", price=price))

    async def go() -> dict:
        usage = empty_usage()
        ITEM_USAGE.set(usage)
        try:
            for text in texts:
                try:
                    await engine.complete(ChatRequest.of([{"role": "user", "content": text}], Sampling()))
                except RequestFailed:
                    pass
        finally:
            await engine.aclose()
        return usage

    return asyncio.run(go())


def test_retried_tries_are_attempts_counted_by_cause_and_never_billed():
    rules = [{"match": "first", "status": 429, "retry_after": 0, "times": 2},
             {"match": "first", "status": 500, "times": 1},
             {"match": "first", "status": 503, "times": 1},
             {"match": "first", "malformed": True, "times": 1},
             {"match": "second", "delay_s": 2, "times": 1}]
    with ChatServer(rules=rules) as server:
        usage = item_usage(server, ["first question", "second question"], retries=6, timeout_s=0.5)
        seen = server.requests_total
    assert usage["requests"] == 2 and usage["failed_requests"] == 0
    assert usage["retried"] == {"429": 2, "5xx": 2, "timeout": 1, "bad_body": 1, "connection": 0, "other": 0}
    # every try the server saw (the timed-out one included: it arrived, it answered too late)
    assert usage["attempts"] == seen == 8
    clean = {"requests": 1, "prompt_tokens": 0, "completion_tokens": 0}
    with ChatServer() as server:
        once = item_usage(server, ["first question"])
        twice = item_usage(server, ["second question"])
        clean = {k: once[k] + twice[k] for k in clean}
    assert usage["prompt_tokens"] == clean["prompt_tokens"] and usage["completion_tokens"] == clean["completion_tokens"]


def test_a_request_that_runs_out_of_retries_is_failed_and_each_try_an_attempt():
    with ChatServer(rules=[{"status": 500}]) as server:
        usage = item_usage(server, ["hello"], retries=2)
        assert server.requests_total == 3
    assert usage["failed_requests"] == 1 and usage["requests"] == 0
    assert usage["attempts"] == 3 and usage["retried"]["5xx"] == 2  # the last try was not sent again
    assert usage["prompt_tokens"] == usage["completion_tokens"] == 0


def test_older_usage_without_attempts_adds_up_as_zero():
    old = {"requests": 2, "cached": 1, "failed_requests": 0, "prompt_tokens": 10, "completion_tokens": 5,
           "cost_usd": None}
    new = empty_usage() | {"requests": 1, "attempts": 3, "retried": {"429": 2, "5xx": 0}, "cost_usd": 0.5}
    total = sum_usage([old, new, None])
    assert total["attempts"] == 3 and total["requests"] == 3 and total["retried"]["429"] == 2
    assert total["retried"]["timeout"] == 0 and total["cost_usd"] == 0.5
    assert add_usage({}, old)["retried"]["429"] == 0  # a total from nothing still has every key


def test_the_manifest_total_is_robust_to_lines_without_a_cost():
    unpriced = [empty_usage() | {"cost_usd": None, "requests": 1} for _ in range(3)]
    assert usage_summary(sum_usage(unpriced), empty_usage(), priced=False)["cost_usd"] is None
    assert usage_summary(sum_usage(unpriced), empty_usage(), priced=True)["cost_usd"] == 0.0
    assert usage_summary({"requests": 1, "cost_usd": None}, {}, priced=True)["cost_usd"] == 0.0
