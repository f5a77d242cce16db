"""The run-folder contract, point by point, through the real `gen` CLI in a subprocess, the real
openai client and the loopback server: one writer, settings before requests, usage on every
line, clean signals, the right error class, capped Retry-After, no leaked credentials."""
from __future__ import annotations

import gzip
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.chat_server import ChatServer
from tests.helpers import (assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen, wait_for,
                           write_seeds)

QUESTIONS = [f"What is remarkable fact number {i} about glaciers?" for i in range(24)]
USAGE_KEYS = {"requests", "cached", "failed_requests", "attempts", "retried", "prompt_tokens", "completion_tokens",
              "cost_usd"}


def args_for(server: ChatServer, seeds: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["selfchat", "--seeds", str(seeds), "--field", "question", "--backend", "openai",
            "--base-url", server.base_url, "--model", "teacher", "--out", str(out), "--cache-dir", str(cache),
            "--no-progress", *extra]


def start(args: list[str]) -> subprocess.Popen:
    return start_gen(*args, env=gen_env(OPENAI_API_KEY="k"))


def lines(out: Path) -> list[dict]:
    return read_jsonl(out / "data.jsonl") + read_jsonl(out / "rejected.jsonl") + read_jsonl(out / "errors.jsonl")


def line_usage(line: dict) -> dict:
    return line["usage"] if "messages" not in line else line["meta"]["usage"]


# -- 1. lock -----------------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_a_killed_holder_frees_the_folder(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer(latency_s=0.2) as server:
        first = start(args_for(server, seeds, out, cache, "--concurrency", "1"))
        wait_for(lambda: len(read_jsonl(out / "data.jsonl")) >= 1)
        second = run_gen(*args_for(server, seeds, out, cache, "--concurrency", "1"), env=gen_env(OPENAI_API_KEY="k"))
        assert_one_line_error(second, 2, str(out), f"PID {first.pid}", "in use")
        first.send_signal(signal.SIGKILL)
        first.wait()
        third = run_gen(*args_for(server, seeds, out, cache, "--concurrency", "8"), env=gen_env(OPENAI_API_KEY="k"))
        assert third.returncode == 0, third.stderr
    records = read_jsonl(out / "data.jsonl")
    assert sorted(r["meta"]["seed"] for r in records) == sorted(QUESTIONS)  # once each


# -- 2. settings before requests ----------------------------------------------------------------

def test_the_fingerprint_is_on_disk_before_the_first_request(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:4])
    out, cache = tmp_path / "out", tmp_path / "cache"
    seen: list[bool] = []

    def reply(body: dict) -> str:
        manifest = out / "manifest.json"
        seen.append(manifest.exists() and bool(json.loads(manifest.read_text()).get("fingerprint")))
        return "[Human] hi there\n[AI] Hello! Glaciers are slow rivers of ice that shape valleys over time."

    with ChatServer(reply=reply, rules=[{"delay_s": 30}]) as server:
        proc = start(args_for(server, seeds, out, cache, "--temperature", "0.3"))
        kill_when(proc, lambda: server.requests_total >= 1)  # before any line was written
        assert read_jsonl(out / "data.jsonl") == []
        other = run_gen(*args_for(server, seeds, out, cache, "--temperature", "0.9"), env=gen_env(OPENAI_API_KEY="k"))
        assert_one_line_error(other, 2, "other settings", str(out))
    assert (out / "manifest.json").exists()


def test_an_unreadable_manifest_is_an_error_not_a_fresh_start(tmp_path, api_server, api_env):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:2])
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{ this is not json")
    server = api_server()
    proc = run_gen(*args_for(server, seeds, out, tmp_path / "cache"), env=api_env)
    assert_one_line_error(proc, 2, "manifest.json")
    assert server.requests_total == 0


# -- 3. usage per line, budgets across kills, signals ------------------------------------------

def test_every_line_carries_its_usage_and_the_manifest_sums_the_lines(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:6] + ["x" * 60])
    out = tmp_path / "out"
    with ChatServer(rules=[{"match": "fact number 3 ", "status": 400}]) as server:
        proc = run_gen(*args_for(server, seeds, out, tmp_path / "cache", "--price", "1,2", "--max-seed-chars", "48"),
                       env=gen_env(OPENAI_API_KEY="k"))
        assert proc.returncode == 0, proc.stderr
    written = lines(out)
    assert len(written) == 7
    for line in written:
        assert USAGE_KEYS <= set(line_usage(line)), line
    rejected = {r["reject"]: r for r in read_jsonl(out / "rejected.jsonl")}
    assert line_usage(rejected["seed_too_long"])["requests"] == 0  # refused without a request
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("requests", "failed_requests", "prompt_tokens", "completion_tokens"):
        assert manifest["usage"][key] == sum(line_usage(line)[key] for line in written), key
    assert manifest["usage"]["requests"] == 5, (manifest["usage"], written)
    assert manifest["usage"]["failed_requests"] == 1
    assert manifest["usage"]["cost_usd"] == pytest.approx(sum(line_usage(x)["cost_usd"] for x in written), abs=1e-6)


