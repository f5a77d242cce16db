"""`gen curate --rate instruction` (COIG-Kun): the rater sees the instruction alone, through its
own rubric; the choice is part of the fingerprint, and `pair` stays the default."""
from __future__ import annotations

import json

from tests.chat_server import ChatServer
from tests.e2e.test_curate_cli import curate, record, write
from tests.helpers import assert_one_line_error, read_jsonl


def by_request(body: dict) -> str:
    """5 for a request that names machine 0 or 2, else 2; 'Score: 4' for any pair rubric."""
    prompt = body["messages"][-1]["content"]
    if "### Request" not in prompt:
        return "Pair rubric.\nScore: 4"
    return "A clear request.\nScore: 5" if ("number 0 " in prompt or "number 2 " in prompt) else "Vague.\nScore: 2"


def test_rate_instruction_shows_the_instruction_alone_and_keeps_by_it(tmp_path):
    inp = write(tmp_path / "aug.jsonl", [record(i, 5) for i in range(4)])
    out, cache = tmp_path / "cur", tmp_path / "cache"
    with ChatServer(reply=by_request) as server:
        proc = curate(server, inp, out, cache, "--rate", "instruction", "--threshold", "5")
        assert proc.returncode == 0, proc.stderr
        prompts = [b["messages"][-1]["content"] for b in server.bodies]
        assert len(prompts) == 4
        assert all("### Request" in p and "burns fuel" not in p for p in prompts)  # never the answer
        assert [r["id"] for r in read_jsonl(out / "data.jsonl")] == ["r0", "r2"]
        manifest = json.loads((out / "manifest.json").read_text())
        rater = manifest["settings"]["rater"]
        assert rater["rate"] == "instruction" and rater["template"].startswith("curate_instruction@")
        kept = read_jsonl(out / "data.jsonl")[0]
        assert kept["meta"]["curation"]["rate"] == "instruction" and kept["score"] == 5

        # the rating mode is part of the fingerprint: a pair rating cannot resume this folder
        assert_one_line_error(curate(server, inp, out, cache, "--threshold", "5"), 2, "other settings")
        pair = curate(server, inp, tmp_path / "pair", cache, "--threshold", "4")
        assert pair.returncode == 0, pair.stderr
        assert "rate" not in json.loads((tmp_path / "pair" / "manifest.json").read_text())["settings"]["rater"]
        assert all("### Assistant" in b["messages"][-1]["content"] for b in server.bodies[4:])
        assert len(read_jsonl(tmp_path / "pair" / "data.jsonl")) == 4
