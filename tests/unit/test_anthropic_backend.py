"""The anthropic backend, in this process: the real `anthropic` SDK against the loopback Messages
and Message Batches server (tests/anthropic_server.py), the engine on top. The retries, the
Retry-After cap and the batch lifecycle are the HTTP base's; these tests show the mapping gets them."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from generators.backends.anthropic_backend import DEFAULT_MAX_TOKENS, AnthropicBackend
from generators.backends.base import BackendSettings, ChatRequest, ChatResult, RequestFailed, Sampling
from generators.backends.batch_lines import line_key
from generators.backends.cache import cache_key
from generators.backends.http_batch import HTTPBatchBackend
from generators.backends.registry import backend_class
from generators.core.engine import Engine
from generators.core.errors import FatalError, UsageError
from tests.anthropic_server import AnthropicServer
from tests.helpers import read_jsonl


def backend(server: AnthropicServer, **kw: Any) -> AnthropicBackend:
    return AnthropicBackend(model="claude-test", base_url=server.url, api_key="fake-anthropic-key", retries=3,
                            backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=10, **kw)


def batch_backend(server: AnthropicServer, run_dir: Path, **kw: Any) -> HTTPBatchBackend:
    return HTTPBatchBackend(backend(server, for_batch=True), run_dir=run_dir, poll_interval_s=0.05, quiet_s=0.05,
                            **kw)


def req(text: str, system: str | None = None, **sampling: Any) -> ChatRequest:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return ChatRequest.of(messages, Sampling(**sampling))


def ask_all(target: Any, requests: list[ChatRequest]) -> tuple[list[Any], Engine]:
    engine = Engine(target)

    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(engine.complete(r) for r in requests), return_exceptions=True)
        finally:
            await engine.aclose()
    return asyncio.run(go()), engine


def leave_running(server: AnthropicServer, target: HTTPBatchBackend, texts: list[str], ready: Any) -> None:
    """Send the requests, then cancel them as Ctrl-C does once `ready()` holds; the batch runs on."""
    async def go() -> None:
        tasks = [asyncio.create_task(target.complete(req(t))) for t in texts]
        while not ready():
            await asyncio.sleep(0.02)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await target.aclose()
    asyncio.run(go())


def key_of(server: AnthropicServer, text: str) -> str:
    return line_key(cache_key("anthropic", "claude-test", req(text), endpoint=server.url))


def test_a_message_maps_system_sampling_and_usage_with_cache_tokens():
    with AnthropicServer(cache_read_tokens=7, cache_write_tokens=3) as server:
        [result], engine = ask_all(backend(server), [req("what is rust", system="Be brief.", temperature=0.5,
                                                         stop=("END",))])
        body = server.messages[0]
    assert body == {"model": "claude-test", "max_tokens": DEFAULT_MAX_TOKENS, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "what is rust"}], "temperature": 0.5,
                    "stop_sequences": ["END"]}
    words = len("Be brief.\nwhat is rust".split())
    assert result.text.startswith("Here is a short answer") and result.finish == "stop"
    assert (result.prompt_tokens, result.cache_read_tokens, result.cache_write_tokens) == (words + 10, 7, 3)
    assert engine.accounting.cache_read_tokens == 7 and engine.accounting.cache_write_tokens == 3
    assert engine.accounting.prompt_tokens == words + 10


def test_429_and_529_are_retried_after_their_retry_after_and_pause_everyone():
    rules = [{"match": "busy", "status": 429, "retry_after": 0.2, "times": 1},
             {"match": "busy", "status": 529, "retry_after": 0.1, "times": 1}]
    with AnthropicServer(rules=rules) as server:
        target = backend(server)
        [result], _ = ask_all(target, [req("busy server")])
        assert isinstance(result, ChatResult)
        assert server.by_status == {429: 1, 529: 1, 200: 1}
        assert target.limiter.paused_until > 0  # the server's wait became a shared pause


def test_a_retry_after_above_the_cap_stops_the_run_saying_when_to_rerun():
    with AnthropicServer(rules=[{"status": 529, "retry_after": 7200}]) as server:
        [result], _ = ask_all(backend(server, max_retry_after=60), [req("hello")])
    assert isinstance(result, FatalError) and "asked to wait 7200 s" in str(result)


def test_a_refused_key_stops_the_run_naming_the_variable_and_a_bad_request_fails_alone():
    with AnthropicServer(api_key="fake-other-key") as server:
        [refused], _ = ask_all(backend(server), [req("hello")])
    assert isinstance(refused, FatalError) and "ANTHROPIC_API_KEY" in str(refused)
    with AnthropicServer(rules=[{"match": "bad", "status": 400}]) as server:
        [bad, good], _ = ask_all(backend(server), [req("bad one"), req("good one")])
        assert server.by_status[400] == 1  # not sent again
    assert isinstance(bad, RequestFailed) and bad.status == 400 and "invalid_request_error" in bad.last_response
    assert isinstance(good, ChatResult)


def test_the_registry_checks_the_key_and_takes_the_base_url_from_the_environment(monkeypatch):
    cls = backend_class("anthropic")
    assert cls is AnthropicBackend and cls.capabilities.batch_api and cls.capabilities.adaptive
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(UsageError, match="needs --base-url or ANTHROPIC_API_KEY"):
        cls.check(BackendSettings(model="claude-test"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    cls.check(BackendSettings(model="claude-test"))
    assert cls.create(BackendSettings(model="claude-test")).endpoint == "http://127.0.0.1:9"


# -- Message Batches ------------------------------------------------------------------------------

def test_a_batch_answers_every_request_at_once_and_records_the_ledger(tmp_path):
    texts = [f"question {i}" for i in range(5)]
    with AnthropicServer(cache_read_tokens=2) as server:
        target = batch_backend(server, tmp_path)
        results, engine = ask_all(target, [req(t) for t in texts])
        assert all(isinstance(r, ChatResult) for r in results), results
        assert len(server.uploads) == 1 and server.answered_keys() == {key_of(server, t): 1 for t in texts}
        assert server.requests_total == 0  # nothing went through /v1/messages
    assert engine.accounting.requests == 5 and engine.accounting.cache_read_tokens == 10
    events = read_jsonl(tmp_path / "batches.jsonl")
    assert [e["event"] for e in events] == ["uploaded", "submitted", "ended"]
    assert events[0]["file"].startswith("inline-") and events[2]["status"] == "ended"
    assert target.report()["batches"][0]["counts"] == {"completed": 5, "failed": 0, "total": 5}


def test_expired_and_errored_lines_are_resubmitted_and_a_bad_one_fails_alone(tmp_path):
    texts = ["question 0", "question 1", "flaky question", "bad question"]
    rules = [{"match": "flaky", "status": 529, "times": 1}, {"match": "bad", "status": 400}]
    with AnthropicServer(rules=rules, expire=[{"match": "question 1", "times": 1}]) as server:
        target = batch_backend(server, tmp_path)
        results, _ = ask_all(target, [req(t) for t in texts])
        assert [type(r).__name__ for r in results] == ["ChatResult", "ChatResult", "ChatResult", "RequestFailed"]
        assert "invalid_request_error" in results[3].reason
        assert sorted(server.uploads[1]) == sorted(f"{key_of(server, t)}-1" for t in ("question 1", "flaky question"))
        assert server.answered_keys() == {key_of(server, t): 1 for t in texts[:3]}
    report = target.report()
    assert [b["status"] for b in report["batches"]] == ["expired", "ended"]
    assert report["resubmitted_lines"] == 2 and report["failed_lines"] == 1


def test_a_later_session_waits_for_the_batch_an_earlier_one_left_running(tmp_path):
    texts = [f"question {i}" for i in range(3)]
    with AnthropicServer(hold=True) as server:
        leave_running(server, batch_backend(server, tmp_path), texts,
                      lambda: any(b["looked"] for b in server.batches.values()))
        server.hold = False
        results, _ = ask_all(batch_backend(server, tmp_path), [req(t) for t in texts])
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 1 and server.answered_keys() == {key_of(server, t): 1 for t in texts}


def test_a_batch_created_but_not_recorded_is_found_on_the_server(tmp_path):
    texts = ["alpha question", "beta question"]
    with AnthropicServer(hold=True) as server:
        leave_running(server, batch_backend(server, tmp_path), texts, lambda: bool(server.batches))
        kept = [e for e in read_jsonl(tmp_path / "batches.jsonl") if e["event"] == "uploaded"]  # as if killed in create
        (tmp_path / "batches.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
        server.hold = False
        results, _ = ask_all(batch_backend(server, tmp_path), [req(t) for t in texts])
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 1  # found, not created again
    submitted = [e for e in read_jsonl(tmp_path / "batches.jsonl") if e["event"] == "submitted"]
    assert [e["file"] for e in submitted] == [kept[0]["file"]]
