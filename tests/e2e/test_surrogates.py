"""Lone UTF-16 surrogates (the escaped half of a cut emoji, "\\ud83d": valid JSON, not encodable
as UTF-8) in seeds, corpus documents, model answers and records read back: every stage, the
cache, `gen export` and `gen view` repair them to U+FFFD and count the repairs."""
from __future__ import annotations

import json
from pathlib import Path

from tests.backtranslate_fixtures import backward_reply, plain_pages
from tests.chat_server import ChatServer, default_reply
from tests.e2e.test_view import View, write_run
from tests.helpers import gen_env, read_jsonl, run_gen

CUT = "\ud83d"  # json.dumps writes it as the escape "\ud83d", as a cut emoji comes from a server
KEY = "fake-key-surrogates"


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")  # ensure_ascii: escaped
    assert "\\ud83d" in path.read_text("utf-8")
    return path


def cut_answers(body: dict) -> str:
    """The default transcript, its first answer starting with a cut emoji."""
    return default_reply(body).replace("[AI]", f"[AI] {CUT}", 1)


def openai_args(server: ChatServer, out: Path, cache: Path) -> list:
    return ["--backend", "openai", "--base-url", server.base_url, "--model", "teacher", "--out", out,
            "--cache-dir", cache, "--no-progress"]


def file_text(path: Path) -> str:
    text = path.read_bytes().decode("utf-8")  # raises on anything not UTF-8
    assert "\\ud83d" not in text and "\\udc" not in text
    return text


def test_selfchat_export_and_view_repair_seeds_and_answers(tmp_path):
    seeds = write_lines(tmp_path / "seeds.jsonl", [{"question": f"How does a cut emoji {CUT} work?"},
                                                   {"question": "How does a piano work?"}])
    out, cache = tmp_path / "chat", tmp_path / "cache"
    with ChatServer(reply=cut_answers) as server:
        args = ["selfchat", "--seeds", seeds, "--field", "question", *openai_args(server, out, cache)]
        proc = run_gen(*args, env=gen_env(OPENAI_API_KEY=KEY))
        assert proc.returncode == 0, proc.stderr
        records = {r["meta"]["seed"]: r for r in read_jsonl(out / "data.jsonl")}
        cut = records["How does a cut emoji \ufffd work?"]
        assert cut["messages"][1]["content"].startswith("\ufffd ")
        assert cut["meta"]["usage"]["repaired_text"] == 2  # one in the seed, one in the answer
        assert records["How does a piano work?"]["meta"]["usage"]["repaired_text"] == 1
        manifest = json.loads((out / "manifest.json").read_text("utf-8"))
        assert manifest["status"] == "complete" and manifest["usage"]["repaired_text"] == 3
        file_text(out / "data.jsonl")

        # the cache kept the repaired answers: a new run of the same seeds asks nothing again
        again = run_gen(*args[:-5], "--out", tmp_path / "again", "--cache-dir", cache, "--no-progress",
                        env=gen_env(OPENAI_API_KEY=KEY))
        assert again.returncode == 0, again.stderr
        assert server.requests_total == 2
        again_manifest = json.loads((tmp_path / "again" / "manifest.json").read_text("utf-8"))
        assert again_manifest["usage"]["cached"] == 2 and again_manifest["usage"]["repaired_text"] == 3

    exported = run_gen("export", "--input", out, "--out", tmp_path / "export", "--format", "messages")
    assert exported.returncode == 0, exported.stderr
    assert "\ufffd" in "".join(file_text(p) for p in (tmp_path / "export").rglob("*.jsonl"))

    view = View(out)
    try:
        page = view.get("/api/records?q=emoji")
        assert page["rows"] and "\ufffd" in json.dumps(view.get(f"/api/record?row={page['rows'][0]['row']}"),
                                                       ensure_ascii=False)
    finally:
        view.stop()


def test_records_read_back_are_repaired_by_export_view_and_curate(tmp_path):
    """Lines written by another tool (or an older version) that hold lone surrogates."""
    record = {"id": "r1", "source": "seeds",
              "messages": [{"role": "user", "content": f"What does {CUT} mean?"},
                           {"role": "assistant", "content": f"It is half of an emoji {CUT}, cut in two."}],
              "meta": {"item": "i1"}}
    run = write_run(tmp_path / "run", "selfchat", [record])
    assert "\\ud83d" in (run / "data.jsonl").read_text("utf-8")

    exported = run_gen("export", "--input", run / "data.jsonl", "--out", tmp_path / "export",
                       "--format", "messages")
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for p in (tmp_path / "export").rglob("train*.jsonl")
            for line in file_text(p).splitlines()]
    assert rows and rows[0]["messages"][0]["content"] == "What does \ufffd mean?"

    view = View(run)
    try:
        page = view.get("/api/records")
        detail = view.get(f"/api/record?row={page['rows'][0]['row']}")
        text = json.dumps(detail, ensure_ascii=False)
        assert "What does \ufffd mean?" in text and '"repaired_text": 2' in text
    finally:
        view.stop()

    with ChatServer(reply=lambda body: f"Clear enough {CUT}.\nScore: 5") as server:
        proc = run_gen("curate", "--input", run / "data.jsonl", "--backend", "openai", "--base-url",
                       server.base_url, "--model", "judge", "--out", tmp_path / "curated", "--no-progress",
                       env=gen_env(OPENAI_API_KEY=KEY, BALEEN_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(tmp_path / "curated" / "data.jsonl") + read_jsonl(tmp_path / "curated" / "rejected.jsonl")
    assert len(lines) == 1 and lines[0]["messages"][0]["content"] == "What does \ufffd mean?"
    file_text(tmp_path / "curated" / "data.jsonl")
    manifest = json.loads((tmp_path / "curated" / "manifest.json").read_text("utf-8"))
    assert manifest["status"] == "complete" and manifest["usage"]["repaired_text"] == 1  # the judge's answer


def test_backtranslate_repairs_corpus_documents_and_answers(tmp_path):
    pages = plain_pages(2)
    pages[0] = pages[0].replace("<p>", f"<p>A cut emoji {CUT} here. ", 1)
    rows = [{"id": f"doc-{i}", "url": f"https://example.org/{i}", "html": html} for i, html in enumerate(pages)]
    corpus = write_lines(tmp_path / "corpus.jsonl", rows)
    out = tmp_path / "bt"
    with ChatServer(reply=lambda body: f"{backward_reply(body)} {CUT}") as server:
        proc = run_gen("backtranslate", "--corpus", corpus, *openai_args(server, out, tmp_path / "cache"),
                       env=gen_env(OPENAI_API_KEY=KEY))
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(out / "data.jsonl") + read_jsonl(out / "rejected.jsonl")
    assert lines and not read_jsonl(out / "errors.jsonl")
    texts = [m["content"] for line in lines for m in line.get("messages", [])]
    assert any("A cut emoji \ufffd here." in text for text in texts)
    file_text(out / "data.jsonl")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    answers = manifest["usage"]["requests"]
    assert manifest["status"] == "complete" and manifest["usage"]["repaired_text"] == answers + 1