def test_retries_that_succeed_are_counted_as_the_server_saw_them_and_unpriced_lines_cost_null(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:8] + QUESTIONS[:3] + ["", "  "])  # 3 repeats, 2 blank
    out = tmp_path / "out"
    faults = [{"status": 429, "retry_after": 0, "times": 5}, {"status": 500, "times": 3},
              {"status": 503, "times": 1}]
    with ChatServer(rules=faults) as server:
        proc = run_gen(*args_for(server, seeds, out, tmp_path / "cache", "--concurrency", "4"),
                       env=gen_env(OPENAI_API_KEY="k"))
        assert proc.returncode == 0, proc.stderr
        seen, total = dict(server.by_status), server.requests_total
    manifest = json.loads((out / "manifest.json").read_text())
    usage = manifest["usage"]
    assert usage["attempts"] == total == sum(seen.values())
    assert usage["retried"]["429"] == seen[429] == 5
    assert usage["retried"]["5xx"] == seen[500] + seen[503] == 4
    assert usage["failed_requests"] == 0 and usage["requests"] == seen[200] == 8
    written = lines(out)
    assert sum(line_usage(x)["attempts"] for x in written) == total
    assert usage["cost_usd"] is None  # "teacher" has no price
    assert [line_usage(x)["cost_usd"] for x in written] == [None] * len(written)
    assert f"{total} attempts, retried 429 5, 5xx 4" in proc.stdout  # the end line says it too
    assert manifest["seeds"]["count"] == 8 and manifest["seeds"]["duplicates"] == 3
    assert manifest["seeds"]["blank"] == 2


def test_a_priced_run_gives_every_line_a_number_for_its_cost(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:3] + ["x" * 60])
    out = tmp_path / "out"
    with ChatServer() as server:
        proc = run_gen(*args_for(server, seeds, out, tmp_path / "cache", "--price", "1,2", "--max-seed-chars", "48"),
                       env=gen_env(OPENAI_API_KEY="k"))
        assert proc.returncode == 0, proc.stderr
    costs = {bool(line_usage(x)["requests"]): line_usage(x)["cost_usd"] for x in lines(out)}
    assert costs[False] == 0.0 and costs[True] > 0  # refused before any request: it cost nothing


def test_a_token_budget_holds_across_kills(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer(latency_s=0.1) as server:
        probe = run_gen(*args_for(server, write_seeds(tmp_path / "one.jsonl", QUESTIONS[:1]), tmp_path / "probe",
                                  tmp_path / "probe-cache"), env=gen_env(OPENAI_API_KEY="k"))
        assert probe.returncode == 0, probe.stderr
        per_item = json.loads((tmp_path / "probe" / "manifest.json").read_text())["usage"]["total_tokens"]
        budget = per_item * 10
        args = args_for(server, seeds, out, cache, "--concurrency", "2", "--max-total-tokens", str(budget))
        for _ in range(2):  # two sessions killed early, then one to the end of the budget
            done = len(lines(out))
            kill_when(start(args), lambda: len(lines(out)) >= done + 3)
        last = run_gen(*args, env=gen_env(OPENAI_API_KEY="k"))
        assert last.returncode == 1 and "budget" in last.stderr, last.stderr
    spent = sum(line_usage(x)["prompt_tokens"] + line_usage(x)["completion_tokens"] for x in lines(out))
    in_flight = 2 * 3 * per_item  # at most two requests in flight in each of three sessions
    assert budget <= spent + in_flight and spent <= budget + in_flight
    assert len(lines(out)) < len(QUESTIONS)  # the budget, not the seeds, ended the run


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_writes_the_manifest_and_prints_the_rerun_command(tmp_path, signum, code):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    out = tmp_path / "out"
    with ChatServer(latency_s=0.2) as server:
        proc = start(args_for(server, seeds, out, tmp_path / "cache", "--concurrency", "2"))
        wait_for(lambda: len(read_jsonl(out / "data.jsonl")) >= 3)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "gen selfchat --seeds" in stderr and "rerun" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["counts"]["kept"] == len(read_jsonl(out / "data.jsonl"))


# -- 4. error classes ---------------------------------------------------------------------------

def test_an_html_200_ends_as_an_error_line_with_the_body(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:2])
    out = tmp_path / "out"
    with ChatServer(rules=[{"html": True}]) as server:
        proc = run_gen(*args_for(server, seeds, out, tmp_path / "cache", "--retries", "1"),
                       env=gen_env(OPENAI_API_KEY="k"))
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 4  # retried once each
    errors = read_jsonl(out / "errors.jsonl")
    assert len(errors) == 2 and all("<html" in (e["last_response"] or "").lower() for e in errors)


