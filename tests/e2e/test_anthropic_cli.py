"""`--backend anthropic` end to end: the real `gen` CLI in a subprocess, the real `anthropic` SDK,
the loopback Messages and Message Batches server (tests/anthropic_server.py), with its faults:
429 and 529 with Retry-After, expired batch lines, and a SIGKILL while a batch is polled."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.anthropic_server import AnthropicServer
from tests.e2e.test_curate_cli import judge, record, write
from tests.e2e.test_selfchat_cli import QUESTIONS
from tests.helpers import gen_env, kill_when, read_jsonl, run_gen, start_gen, write_seeds

SECRET = "fake-anthropic-key-DO-NOT-LEAK-4242"  # a made-up key: the test checks it lands in no file
ENV = gen_env(ANTHROPIC_API_KEY=SECRET)


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def curate_args(server: AnthropicServer, inp: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["curate", "--input", str(inp), "--backend", "anthropic", "--base-url", server.url, "--model",
            "claude-judge", "--out", str(out), "--cache-dir", str(cache), "--no-progress", "--batch",
            "--batch-poll-interval", "0.05", *map(str, extra)]


def rated_ids(out: Path) -> list[str]:
    return sorted(r["id"] for r in read_jsonl(out / "data.jsonl") + read_jsonl(out / "rejected.jsonl"))


def test_selfchat_through_429_and_529_books_cache_tokens_and_reruns_for_free(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", QUESTIONS[:4])
    out, cache = tmp_path / "out", tmp_path / "cache"
    rules = [{"match": "bicycle", "status": 429, "retry_after": 0.1, "times": 1},
             {"match": "compass", "status": 529, "retry_after": 0.1, "times": 2}]
    with AnthropicServer(api_key=SECRET, rules=rules, cache_read_tokens=4, cache_write_tokens=1) as server:
        args = ["selfchat", "--seeds", seeds, "--field", "question", "--backend", "anthropic", "--base-url",
                server.url, "--model", "claude-test", "--out", out, "--cache-dir", cache, "--no-progress"]
        proc = run_gen(*args, env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(out / "data.jsonl")) == 4
        assert server.by_status == {429: 1, 529: 2, 200: 4}
        assert all(body["max_tokens"] > 0 and {m["role"] for m in body["messages"]} <= {"user", "assistant"}
                   for body in server.messages)
        usage = manifest_of(out)["usage"]
        assert usage["requests"] == 4 and usage["cache_read_tokens"] == 16 and usage["cache_write_tokens"] == 4
        assert all(r["meta"]["usage"]["cache_read_tokens"] == 4 for r in read_jsonl(out / "data.jsonl"))

        again = run_gen(*args, env=ENV)
        assert again.returncode == 0, again.stderr
        assert server.requests_total == 7  # nothing sent twice
    for path in out.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


def test_curate_with_batch_resubmits_expired_lines_at_half_price(tmp_path):
    qualities = [5, 4, 5, 3, 1, 5]
    inp = write(tmp_path / "in.jsonl", [record(i, q) for i, q in enumerate(qualities)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with AnthropicServer(reply=judge, expire=[{"match": "number 1 ", "times": 1}]) as server:
        proc = run_gen(*curate_args(server, inp, out, cache, "--price", "1,2"), env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert rated_ids(out) == sorted(f"r{i}" for i in range(len(qualities)))
        assert sorted(r["id"] for r in read_jsonl(out / "data.jsonl")) == ["r0", "r2", "r5"]
        assert [len(u) for u in server.uploads] == [6, 1]  # the expired line, and only it, again
        assert sorted(server.answered_keys().values()) == [1] * 6 and server.requests_total == 0
        usage = manifest_of(out)["usage"]
        full_price = (usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 2) / 1e6
        assert usage["requests"] == 6 and usage["cost_usd"] == pytest.approx(full_price / 2, abs=1e-6)
        report = json.loads((out / "scoring" / "manifest.json").read_text("utf-8"))["backend"]["anthropic"]
        assert [b["status"] for b in report["batches"]] == ["expired", "ended"]
        assert report["resubmitted_lines"] == 1


def test_a_kill_while_polling_loses_nothing_and_pays_nothing_twice(tmp_path):
    n, out = 6, tmp_path / "out"
    with AnthropicServer(reply=judge, hold=True) as server:
        args = curate_args(server, write(tmp_path / "in.jsonl", [record(i, 1 + i % 5) for i in range(n)]), out,
                           tmp_path / "cache")

        def looked() -> bool:  # the batch was created, recorded and polled
            return any(b["looked"] >= 2 for b in server.batches.values())

        proc = start_gen(*args, env=ENV)
        kill_when(proc, lambda: looked() or proc.poll() is not None)
        assert looked(), proc.stderr.read()
        assert len(server.uploads) == 1 and not server.answered

        server.hold = False
        again = run_gen(*args, env=ENV)
        assert again.returncode == 0, again.stderr
        assert len(server.uploads) == 1 and len(server.batches) == 1  # the rerun waited for that batch
        assert rated_ids(out) == sorted(f"r{i}" for i in range(n))
        assert sorted(server.answered.values()) == [1] * n
        assert manifest_of(out)["status"] == "complete" and manifest_of(out)["usage"]["requests"] == n
