"""`--batch` end to end: the real `gen` CLI in a subprocess, the real openai client, the loopback
server speaking the Files and Batches endpoints (tests/batch_server.py). Batches move on only
when polled, so nothing here waits on a clock; --batch-poll-interval 0.05 keeps it quick."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.backtranslate_fixtures import backward_reply, plain_pages, write_corpus
from tests.batch_server import BatchServer
from tests.e2e.test_curate_cli import judge, record, write
from tests.helpers import (assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen, wait_for,
                           write_seeds)

ENV = gen_env(OPENAI_API_KEY="k")


def curate_args(server: BatchServer, inp: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["curate", "--input", str(inp), "--backend", "openai", "--base-url", server.base_url, "--model", "judge",
            "--out", str(out), "--cache-dir", str(cache), "--no-progress", "--batch", "--batch-poll-interval", "0.05",
            *map(str, extra)]


def rated_ids(out: Path) -> list[str]:
    return sorted(r["id"] for r in read_jsonl(out / "data.jsonl") + read_jsonl(out / "rejected.jsonl"))


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def backend_report(out: Path) -> dict:
    """The batch backend's report: in the run's manifest, or (curate) its scoring store's."""
    for path in (out / "manifest.json", out / "scoring" / "manifest.json"):
        found = json.loads(path.read_text("utf-8")).get("backend") if path.exists() else None
        if found:
            return found["openai"]
    raise AssertionError(f"no backend report in {out}")