def test_a_truncated_gzip_corpus_exits_2_keeping_what_was_made(tmp_path):
    pages = [{"id": f"p{i}", "text": " ".join(f"Sentence {j} of page {i} tells how glacier {i * j} moved." for j in range(30))}
             for i in range(300)]
    blob = gzip.compress("".join(json.dumps(p) + "\n" for p in pages).encode())
    corpus = tmp_path / "pages.jsonl.gz"
    corpus.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out"
    with ChatServer() as server:
        proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", server.base_url,
                       "--model", "backward", "--min-chars", "100", "--no-near-dedup", "--out", out,
                       "--cache-dir", tmp_path / "cache", "--no-progress", env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 2, str(corpus))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped"
    assert len(lines(out)) > 0 and manifest["counts"]["kept"] + manifest["counts"]["rejected"] == len(lines(out))


def test_an_out_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    with ChatServer() as server:
        proc = run_gen(*args_for(server, seeds, tmp_path / "afile" / "out", tmp_path / "cache"),
                       env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 2, "afile")
    assert "aiohttp" not in proc.stderr.lower() and "unclosed" not in proc.stderr.lower()


@pytest.fixture
def small_mount(tmp_path):
    """A 256 KiB tmpfs: a real full disk (and, remounted read-only, a real read-only folder)."""
    point = tmp_path / "mnt"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_and_a_read_only_folder_are_one_line_each(tmp_path, small_mount):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    long_reply = "[Human] Tell me about glaciers.\n[AI] " + "Glaciers move slowly and carve valleys. " * 400
    with ChatServer(reply=lambda body: long_reply) as server:
        full = run_gen(*args_for(server, seeds, small_mount / "out", tmp_path / "cache"),
                       env=gen_env(OPENAI_API_KEY="k"))
        assert_one_line_error(full, 1, "disk is full")
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
        read_only = run_gen(*args_for(server, seeds, small_mount / "other", tmp_path / "cache"),
                            env=gen_env(OPENAI_API_KEY="k"))
        assert_one_line_error(read_only, 2, "read-only")


def test_a_missing_local_model_exits_2_before_anything(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:2])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf",
                   "--model", "/nonexistent/dir", "--out", tmp_path / "out", "--no-progress")
    assert_one_line_error(proc, 2, "/nonexistent/dir")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/v1", "http://", "127.0.0.1:8000/v1"])
def test_a_bad_base_url_is_refused_up_front(tmp_path, url):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--base-url", url,
                   "--model", "m", "--out", tmp_path / "out", env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 2, "--base-url")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("template, needle", [("../x", "not a template name"), ("selfchat_user", "end_marker")])
def test_a_curate_template_must_be_a_rubric_in_prompts(tmp_path, template, needle):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Why is the sky blue?"},
                                             {"role": "assistant", "content": "Rayleigh scattering."}]}) + "\n")
    proc = run_gen("curate", "--input", data, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--model", "judge", "--template", template, "--out", tmp_path / "out",
                   env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 2, "--template", needle)
    assert not (tmp_path / "out").exists()


def test_bad_curate_input_leaves_no_folder(tmp_path):
    data = tmp_path / "in.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]})
    data.write_text(good + "\n" + good + "\n{broken\n")
    with ChatServer() as server:
        proc = run_gen("curate", "--input", data, "--backend", "openai", "--base-url", server.base_url,
                       "--model", "judge", "--out", tmp_path / "out", env=gen_env(OPENAI_API_KEY="k"))
        assert server.requests_total == 0
    assert_one_line_error(proc, 2, f"{data}:3")
    assert not (tmp_path / "out").exists()


# -- 5. Retry-After cap -------------------------------------------------------------------------

def test_a_day_long_retry_after_stops_the_run_and_says_so(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:3])
    out = tmp_path / "out"
    with ChatServer(rules=[{"status": 429, "retry_after": 86400}]) as server:
        began = time.monotonic()
        proc = run_gen(*args_for(server, seeds, out, tmp_path / "cache"), env=gen_env(OPENAI_API_KEY="k"))
        assert time.monotonic() - began < 60
    assert_one_line_error(proc, 1, "86400", "--max-retry-after")
    assert json.loads((out / "manifest.json").read_text())["status"] == "stopped"


