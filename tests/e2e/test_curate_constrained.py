"""--constrained on the OpenAI path: the rating request carries a JSON schema (`response_format`),
a JSON answer is read, an unreadable one is sent back once with what was wrong, and the manifest
and report give the unparsed share. The loopback server answers by script: free text without a
schema, a bad JSON answer first under one, and a good one to the follow-up."""
from __future__ import annotations

import json

from tests.chat_server import ChatServer
from tests.e2e.test_curate_cli import curate, record, write
from tests.helpers import read_jsonl, run_gen

# The one retry's message says what was wrong ("could not be read"); under a schema the server
# first answers out of range, then well; without a schema it never writes a score line.
SCRIPT = [
    {"match": "could not be read", "schema": True, "reply": '{"reason": "Clear and complete.", "score": 4}'},
    {"schema": True, "reply": '{"reason": "Very good.", "score": 7}'},
    {"schema": False, "reply": "A clear answer; I would rate it highly."},
]


def test_auto_sends_the_schema_and_retries_once_with_the_error(tmp_path):
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(3)])
    out = tmp_path / "out"
    with ChatServer(rules=[dict(r) for r in SCRIPT]) as server:
        proc = curate(server, inp, out, tmp_path / "cache", "--threshold", "1", "--retries-unparsed", "1")
        assert proc.returncode == 0, proc.stderr
        kept = read_jsonl(out / "data.jsonl")
        assert [(r["id"], r["score"], r["reason"]) for r in kept] == [(f"r{i}", 4, "Clear and complete.")
                                                                      for i in range(3)]
        for r in kept:
            cur = r["meta"]["curation"]
            assert cur["attempts"] == 2 and cur["problems"] == ["out_of_range"]
            assert cur["guide"] == "json" and cur["told"] is True
        assert server.requests_total == 6  # one first answer and one retry per record
        for body in server.bodies:
            schema = body["response_format"]["json_schema"]["schema"]
            assert body["response_format"]["type"] == "json_schema"
            assert schema["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 5}
            assert schema["required"] == ["reason", "score"]
        retries = [b for b in server.bodies if len(b["messages"]) == 3]
        assert len(retries) == 3
        for body in retries:  # the bad answer, then what was wrong and which form is wanted
            assert body["messages"][1] == {"role": "assistant", "content": '{"reason": "Very good.", "score": 7}'}
            follow_up = body["messages"][2]["content"]
            assert "not a whole number from 1 to 5" in follow_up and '"score": integer from 1 to 5' in follow_up
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["rating"] == {"answered": 3, "unparsed": 0, "unparsed_share": 0.0, "told": 3,
                                      "constrained": "json"}
        assert manifest["usage"]["requests"] == 6  # the retries are booked like any request
        assert manifest["run"]["constrained"] == "auto"


def test_off_sends_plain_requests_and_the_same_script_leaves_them_unparsed(tmp_path):
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(3)])
    out = tmp_path / "out"
    with ChatServer(rules=[dict(r) for r in SCRIPT]) as server:
        proc = curate(server, inp, out, tmp_path / "cache", "--threshold", "1", "--retries-unparsed", "1",
                      "--constrained", "off")
        assert proc.returncode == 0, proc.stderr
        assert read_jsonl(out / "data.jsonl") == []
        rejected = read_jsonl(out / "rejected.jsonl")
        assert [(r["id"], r["reject"]) for r in rejected] == [(f"r{i}", "unparsed_score") for i in range(3)]
        assert all("response_format" not in b for b in server.bodies)
        assert all(len(b["messages"]) == 1 for b in server.bodies)  # resamples, no follow-up
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["rating"] == {"answered": 3, "unparsed": 3, "unparsed_share": 1.0, "told": 0,
                                      "constrained": None}
    report = tmp_path / "report.md"
    proc = run_gen("report", out, "--out", report)
    assert proc.returncode == 0, proc.stderr
    assert "| out | curate | 3 | 3 | 100.0% | 0 | off |" in report.read_text()