def test_curate_with_batch_rates_every_record_once_at_half_price(tmp_path):
    qualities = [5, 4, 5, 3, 1, 5, 2, 4, 5, 1]
    inp = write(tmp_path / "in.jsonl", [record(i, q) for i, q in enumerate(qualities)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with BatchServer(reply=judge) as server:
        proc = run_gen(*curate_args(server, inp, out, cache, "--price", "1,2"), env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert rated_ids(out) == sorted(f"r{i}" for i in range(len(qualities)))
        assert sorted(r["id"] for r in read_jsonl(out / "data.jsonl")) == ["r0", "r2", "r5", "r8"]
        assert all(r["score_expected"] == 5.0 for r in read_jsonl(out / "data.jsonl"))  # logprobs came back
        assert len(server.uploads) == 1 and len(server.uploads[0]) == len(qualities)
        assert set(server.answered.values()) == {1} and len(server.answered) == len(qualities)
        assert server.by_status == {200: len(qualities)}

        manifest = manifest_of(out)
        usage = manifest["usage"]
        assert manifest["status"] == "complete" and usage["requests"] == len(qualities)
        full_price = (usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 2) / 1e6
        assert usage["cost_usd"] == pytest.approx(full_price / 2, abs=1e-6) and usage["cost_usd"] > 0
        batches = backend_report(out)["batches"]
        assert [(b["status"], b["lines"]) for b in batches] == [("completed", len(qualities))]
        assert batches[0]["id"] in server.batches and manifest["run"]["batch"] is True
        events = [e["event"] for e in read_jsonl(out / "batches.jsonl")]
        assert events == ["uploaded", "submitted", "ended"]

        again = run_gen(*curate_args(server, inp, out, cache, "--price", "1,2"), env=ENV)
        assert again.returncode == 0, again.stderr
        assert len(server.uploads) == 1 and rated_ids(out) == sorted(f"r{i}" for i in range(len(qualities)))


def test_a_kill_while_polling_resumes_the_same_batch(tmp_path):
    n = 8
    inp = write(tmp_path / "in.jsonl", [record(i, 1 + i % 5) for i in range(n)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with BatchServer(reply=judge, hold=True) as server:
        args = curate_args(server, inp, out, cache)
        proc = start_gen(*args, env=ENV)
        kill_when(proc, lambda: server.retrieves >= 2 or proc.poll() is not None)  # created, and polled
        assert server.retrieves >= 2, proc.stderr.read()
        assert len(server.uploads) == 1 and not server.answered
        submitted = [e for e in read_jsonl(out / "batches.jsonl") if e["event"] == "submitted"]
        assert [e["batch"] for e in submitted] == list(server.batches)
        assert read_jsonl(out / "scoring" / "data.jsonl") == []

        server.hold = False
        again = run_gen(*args, env=ENV)
        assert again.returncode == 0, again.stderr
        assert len(server.uploads) == 1  # no new upload: the rerun waited for the recorded batch
        assert len(server.batches) == 1 and server.cancelled == 0
        assert rated_ids(out) == sorted(f"r{i}" for i in range(n))  # every record rated exactly once
        assert sorted(server.answered.values()) == [1] * n  # each custom_id answered once
        manifest = manifest_of(out)
        assert manifest["status"] == "complete" and manifest["usage"]["requests"] == n


def test_expired_and_failing_lines_are_resubmitted_then_end_in_errors(tmp_path):
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(6)])
    out = tmp_path / "out"
    with BatchServer(reply=judge, expire=[{"match": "number 1 ", "times": 1}],
                     rules=[{"match": "number 2 ", "status": 500}]) as server:
        proc = run_gen(*curate_args(server, inp, out, tmp_path / "cache", "--retries", "1"), env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert [len(u) for u in server.uploads] == [6, 2]  # the expired line and the 500, nothing else
        assert sorted(r["id"] for r in read_jsonl(out / "data.jsonl")) == ["r0", "r1", "r3", "r4", "r5"]
    errors = read_jsonl(out / "errors.jsonl")
    assert len(errors) == 1 and errors[0]["status"] == 500
    assert "server had an error" in errors[0]["last_response"] and "2 batch lines" in errors[0]["error"]
    manifest = manifest_of(out)
    assert manifest["counts"]["errors"] == 1
    report = backend_report(out)
    assert [b["status"] for b in report["batches"]] == ["expired", "completed"]
    assert report["resubmitted_lines"] == 2 and report["failed_lines"] == 1


def test_ctrl_c_leaves_the_batch_running_and_prints_the_command_that_picks_it_up(tmp_path):
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(4)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with BatchServer(reply=judge, hold=True) as server:
        args = curate_args(server, inp, out, cache)
        proc = start_gen(*args, env=ENV)
        wait_for(lambda: server.retrieves >= 2 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "rerun" in stderr and "--batch" in stderr
        manifest = manifest_of(out)
        assert manifest["status"] == "interrupted"
        assert [b["status"] for b in backend_report(out)["batches"]] == ["in_progress"]
        assert server.cancelled == 0 and [b["status"] for b in server.batches.values()] == ["in_progress"]

        server.hold = False
        again = run_gen(*args, env=ENV)
        assert again.returncode == 0, again.stderr
        assert len(server.uploads) == 1 and rated_ids(out) == [f"r{i}" for i in range(4)]


def test_backtranslate_with_batch(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", plain_pages(2))  # 4 sections
    out = tmp_path / "out"
    with BatchServer(reply=backward_reply) as server:
        proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", server.base_url,
                       "--model", "backward", "--out", out, "--cache-dir", tmp_path / "cache", "--no-progress",
                       "--batch", "--batch-poll-interval", "0.05", env=ENV)
        assert proc.returncode == 0, proc.stderr
        kept = read_jsonl(out / "data.jsonl")
        assert len(kept) == 4 and all(r["messages"][0]["content"].startswith("What should I know") for r in kept)
        assert [len(u) for u in server.uploads] == [4] and sum(server.answered.values()) == 4
        assert backend_report(out)["batches"][0]["status"] == "completed"


def test_selfchat_transcript_with_batch_and_agents_refused(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", [f"How do glaciers form in region {i}?" for i in range(3)])
    out = tmp_path / "out"
    with BatchServer() as server:
        args = ["selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--base-url",
                server.base_url, "--model", "teacher", "--out", out, "--cache-dir", tmp_path / "cache",
                "--no-progress", "--batch", "--batch-poll-interval", "0.05"]
        proc = run_gen(*args, env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(out / "data.jsonl")) == 3
        assert [len(u) for u in server.uploads] == [3]
        agents = run_gen(*args[:-3], "--out", tmp_path / "agents", "--batch", "--mode", "agents", env=ENV)
        assert_one_line_error(agents, 2, "--mode transcript")
        assert len(server.uploads) == 1


def killed_while_polling(server: BatchServer, args: list[str]) -> None:
    """A run killed after its one batch was created and polled: the batch runs on, unanswered."""
    proc = start_gen(*args, env=ENV)
    kill_when(proc, lambda: server.retrieves >= 2 or proc.poll() is not None)
    assert server.retrieves >= 2, proc.stderr.read()
    assert len(server.uploads) == 1 and not server.answered


@pytest.mark.parametrize("damage", ["garbled uploaded line", "deleted ledger"])
def test_a_batch_the_ledger_lost_is_adopted_from_the_server_not_paid_twice(tmp_path, damage):
    n = 12
    inp = write(tmp_path / "in.jsonl", [record(i, 1 + i % 5) for i in range(n)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with BatchServer(reply=judge, hold=True) as server:
        args = curate_args(server, inp, out, cache)
        killed_while_polling(server, args)
        ledger = out / "batches.jsonl"
        if damage == "deleted ledger":
            ledger.unlink()
        else:
            lines = ledger.read_text("utf-8").splitlines()
            assert json.loads(lines[0])["event"] == "uploaded"
            ledger.write_text("\n".join(['{"event": "uploaded", "fi'] + lines[1:]) + "\n", "utf-8")

        server.hold = False
        again = run_gen(*args, env=ENV)
        assert again.returncode == 0, again.stderr
        assert len(server.uploads) == 1 and len(server.batches) == 1  # nothing uploaded again
        assert sorted(server.lines_run.values()) == [1] * n  # 0 requests paid twice
        assert rated_ids(out) == sorted(f"r{i}" for i in range(n))
        assert backend_report(out)["adopted_batches"] == 1
        (batch,) = server.batches.values()
        assert batch["metadata"]["baleen_run"] == manifest_of(out)["fingerprint"]  # the run's name on the server
        events = [json.loads(line)["event"] for line in ledger.read_text("utf-8").splitlines()[-3:]]
        assert events == ["uploaded", "submitted", "ended"]  # the ledger holds the batch again


def test_a_rerun_that_cannot_list_the_runs_batches_stops_before_uploading(tmp_path):
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(4)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with BatchServer(reply=judge, hold=True) as server:
        args = curate_args(server, inp, out, cache, "--retries", "1")
        killed_while_polling(server, args)
        (out / "batches.jsonl").unlink()
        server.api_failures = [{"method": "GET", "path": "/v1/batches", "status": 503, "times": 100}]
        again = run_gen(*args, env=ENV)
        assert_one_line_error(again, 1, "cannot list this run's batches", "nothing was uploaded")
        assert len(server.uploads) == 1 and len(server.batches) == 1
        assert manifest_of(out)["status"] == "stopped"
