"""Dedup by meaning end to end (baleen[embed], the packaged all-MiniLM-L6-v2): curate drops a
reworded instruction as semantic_duplicate and keeps different questions, a rerun decides the
same way without embedding anything again (also after a SIGKILL mid-run), and without the extra the
request is one line."""
from __future__ import annotations

import json
import sqlite3

from tests.chat_server import ChatServer
from tests.helpers import assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen, without_embed_extra

SECRET = "test-key-not-real"
# (instruction, is it a paraphrase of an earlier one?), Quora-style
INSTRUCTIONS = [
    ("What are the early signs of kidney failure?", False),
    ("How do I learn to play the guitar as an adult?", False),
    ("What are the first symptoms of renal failure?", True),
    ("How can I improve my credit score quickly?", False),
    ("What is the best way for an adult to start learning guitar?", True),
    ("Why is the sky blue during the day?", False),
    ("How are kidney stones removed?", False),
]


def record(i: int, text: str) -> dict:
    return {"id": f"r{i}", "source": "test", "tag": "augmented",
            "messages": [{"role": "user", "content": text},
                         {"role": "assistant", "content": f"A careful answer number {i} with enough words."}]}


def curate(server: ChatServer, inp, out, *extra: str, env: dict | None = None):
    return run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "judge", "--out", out, "--no-progress", "--threshold", "1", *extra,
                   env=env or gen_env(OPENAI_API_KEY=SECRET, BALEEN_CACHE=str(out.parent / "cache")))


def rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]


def test_curate_drops_reworded_instructions_and_a_rerun_decides_the_same_without_embedding(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(record(i, t)) + "\n" for i, (t, _) in enumerate(INSTRUCTIONS)), "utf-8")
    out = tmp_path / "cur"
    with ChatServer(api_key=SECRET, reply=lambda body: "Fine.\nScore: 5") as server:
        proc = curate(server, inp, out, "--semantic-dedup")
        assert proc.returncode == 0, proc.stderr
        dropped = {r["id"]: r["reject"] for r in read_jsonl(out / "prefiltered.jsonl")}
        assert dropped == {f"r{i}": "semantic_duplicate" for i, (_, para) in enumerate(INSTRUCTIONS) if para}
        assert [r["id"] for r in read_jsonl(out / "data.jsonl")] == [
            f"r{i}" for i, (_, para) in enumerate(INSTRUCTIONS) if not para]  # the first of each kept
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["prefilter"]["semantic_duplicate"] == 2
        assert manifest["settings"]["dedup"]["semantic"]["model"] == "minilm"
        assert "semantic_duplicate" in manifest["reasons"]
        assert rows(out / "embeddings.sqlite") == len(INSTRUCTIONS)

        # the decisions are recomputed (prefilter.json gone) from the cache: same verdicts, no new rows
        (out / "prefilter.json").unlink()
        before = (out / "embeddings.sqlite").stat().st_mtime_ns
        again = curate(server, inp, out, "--semantic-dedup")
        assert again.returncode == 0, again.stderr
        assert {r["id"]: r["reject"] for r in read_jsonl(out / "prefiltered.jsonl")} == dropped
        assert (out / "embeddings.sqlite").stat().st_mtime_ns == before  # nothing written: nothing embedded

        # a lower threshold is another decision: the lines are judged again, the first kept still
        strict = curate(server, inp, out, "--semantic-threshold", "0.99")
        assert strict.returncode == 0, strict.stderr
        assert read_jsonl(out / "prefiltered.jsonl") == []


def test_a_run_killed_while_scoring_resumes_with_the_same_verdicts_and_embeds_nothing_twice(tmp_path):
    # each instruction twice more, reworded, among 12 distinct ones: 36 records, 24 semantic duplicates
    topics = ["kidney failure", "learning the guitar", "credit scores", "the colour of the sky", "kidney stones",
              "baking sourdough bread", "training a puppy", "saving for retirement", "growing tomatoes",
              "learning Spanish", "fixing a flat bicycle tyre", "writing a CV"]
    texts = [t for topic in topics for t in (f"What should I know about {topic}?",
                                             f"What is important to know about {topic}?",
                                             f"Tell me what I should know about {topic}.")]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(record(i, t)) + "\n" for i, t in enumerate(texts)), "utf-8")
    out = tmp_path / "cur"
    env = gen_env(OPENAI_API_KEY=SECRET, BALEEN_CACHE=str(tmp_path / "cache"))
    with ChatServer(api_key=SECRET, latency_s=0.3, reply=lambda body: "Fine.\nScore: 5") as server:
        args = ["curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url, "--model", "judge",
                "--out", out, "--no-progress", "--threshold", "1", "--concurrency", "1", "--semantic-dedup"]
        kill_when(start_gen(*args, env=env), lambda: len(read_jsonl(out / "scoring" / "data.jsonl")) >= 2)
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
        dropped = {r["id"] for r in read_jsonl(out / "prefiltered.jsonl")}
        stored = rows(out / "embeddings.sqlite")
        assert stored == len(texts)  # every text embedded before the first request, once
        sent, before = server.requests_total, (out / "embeddings.sqlite").stat().st_mtime_ns

        again = run_gen(*args, env=env)
        assert again.returncode == 0, again.stderr
        kept = [r["id"] for r in read_jsonl(out / "data.jsonl")]
        assert {r["id"]: r["reject"] for r in read_jsonl(out / "prefiltered.jsonl")} == {
            i: "semantic_duplicate" for i in dropped}  # the same verdicts as before the kill
        assert sorted(kept + sorted(dropped)) == sorted(f"r{i}" for i in range(len(texts)))  # nothing lost or twice
        assert len(kept) == len(topics) and all(int(i[1:]) % 3 == 0 for i in kept)  # the first of each topic
        assert server.requests_total - sent <= len(topics) - 2 + 1  # the scored ones not asked again
        assert (out / "embeddings.sqlite").stat().st_mtime_ns == before  # nothing embedded again
        assert rows(out / "embeddings.sqlite") == stored


def test_curate_semantic_dedup_without_the_extra_is_one_line(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(record(0, "What is kidney failure?")) + "\n", "utf-8")
    env = without_embed_extra(tmp_path, gen_env(OPENAI_API_KEY=SECRET, BALEEN_CACHE=str(tmp_path / "cache")))
    out = tmp_path / "cur"
    with ChatServer(api_key=SECRET, reply=lambda body: "Fine.\nScore: 5") as server:
        proc = curate(server, inp, out, "--semantic-dedup", env=env)
        assert_one_line_error(proc, 2, "pip install 'baleen[embed]'")
        assert server.requests_total == 0
        plain = curate(server, inp, tmp_path / "plain", env=env)  # the lexical dedup needs no extra
        assert plain.returncode == 0, plain.stderr
