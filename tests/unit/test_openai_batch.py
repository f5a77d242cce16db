"""--batch for the openai backend, in this process: the real openai client against the loopback
Files and Batches server (tests/batch_server.py), the engine on top, a run folder per test."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from generators.backends.base import ChatRequest, ChatResult, RequestFailed, Sampling
from generators.backends.cache import ResponseCache, cache_key
from generators.backends.batch_lines import LineFailure, custom_id, line_key, pack, split_custom_id
from generators.backends.http_batch import HTTPBatchBackend
from generators.backends.openai_backend import OpenAIBackend
from generators.backends.openai_wire import read_line, request_line
from generators.core.engine import Engine
from generators.core.errors import FatalError
from tests.batch_server import BatchServer
from tests.chat_server import ChatServer
from tests.helpers import read_jsonl


def make_backend(server: ChatServer, run_dir: Path, *, base_url: str | None = None, key: str = "sk-test",
                 retries: int = 2, **kw: Any) -> HTTPBatchBackend:
    api = OpenAIBackend(model="teacher", base_url=base_url or server.base_url, api_key=key, retries=retries,
                        backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=10, for_batch=True)
    return HTTPBatchBackend(api, run_dir=run_dir, poll_interval_s=0.05, quiet_s=0.05, **kw)


def req(text: str, **sampling: Any) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": text}], Sampling(**sampling))


def ask_all(backend: HTTPBatchBackend, texts: list[str], cache: ResponseCache | None = None,
            **sampling: Any) -> tuple[list[Any], Engine]:
    """Every text as one request, all at once (as the runner's lanes send them)."""
    engine = Engine(backend, cache=cache)

    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(engine.complete(req(t, **sampling)) for t in texts),
                                        return_exceptions=True)
        finally:
            await engine.aclose()
    return asyncio.run(go()), engine


async def until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll until `predicate()` holds; fail the test (never hang) after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def ledger(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "batches.jsonl")


def key_of(server: ChatServer, text: str, **sampling: Any) -> str:
    """The line key the backend names this request by (its cache key, cut)."""
    return line_key(cache_key("openai", "teacher", req(text, **sampling), endpoint=server.base_url))


# -- the line format ------------------------------------------------------------------------

