"""Bounded reading (issue 19, items 4 and 5): a line over --max-line-bytes is refused naming
file:line without being read whole; JSON nested too deeply is exit 2 naming file:line in input
files, and a line passed over (counted) in a run's own files, so the run stays resumable; an
oversize seed's rejected line keeps at most 4 KB of it; a corpus document over --max-doc-chars is
counted as doc_too_long."""
from __future__ import annotations

import json
from pathlib import Path

from tests.backtranslate_fixtures import backward_reply, page, plain_pages, write_corpus
from tests.chat_server import ChatServer
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen, write_seeds

QUESTIONS = [f"What is remarkable fact number {i} about glaciers?" for i in range(4)]
LIMIT = "1000000"
NESTED = "[" * 100_000


def huge_tail(path: Path, good_lines: str) -> Path:
    """`good_lines`, then a 3 MB line without a newline: over a 1 MB limit."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(good_lines)
        handle.write('{"question": "' + "x" * 3_000_000)
    return path


def selfchat(server: ChatServer, seeds: Path, out: Path, cache: Path, *extra: str):
    return run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai",
                   "--base-url", server.base_url, "--model", "teacher", "--out", out, "--cache-dir", cache,
                   "--no-progress", *extra, env=gen_env(OPENAI_API_KEY="k"))


def curate(server: ChatServer, inp: Path, out: Path, cache: Path, *extra: str):
    return run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "judge", "--out", out, "--cache-dir", cache, "--no-progress", *extra,
                   env=gen_env(OPENAI_API_KEY="k"))


def backtranslate(server: ChatServer, corpus: Path, out: Path, cache: Path, *extra: str):
    return run_gen("backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "backward", "--out", out, "--cache-dir", cache, "--no-progress", *extra,
                   env=gen_env(OPENAI_API_KEY="k"))


def record_line(i: int) -> str:
    return json.dumps({"id": f"r{i}", "source": "t", "messages": [
        {"role": "user", "content": f"Explain how machine number {i} turns heat into motion"},
        {"role": "assistant", "content": f"Machine {i} burns fuel and the gas pushes a piston. Score it."}]}) + "\n"


# ---------------------------------------------------------------- a line over --max-line-bytes

def test_a_huge_line_is_refused_naming_file_and_line_in_every_stage(tmp_path):
    seeds = huge_tail(tmp_path / "seeds.jsonl", json.dumps({"question": QUESTIONS[0]}) + "\n")
    text_seeds = huge_tail(tmp_path / "seeds.txt", QUESTIONS[0] + "\n")
    records = huge_tail(tmp_path / "records.jsonl", record_line(1))
    corpus = huge_tail(tmp_path / "corpus.jsonl", json.dumps({"id": "d", "html": plain_pages(1)[0]}) + "\n")
    with ChatServer() as server:
        for proc, where in (
                (selfchat(server, seeds, tmp_path / "a", tmp_path / "c", "--max-line-bytes", LIMIT), seeds),
                (curate(server, records, tmp_path / "cur", tmp_path / "c", "--max-line-bytes", LIMIT), records),
                (backtranslate(server, corpus, tmp_path / "bt", tmp_path / "c", "--max-line-bytes", LIMIT), corpus),
                (run_gen("export", "--input", records, "--format", "messages", "--out", tmp_path / "exp",
                         "--max-line-bytes", LIMIT), records)):
            assert_one_line_error(proc, 2, f"{where}:2", "--max-line-bytes")
        txt = run_gen("selfchat", "--seeds", text_seeds,  # a .txt seed file has no --field "--backend", "openai", "--base-url", server.base_url,
                      "--model", "teacher", "--out", tmp_path / "t", "--cache-dir", tmp_path / "c",
                      "--no-progress", "--max-line-bytes", LIMIT, env=gen_env(OPENAI_API_KEY="k"))
        assert_one_line_error(txt, 2, f"{text_seeds}:2", "--max-line-bytes")


# ---------------------------------------------------------------- JSON nested too deeply

def test_deeply_nested_json_in_input_files_is_exit_2_naming_file_and_line(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"question": QUESTIONS[0]}) + "\n" + NESTED + "\n", "utf-8")
    records = tmp_path / "records.jsonl"
    records.write_text(record_line(1) + NESTED + "\n", "utf-8")
    json_seeds = tmp_path / "seeds.json"
    json_seeds.write_text(NESTED, "utf-8")
    with ChatServer() as server:
        assert_one_line_error(selfchat(server, seeds, tmp_path / "a", tmp_path / "c"), 2, f"{seeds}:2", "nested")
        assert_one_line_error(selfchat(server, json_seeds, tmp_path / "j", tmp_path / "c"), 2, str(json_seeds),
                              "nested")
        assert_one_line_error(curate(server, records, tmp_path / "cur", tmp_path / "c"), 2, f"{records}:2",
                              "nested")
        assert server.requests_total == 0
    exported = run_gen("export", "--input", records, "--format", "messages", "--out", tmp_path / "exp")
    assert_one_line_error(exported, 2, f"{records}:2", "nested")


def test_a_nested_line_in_a_runs_own_data_is_passed_over_and_the_run_resumes(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer() as server:
        first = selfchat(server, write_seeds(tmp_path / "two.jsonl", QUESTIONS[:2]), out, cache)
        assert first.returncode == 0, first.stderr
        with (out / "data.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(NESTED + "\n")
        again = selfchat(server, write_seeds(tmp_path / "four.jsonl", QUESTIONS), out, cache)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
    kept = [r for r in read_jsonl_lenient(out / "data.jsonl")]
    assert sorted(r["meta"]["seed"] for r in kept) == sorted(QUESTIONS)  # each seed once, the first two not redone
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["status"] == "complete" and manifest["counts"]["unreadable_lines"] == 1


def read_jsonl_lenient(path: Path) -> list[dict]:
    """The JSON lines a test can read back; the nested one it wrote itself is left out."""
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip() and line != NESTED]


# ---------------------------------------------------------------- oversize seeds and documents

def test_an_oversize_seeds_rejected_line_keeps_at_most_4_kb(tmp_path):
    big = "é" + "glacier " * 20_000 + "end"  # 160 KB
    seeds = write_seeds(tmp_path / "s.jsonl", [QUESTIONS[0], big])
    out = tmp_path / "out"
    with ChatServer() as server:
        proc = selfchat(server, seeds, out, tmp_path / "cache", "--max-seed-chars", "200")
        assert proc.returncode == 0, proc.stderr
    line = (out / "rejected.jsonl").read_bytes()
    assert len(line) < 8192, len(line)
    (rejected,) = read_jsonl(out / "rejected.jsonl")
    assert rejected["reject"] == "seed_too_long"
    meta = rejected["meta"]
    assert len(meta["seed"].encode("utf-8")) <= 4096 and big.startswith(meta["seed"]) and meta["seed"]
    assert meta["seed_chars"] == len(big) and meta["seed_truncated"] is True


def test_a_corpus_document_over_max_doc_chars_is_skipped_and_counted(tmp_path):
    pages = plain_pages(2) + [page(9, [f"Long topic {j}" for j in range(40)])]  # ~32,000 characters
    corpus = write_corpus(tmp_path / "corpus.jsonl", pages)
    out = tmp_path / "out"
    with ChatServer(reply=backward_reply) as server:
        proc = backtranslate(server, corpus, out, tmp_path / "cache", "--max-doc-chars", "20000")
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 4  # the two short pages' sections only
    segments = json.loads((out / "manifest.json").read_text("utf-8"))["segments"]
    assert segments["doc_too_long"] == 1 and segments["documents"] == 3 and segments["kept"] == 4