def test_a_server_that_dies_mid_run_stops_it_and_a_rerun_finishes_every_item(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    server = ChatServer(latency_s=0.5).start()
    args = args_for(server, seeds, out, cache, "--concurrency", "4")
    proc = start(args)
    try:
        wait_for(lambda: len(read_jsonl(out / "data.jsonl")) >= 4)
    finally:
        server.stop()  # the server dies with requests in flight and items still to go
    _, stderr = proc.communicate(timeout=120)
    err = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    assert "warning: cannot connect to the server" in err[0], stderr  # said as it happens
    assert "is unreachable" in err[-1] and "rerun the same command once the server is back" in err[-1], stderr
    assert server.base_url.rsplit("/", 1)[0] in err[-1]
    assert read_jsonl(out / "errors.jsonl") == []  # not reached is not an error: those items stay pending
    assert json.loads((out / "manifest.json").read_text())["status"] == "stopped"
    assert len(read_jsonl(out / "data.jsonl")) < len(QUESTIONS)
    with ChatServer(port=server.port) as again:  # back at the same address: a plain rerun finishes
        rerun = run_gen(*args, env=gen_env(OPENAI_API_KEY="k"))
        assert rerun.returncode == 0, rerun.stderr
        assert again.requests_total > 0
    assert sorted(r["meta"]["seed"] for r in read_jsonl(out / "data.jsonl")) == sorted(QUESTIONS)  # once each
    assert read_jsonl(out / "errors.jsonl") == [] and read_jsonl(out / "rejected.jsonl") == []
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


# -- 6. credentials -----------------------------------------------------------------------------

def test_credentials_in_the_base_url_are_used_and_never_written(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:3])
    out, cache = tmp_path / "out", tmp_path / "cache"
    password, query_secret = "pa@ss-WORD-77", "QUERY-SECRET-99"
    with ChatServer() as server:
        url = server.base_url.replace("http://", "http://alice:pa%40ss-WORD-77@") + f"?api-key={query_secret}"
        proc = run_gen(*args_for(server, seeds, out, cache)[:-1], "--base-url", url, "--no-progress",
                       env=gen_env(OPENAI_API_KEY="k"))
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 3
        assert all((a or "").startswith("Basic ") for a in server.authorizations)
    with ChatServer() as other:  # another server, same cache: its answers are not served from the cache
        again = run_gen(*args_for(other, seeds, tmp_path / "out2", cache), env=gen_env(OPENAI_API_KEY="k"))
        assert again.returncode == 0 and other.requests_total == 3
    for path in [*out.rglob("*"), *cache.rglob("*")]:
        if path.is_file():
            blob = path.read_bytes()
            assert password.encode() not in blob and b"pa%40ss" not in blob and query_secret.encode() not in blob
    assert password not in proc.stdout + proc.stderr and query_secret not in proc.stdout + proc.stderr


def test_cannot_reach_message_hides_the_password(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai",
                   "--base-url", "http://bob:hunter2secret@127.0.0.1:9/v1", "--model", "m",
                   "--out", tmp_path / "out", "--no-progress", "--retries", "0", env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 1, "cannot reach")
    assert "hunter2secret" not in proc.stderr


# -- 7. --user-model on local backends ----------------------------------------------------------

def test_user_model_with_vllm_is_refused(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "vllm", "--mode", "agents",
                   "--user-model", "some/person-model", "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "--user-model")
    assert not (tmp_path / "out").exists()


def silent_model(folder: Path) -> Path:
    """A tiny model that always ends its answer at once (greedy over all-zero logits picks token
    0, made an end-of-sequence token), so a dialog gets past the assistant's turn quickly."""
    from transformers import AutoModelForCausalLM

    from tests import tiny_model

    tiny_model.build(folder, seed=1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.model.norm.weight.data.zero_()
    eos = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [0, *(eos if isinstance(eos, list) else [eos])]
    model.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_user_model_with_hf_plays_the_person(tmp_path):
    from tests import tiny_model

    assistant, person = silent_model(tmp_path / "assistant"), tiny_model.build(tmp_path / "person", seed=2)
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:2])
    out = tmp_path / "out"
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf", "--model", assistant,
                   "--mode", "agents", "--user-model", person, "--max-turns", "2", "--max-tokens", "8",
                   "--temperature", "0", "--min-answer-chars", "0", "--out", out, "--cache-dir", tmp_path / "cache",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    written = lines(out)
    assert len(written) == 2
    for record in written:
        assert record["meta"]["user_model"] == str(person)
        assert record["meta"]["models"] == [str(assistant), str(person)]  # the assistant, then the person