def test_custom_ids_lines_and_packing():
    assert custom_id("ab12", 3) == "ab12-3" and split_custom_id("ab12-3") == ("ab12", 3)
    assert split_custom_id("no-attempt-x") is None and split_custom_id("7") is None
    line = json.loads(request_line("k-0", {"model": "m", "messages": [{"role": "user", "content": "é"}]}))
    assert line == {"custom_id": "k-0", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m", "messages": [{"role": "user", "content": "é"}]}}
    files, oversize = pack([10, 10, 10, 10, 10], max_lines=2, max_bytes=100)
    assert files == [[0, 1], [2, 3], [4]] and oversize == []
    files, oversize = pack([40, 40, 40, 500, 30], max_lines=10, max_bytes=100)
    assert files == [[0, 1], [2, 4]] and oversize == [3]


def test_each_kind_of_line_means_what_it_says():
    body = {"id": "c", "model": "teacher", "usage": {"prompt_tokens": 7, "completion_tokens": 3},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."}, "finish_reason": "stop",
                         "logprobs": {"content": [{"token": "Hi", "logprob": -0.1,
                                                   "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}]}}]}
    answer = read_line({"custom_id": "k-0", "response": {"status_code": 200, "body": body}, "error": None})
    assert isinstance(answer, ChatResult)
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("Hi there.", 7, 3)
    assert answer.logprobs == [{"token": "Hi", "logprob": -0.1, "top": {"Hi": -0.1}}]
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    failed = read_line({"custom_id": "k-0", "response": {"status_code": 500, "body": error}})
    assert isinstance(failed, LineFailure) and failed.retryable and failed.status == 500
    assert "server had an error" in failed.reason and "server_error" in (failed.body or "")
    bad = read_line({"custom_id": "k-0", "response": {"status_code": 400, "body": {"error": {"message": "too long"}}}})
    assert isinstance(bad, LineFailure) and not bad.retryable and bad.status == 400
    expired = read_line({"custom_id": "k-0", "response": None,
                         "error": {"code": "batch_expired", "message": "window ended"}})
    assert isinstance(expired, LineFailure) and expired.retryable and "expired" in expired.reason
    unreadable = read_line({"custom_id": "k-0", "response": {"status_code": 200, "body": "<html>"}})
    assert isinstance(unreadable, LineFailure) and unreadable.retryable and unreadable.body == "<html>"


# -- through the engine and the server --------------------------------------------------------

def test_requests_become_one_batch_recorded_before_it_is_polled(tmp_path):
    recorded: list[bool] = []

    def reply(body: dict) -> str:  # runs while a retrieve of the batch is being answered
        recorded.append(any(e["event"] == "submitted" for e in ledger(tmp_path)))
        return "An answer about " + body["messages"][-1]["content"]

    texts = [f"question {i}" for i in range(6)]
    with BatchServer(reply=reply) as server:
        backend = make_backend(server, tmp_path)
        results, engine = ask_all(backend, texts, temperature=0.2, logprobs=2)
        assert [r.text for r in results] == [f"An answer about {t}" for t in texts]
        assert recorded == [True] * 6
        assert len(server.uploads) == 1 and sorted(server.uploads[0]) == sorted(
            f"{key_of(server, t, temperature=0.2, logprobs=2)}-0" for t in texts)
        assert server.answered_keys() == {key_of(server, t, temperature=0.2, logprobs=2): 1 for t in texts}
        body = server.bodies[0]
        assert body["model"] == "teacher" and body["temperature"] == 0.2 and body["top_logprobs"] == 2
    assert all(r.prompt_tokens == 2 and r.completion_tokens == 5 and r.logprobs for r in results)
    assert engine.accounting.requests == 6 and engine.accounting.completion_tokens == 30
    events = [e["event"] for e in ledger(tmp_path)]
    assert events == ["uploaded", "submitted", "ended"]
    assert (tmp_path / "batches" / f"{ledger(tmp_path)[1]['batch']}.output.jsonl").exists()
    report = backend.report()
    assert report["batches"] == [{"id": ledger(tmp_path)[1]["batch"], "status": "completed", "lines": 6,
                                  "counts": {"completed": 6, "failed": 0, "total": 6}}]
    assert backend.progress()["batches"] == "1 completed"


def test_files_are_split_at_max_lines_and_bytes_and_an_oversize_request_fails_alone(tmp_path):
    texts = [f"short question {i}" for i in range(5)]
    with BatchServer() as server:
        results, _ = ask_all(make_backend(server, tmp_path, max_lines=2), texts)
        assert all(isinstance(r, ChatResult) for r in results)
        assert sorted(len(u) for u in server.uploads) == [1, 2, 2]
    params = {"model": "teacher", "messages": req(texts[0]).message_dicts()}
    one_line = len(request_line(f"{key_of(server, texts[0])}-0", params))
    with BatchServer() as server:
        results, _ = ask_all(make_backend(server, tmp_path / "b", max_file_bytes=2 * one_line + 2),
                             texts + ["a very long question " * 40])
        assert all(isinstance(r, ChatResult) for r in results[:5]), results
        assert isinstance(results[5], RequestFailed) and "bytes" in results[5].reason
        assert sorted(len(u) for u in server.uploads) == [1, 2, 2]  # the long one was never sent


def test_expired_lines_and_only_those_go_into_a_new_batch(tmp_path):
    texts = [f"question {i}" for i in range(4)]
    with BatchServer(expire=[{"match": "question 1", "times": 1}]) as server:
        backend = make_backend(server, tmp_path)
        results, _ = ask_all(backend, texts)
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 2 and server.uploads[1] == [f"{key_of(server, 'question 1')}-1"]
        assert server.answered_keys() == {key_of(server, t): 1 for t in texts}
    report = backend.report()
    assert [b["status"] for b in report["batches"]] == ["expired", "completed"]
    assert report["resubmitted_lines"] == 1 and report["failed_lines"] == 0


def test_failing_lines_are_retried_then_fail_with_their_status_and_body(tmp_path):
    texts = ["flaky question", "broken question", "bad question", "fine question"]
    rules = [{"match": "flaky", "status": 500, "times": 1}, {"match": "broken", "status": 500},
             {"match": "bad", "status": 400, "error": {"code": "context_length_exceeded"}}]
    with BatchServer(rules=rules) as server:
        backend = make_backend(server, tmp_path, retries=2)
        results, engine = ask_all(backend, texts)
        flaky, broken, bad, fine = results
        assert isinstance(flaky, ChatResult) and isinstance(fine, ChatResult)
        assert isinstance(broken, RequestFailed) and broken.status == 500
        assert "after 3 batch lines" in broken.reason and "server had an error" in (broken.last_response or "")
        assert isinstance(bad, RequestFailed) and bad.status == 400  # a 4xx is not sent again
        assert "context_length_exceeded" in (bad.last_response or "")
        assert [len(u) for u in server.uploads] == [4, 2, 1]  # flaky+broken, then broken alone
    assert engine.accounting.failed == 2 and engine.accounting.requests == 2
    assert backend.report()["failed_lines"] == 2


def test_a_failed_batch_is_sent_again(tmp_path):
    with BatchServer(fail_batches=1) as server:
        backend = make_backend(server, tmp_path)
        results, _ = ask_all(backend, ["one", "two"])
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 2
    statuses = [e.get("status") for e in ledger(tmp_path) if e["event"] == "ended"]
    assert statuses == ["failed", "completed"]
    assert "token_limit_exceeded" in ledger(tmp_path)[2]["reason"]


def test_transient_api_errors_are_retried(tmp_path):
    failures = [{"path": "/v1/files", "method": "POST", "status": 503, "times": 1},
                {"path": "/v1/batches/", "method": "GET", "status": 502, "times": 2}]
    with BatchServer(api_failures=failures) as server:
        results, _ = ask_all(make_backend(server, tmp_path), ["one", "two"])
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 1 and all(r["times"] == 0 for r in server.api_failures)


def test_the_same_request_twice_is_one_line(tmp_path):
    with BatchServer() as server:
        results, _ = ask_all(make_backend(server, tmp_path), ["same", "same", "other"])
        assert results[0].text == results[1].text and len(server.uploads[0]) == 2


def test_a_later_session_waits_for_the_recorded_batch_instead_of_paying_again(tmp_path):
    texts = [f"question {i}" for i in range(5)]
    with BatchServer(hold=True) as server:
        first = make_backend(server, tmp_path)

        async def interrupted() -> None:  # as Ctrl-C does: the lanes are cancelled, then aclose
            engine = Engine(first)
            tasks = [asyncio.create_task(engine.complete(req(t))) for t in texts]
            await until(lambda: server.retrieves >= 2 or any(t.done() for t in tasks))
            assert server.retrieves >= 2, [t.exception() for t in tasks if t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.aclose()

        asyncio.run(interrupted())
        assert len(server.uploads) == 1 and server.cancelled == 0
        assert [b["status"] for b in server.batches.values()] == ["in_progress"]  # still running there
        assert first.report()["batches"][0]["status"] == "in_progress"
        server.hold = False
        second = make_backend(server, tmp_path)
        results, _ = ask_all(second, texts)
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 1 and server.answered_keys() == {key_of(server, t): 1 for t in texts}
        calls = len(server.api_calls)
        third, _ = ask_all(make_backend(server, tmp_path), texts)  # no cache: answers from batches/
        assert [r.text for r in third] == [r.text for r in results] and len(server.api_calls) == calls


def test_an_upload_whose_batch_was_not_recorded_is_found_on_the_server(tmp_path):
    texts = ["alpha question", "beta question"]
    with BatchServer(hold=True) as server:
        async def killed_before_recording() -> None:
            backend = make_backend(server, tmp_path)
            tasks = [asyncio.create_task(backend.complete(req(t))) for t in texts]
            await until(lambda: server.batches or any(t.done() for t in tasks))
            assert server.batches, [t.exception() for t in tasks if t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await backend.aclose()

        asyncio.run(killed_before_recording())
        kept = [e for e in ledger(tmp_path) if e["event"] != "submitted"]  # as if killed inside create
        stray = {"event": "uploaded", "file": "file-gone", "custom_ids": [f"{key_of(server, 'gamma question')}-0"]}
        (tmp_path / "batches.jsonl").write_text("".join(json.dumps(e) + "\n" for e in [*kept, stray]))
        server.hold = False
        results, _ = ask_all(make_backend(server, tmp_path), [*texts, "gamma question"])
        assert all(isinstance(r, ChatResult) for r in results)
        assert len(server.uploads) == 2 and server.uploads[1] == [f"{key_of(server, 'gamma question')}-1"]
    events = [(e["event"], e.get("file")) for e in ledger(tmp_path)]
    assert ("abandoned", "file-gone") in events and events.count(("submitted", kept[0]["file"])) == 1


def test_credentials_and_query_reach_every_batch_call_and_no_file(tmp_path):
    with BatchServer() as server:
        url = server.base_url.replace("http://", "http://alice:s3cret-PASS@") + "?api-version=QUERY-SECRET-9"
        results, _ = ask_all(make_backend(server, tmp_path, base_url=url), ["one"])
        assert isinstance(results[0], ChatResult)
        assert server.api_calls and all(c["authorization"].startswith("Basic ") for c in server.api_calls)
        assert all("api-version=QUERY-SECRET-9" in (c["query"] or "") for c in server.api_calls)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"s3cret-PASS" not in path.read_bytes() and b"QUERY-SECRET-9" not in path.read_bytes()


def test_a_server_without_the_batch_api_or_with_a_refused_key_stops_the_run(tmp_path):
    with ChatServer() as server:
        results, _ = ask_all(make_backend(server, tmp_path), ["one", "two"])
        assert all(isinstance(r, FatalError) and "--batch" in str(r) for r in results)
    with BatchServer(api_key="sk-right") as server:
        results, _ = ask_all(make_backend(server, tmp_path / "b", key="sk-wrong"), ["one"])
        assert isinstance(results[0], FatalError) and "refused the API key" in str(results[0])
        assert server.uploads == []


def test_answers_go_through_the_cache_so_a_rerun_sends_nothing(tmp_path):
    with BatchServer() as server:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        ask_all(make_backend(server, tmp_path / "run"), ["one", "two"], cache=cache)
        calls = len(server.api_calls)
        results, engine = ask_all(make_backend(server, tmp_path / "other-run"), ["one", "two"],
                                  cache=ResponseCache(tmp_path / "cache.sqlite"))
        assert all(r.cached for r in results) and engine.accounting.cached == 2
        assert len(server.api_calls) == calls


def test_a_run_without_a_folder_is_refused():
    from generators.backends.base import BackendSettings
    from generators.core.errors import UsageError

    with pytest.raises(UsageError, match="--batch"):
        HTTPBatchBackend.from_settings(OpenAIBackend, BackendSettings(model="m", base_url="http://127.0.0.1:9/v1", batch=True))


def test_the_registered_openai_backend_offers_batch_and_builds_this_one_from_the_flags(tmp_path):
    from generators.backends.base import BackendSettings
    from generators.backends.registry import backend_class

    registered = backend_class("openai")
    assert registered.capabilities.batch_api
    backend = registered.create(BackendSettings(model="m", base_url="http://127.0.0.1:9/v1", batch=True,
                                                   batch_max_lines=7, batch_poll_interval=3.0, retries=4,
                                                   run_dir=str(tmp_path)))
    assert isinstance(backend, HTTPBatchBackend) and backend.name == "openai"
    assert (backend.max_lines, backend.poll_interval_s, backend.retries) == (7, 3.0, 4)
    assert backend.endpoint == "http://127.0.0.1:9/v1" and backend.ledger.path == tmp_path / "batches.jsonl"


def test_only_this_runs_batches_are_adopted_and_one_that_cannot_be_read_stops_the_run(tmp_path):
    texts = ["alpha question", "beta question"]
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    with BatchServer(hold=True) as server:
        async def interrupted() -> None:
            backend = make_backend(server, run_a)
            tasks = [asyncio.create_task(backend.complete(req(t))) for t in texts]
            await until(lambda: server.retrieves >= 1 or any(t.done() for t in tasks))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await backend.aclose()

        asyncio.run(interrupted())
        (run_a / "batches.jsonl").unlink()
        (batch,) = server.batches.values()
        assert set(batch["metadata"]) == {"baleen_run", "baleen_batch"}
        server.hold = False
        other, _ = ask_all(make_backend(server, run_b), texts)  # another run: its own batch
        assert all(isinstance(r, ChatResult) for r in other) and len(server.uploads) == 2

        content = server.contents.pop(batch["input_file_id"])  # the lost batch's input cannot be read
        stopped, _ = ask_all(make_backend(server, run_a), texts)
        assert all(isinstance(r, FatalError) for r in stopped) and len(server.uploads) == 2
        message = str(stopped[0])
        assert "\n" not in message and "cannot list this run's batches" in message and "nothing was uploaded" in message

        server.contents[batch["input_file_id"]] = content
        backend = make_backend(server, run_a)
        results, _ = ask_all(backend, texts)
        assert all(isinstance(r, ChatResult) for r in results) and len(server.uploads) == 2
        assert backend.report()["adopted_batches"] == 1 and len(server.batches) == 2


def test_batch_result_lines_carry_a_reasoning_models_thinking_apart(tmp_path):
    """A Batch API line's chat completion with `reasoning_content` (or inline <think>) and
    completion_tokens_details.reasoning_tokens: the answer is the visible text alone."""
    def reply(body: dict) -> Any:
        text = body["messages"][-1]["content"]
        if text == "field":
            return {"content": "Visible answer.", "reasoning": "thought about it at length"}
        return "<think>inline thought</think>Another answer."

    with BatchServer(reply=reply) as server:
        results, engine = ask_all(make_backend(server, tmp_path), ["field", "inline"])
    field, inline = results
    assert (field.text, field.reasoning, field.reasoning_tokens) == ("Visible answer.", "thought about it at length", 5)
    assert (inline.text, inline.reasoning) == ("Another answer.", "inline thought") and inline.reasoning_tokens > 0
    assert engine.accounting.reasoning_tokens == 5 + inline.reasoning_tokens
