"""`--concurrency auto` end to end: the real `gen` CLI in a subprocess, the real openai client, and
a loopback server that refuses (429, Retry-After) every request above a hidden capacity."""
from __future__ import annotations

import json

from tests.chat_server import ChatServer
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen, write_seeds

CAPACITY = 8
SEEDS = 200


def test_auto_finishes_every_item_and_keeps_the_history(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", [f"How does machine number {i} work?" for i in range(SEEDS)])
    out = tmp_path / "chat"
    with ChatServer(capacity=CAPACITY, capacity_retry_after=0.02, latency_s=0.05) as server:
        proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai",
                       "--base-url", server.base_url, "--model", "teacher", "--concurrency", "auto",
                       "--max-concurrency", "64", "--retries", "20", "--out", out,
                       "--cache-dir", tmp_path / "cache", "--no-progress", env=gen_env(OPENAI_API_KEY="k"))
        assert proc.returncode == 0, proc.stderr
        limited, answered = server.by_status.get(429, 0), server.by_status[200]
        assert server.max_in_flight <= CAPACITY + 1  # the server never held more than K (+1 being refused)

    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert manifest["status"] == "complete" and counts["errors"] == 0
    assert counts["kept"] + counts["rejected"] == SEEDS and answered == SEEDS
    assert len(read_jsonl(out / "data.jsonl")) + len(read_jsonl(out / "rejected.jsonl")) == SEEDS
    assert manifest["run"]["concurrency"] == "auto" and manifest["run"]["max_concurrency"] == 64

    level = manifest["backend"]["openai"]["concurrency"]
    assert level["max"] == 64 and level["cuts"] >= 1  # it started above K and was told so
    assert 1 <= level["final"] <= 2 * CAPACITY  # it settled near K, far below --max-concurrency
    history = level["history"]
    assert history[0] == [0.0, 16] and history[-1][1] == level["final"]
    assert [t for t, _ in history] == sorted(t for t, _ in history)
    assert max(lvl for _, lvl in history) == level["peak"] and len(history) <= 300
    assert limited < answered  # 429s were the exception, not a storm


def test_auto_with_a_fixed_number_backend_is_refused(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["How does a compass work?"])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf",
                   "--concurrency", "auto", "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "--concurrency auto", "give a number")
    assert not (tmp_path / "out").exists()
