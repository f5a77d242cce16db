"""`gen segments` end to end: the real CLI in a subprocess writes the prepared folder, a SIGKILL
mid-run and a rerun lose and double nothing, and `gen backtranslate --segments` over it writes the
same records as `gen backtranslate --corpus` (the loopback chat server plays the backward model)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.backtranslate_fixtures import backward_reply, page, plain_pages, write_corpus
from tests.chat_server import ChatServer
from tests.e2e.test_backtranslate_cli import make_clueweb
from tests.helpers import assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen

KEY = "fake-key-segments"


def rows(out: Path) -> list[dict]:
    return [row for path in sorted(out.glob("segments-*.parquet")) for row in pq.read_table(path).to_pylist()]


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def corpus_with_drops(path: Path) -> Path:
    """Good sections, an exact copy of one, headers the filters drop, a section too short."""
    pages = plain_pages(6)
    copied = "<h2>" + pages[0].split("<h2>")[1]
    filtered = page(50, ["ADVERTISEMENT AND MORE", "Quick links"], seed=0).replace("<footer>", copied + "<footer>")
    pages += [filtered, "<html><body><h2>Short one</h2><p>Too short to keep.</p></body></html>", pages[2]]
    return write_corpus(path, pages)


def backtranslate(server: ChatServer, out: Path, cache: Path, *source: str | Path):
    return run_gen("backtranslate", *source, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "backward", "--out", out, "--cache-dir", cache, "--no-progress",
                   env=gen_env(OPENAI_API_KEY=KEY))


def by_id(path: Path) -> list[dict]:
    return sorted(read_jsonl(path), key=lambda r: r["id"])


def test_segments_then_backtranslate_gives_the_records_of_backtranslate_corpus(tmp_path):
    root = tmp_path / "ClueWeb22_B"
    make_clueweb(root, plain_pages(3) + [plain_pages(1)[0]])
    corpora = [(["--corpus", corpus_with_drops(tmp_path / "c.jsonl")], "jsonl"),
               (["--corpus", "clueweb", "--corpus-dir", root], "clueweb")]
    with ChatServer(reply=backward_reply) as server:
        for n, (corpus, source) in enumerate(corpora):
            segs = tmp_path / f"segs{n}"
            made = run_gen("segments", *corpus, "--out", segs, "--shard-docs", "2", "--workers", str(2 - n))
            assert made.returncode == 0, made.stderr
            prepared = manifest_of(segs)
            assert prepared["status"] == "complete" and prepared["source"] == source
            before = server.requests_total
            direct = backtranslate(server, tmp_path / f"direct{n}", tmp_path / f"cache-d{n}", *corpus)
            assert direct.returncode == 0, direct.stderr
            sent = server.requests_total - before
            via = backtranslate(server, tmp_path / f"via{n}", tmp_path / f"cache-v{n}", "--segments", segs)
            assert via.returncode == 0, via.stderr
            assert server.requests_total - before == 2 * sent  # each run asked once per segment (own cache)
            for name in ("data.jsonl", "rejected.jsonl", "errors.jsonl"):
                assert by_id(tmp_path / f"via{n}" / name) == by_id(tmp_path / f"direct{n}" / name), (source, name)
            assert len(read_jsonl(tmp_path / f"via{n}" / "data.jsonl")) == len(rows(segs)) == prepared["segments"]["kept"]
            want = {k: v for k, v in manifest_of(tmp_path / f"direct{n}")["segments"].items() if k != "resumed"}
            assert {k: v for k, v in manifest_of(tmp_path / f"via{n}")["segments"].items() if k != "resumed"} == want
    assert prepared["segments"]["rejected"]["duplicate"] == 2  # the clueweb copy of page 0 (two sections)
    first = manifest_of(tmp_path / "segs0")["segments"]["rejected"]
    assert first["duplicate"] == 3 and first["caps_header"] == 1 and first["boilerplate_header"] == 1
    assert first["too_short"] == 1


PHASES = {  # what shows that a run is in (or past) each phase
    "prepare": lambda work: len(list(work.glob("cand-*.parquet"))) >= 3,
    "exact": lambda work: (work / "prepare.done").exists(),
    "buckets": lambda work: (work / "exact.done").exists(),
    "decide": lambda work: len(list(work.glob("decide-*.npy"))) >= 3,
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_sigkill_in_a_phase_then_rerun_loses_and_doubles_nothing(tmp_path, phase):
    pages = plain_pages(400)
    pages += pages[100:160]  # exact duplicates late in the corpus, decided across shards
    near = [p.replace("</p>", " and one more word.</p>") for p in pages[200:230]]  # near duplicates
    corpus = write_corpus(tmp_path / "c.jsonl", pages + near)
    out = tmp_path / "out"
    args = ["segments", "--corpus", corpus, "--out", out, "--shard-docs", "10"]
    kill_when(start_gen(*args), lambda: PHASES[phase](out / "work"))
    assert manifest_of(out)["status"] == "running"
    (out / "work" / "cand-99999.parquet.tmp").write_bytes(b"half a file")  # what a kill mid-write leaves
    again = run_gen(*args)
    assert again.returncode == 0, again.stderr
    resumed = manifest_of(out)
    assert resumed["status"] == "complete" and resumed["sessions"] == 2
    assert not (out / "work").exists()
    fresh = run_gen(*[a if a != out else tmp_path / "fresh" for a in args])
    assert fresh.returncode == 0, fresh.stderr
    assert rows(out) == rows(tmp_path / "fresh")
    texts = [row["text"] for row in rows(out)]
    assert len(texts) == len(set(texts)) == 800
    assert resumed["segments"] == manifest_of(tmp_path / "fresh")["segments"]
    assert resumed["segments"]["rejected"]["duplicate"] == 120
    assert resumed["segments"]["rejected"]["near_duplicate"] == 60
    done = run_gen(*args)  # a finished folder: nothing to do, nothing written again
    assert done.returncode == 0 and rows(out) == rows(tmp_path / "fresh")


def test_bad_input_and_other_settings_exit_2_with_one_line(tmp_path):
    corpus = corpus_with_drops(tmp_path / "c.jsonl")
    out = tmp_path / "segs"
    assert_one_line_error(run_gen("segments", "--out", out), 2, "--corpus")
    assert_one_line_error(run_gen("segments", "--corpus", tmp_path / "none.jsonl", "--out", out), 2, "no such file")
    assert not out.exists()
    assert run_gen("segments", "--corpus", corpus, "--out", out).returncode == 0
    assert_one_line_error(run_gen("segments", "--corpus", corpus, "--out", out, "--min-chars", "10"), 2,
                          "other settings")
    bt = ["backtranslate", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
          "--out", tmp_path / "aug"]
    env = gen_env(OPENAI_API_KEY=KEY)
    assert_one_line_error(run_gen(*bt, env=env), 2, "--corpus", "--segments")
    assert_one_line_error(run_gen(*bt, "--corpus", corpus, "--segments", out, env=env), 2, "either")
    assert_one_line_error(run_gen(*bt, "--segments", tmp_path, env=env), 2, "not a gen segments folder")
    assert_one_line_error(run_gen(*bt, "--segments", out, "--shard", "0/2", env=env), 2, "--shard")
