"""`gen curate` end to end: the real CLI in a subprocess, the real openai client, the loopback server."""
from __future__ import annotations

import json
import math
import re

import pytest

import tests.chat_server as chat_server
from tests.chat_server import ChatServer
from tests.helpers import assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen

SECRET = "test-secret-DO-NOT-LEAK-7373"
MARK = re.compile(r"QUALITY(\d+)")


def record(i: int, quality: int, **extra) -> dict:
    """A record whose answer carries QUALITYn: the scripted judge answers 'Score: n'."""
    return {"id": f"r{i}", "source": "clueweb", "tag": "augmented",
            "messages": [{"role": "user", "content": f"Explain how machine number {i} turns heat into motion"},
                         {"role": "assistant", "content": f"Machine {i} burns fuel, the gas expands and pushes "
                                                          f"a piston that turns a shaft. QUALITY{quality}"}],
            "meta": {"doc_id": f"doc{i}", "item": f"aug{i}"}, **extra}


def write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    return path


def judge(body: dict) -> str:
    """Brief reasoning, then 'Score: n' with n from the rated answer's QUALITY mark."""
    found = MARK.search(body["messages"][-1]["content"])
    return f"The answer explains the mechanism clearly.\nScore: {found.group(1) if found else 3}"


def curate(server: ChatServer, inp, out, cache, *extra: str, key: str = SECRET):
    return run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "judge", "--out", out, "--no-progress", *extra,
                   env=gen_env(OPENAI_API_KEY=key, BALEEN_CACHE=str(cache)))


def test_issue_command_line_keeps_a5_and_reselects_for_free(tmp_path):
    qualities = [5, 4, 5, 3, 1, 5, 2, 4]
    inp = write(tmp_path / "runs" / "aug" / "data.jsonl", [record(i, q) for i, q in enumerate(qualities)])
    out, cache = tmp_path / "runs" / "cur", tmp_path / "cache"
    with ChatServer(api_key=SECRET, reply=judge) as server:
        # the issue's command line, word for word (absolute paths: tests never write into the repo)
        proc = run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url,
                       "--model", "judge", "--threshold", "5", "--concurrency", "16", "--out", out,
                       env=gen_env(OPENAI_API_KEY=SECRET, BALEEN_CACHE=str(cache)))
        assert proc.returncode == 0, proc.stderr
        assert "kept 3" in proc.stdout and str(out / "data.jsonl") in proc.stdout
        kept = read_jsonl(out / "data.jsonl")
        assert [r["id"] for r in kept] == ["r0", "r2", "r5"]  # input order
        for r in kept:
            assert r["score"] == 5 and r["tag"] == "augmented" and r["meta"]["doc_id"].startswith("doc")
            assert r["reason"] == "The answer explains the mechanism clearly."
            cur = r["meta"]["curation"]
            assert cur["rater"] == "judge" and cur["template"].startswith("curate_rubric@")
            assert cur["raw"].endswith("Score: 5") and cur["input_item"].startswith("aug")
            assert r["score_expected"] == 5.0  # the server's logprobs have no digit alternatives
        rejected = read_jsonl(out / "rejected.jsonl")
        assert sorted((r["id"], r["reject"]) for r in rejected) == sorted(
            (f"r{i}", "below_threshold") for i, q in enumerate(qualities) if q < 5)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["stage"] == "curate" and manifest["status"] == "complete"
        assert manifest["counts"] == {"kept": 3, "rejected": 5, "errors": 0,
                                      "rejected_by_reason": {"below_threshold": 5}}
        assert manifest["scores"]["histogram"] == {"1": 1, "2": 1, "3": 1, "4": 2, "5": 3}
        assert manifest["usage"]["requests"] == 8 and server.requests_total == 8
        body = server.bodies[0]
        assert body["logprobs"] is True and body["top_logprobs"] == 10 and body["temperature"] == 0.0
        assert "Score: N" in body["messages"][0]["content"]

        again = curate(server, inp, out, cache, "--threshold", "4", "--concurrency", "16")
        assert again.returncode == 0 and server.requests_total == 8  # reselection: no request
        assert [r["id"] for r in read_jsonl(out / "data.jsonl")] == ["r0", "r1", "r2", "r5", "r7"]
        top = curate(server, inp, out, cache, "--threshold", "4", "--top", "2")
        assert top.returncode == 0 and server.requests_total == 8
        assert [r["id"] for r in read_jsonl(out / "data.jsonl")] == ["r0", "r2"]  # ties by id
        assert {r["reject"] for r in read_jsonl(out / "rejected.jsonl")} == {"below_threshold", "not_top"}
    for path in (tmp_path).rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_unparsed_scores_are_resampled_with_new_seeds_then_rejected(tmp_path):
    inp = write(tmp_path / "in.jsonl", [record(0, 5), record(1, 4), record(2, 5)])

    def reply(body):
        text = body["messages"][-1]["content"]
        if "number 0" in text:  # readable only on a retry
            return "Great.\nScore: 10" if body.get("seed") == 0 else "Great.\nScore: 5"
        if "number 1" in text:
            return "Great.\nScore: 4.5"  # never readable
        return judge(body)

    with ChatServer(reply=reply) as server:
        # --constrained off: every retry resamples the same request (auto sends the first one back:
        # tests/e2e/test_curate_constrained.py)
        proc = curate(server, inp, tmp_path / "out", tmp_path / "cache", "--retries-unparsed", "2",
                      "--constrained", "off")
        assert proc.returncode == 0, proc.stderr
        kept = read_jsonl(tmp_path / "out" / "data.jsonl")
        assert [(r["id"], r["score"], r["meta"]["curation"]["attempts"]) for r in kept] == [("r0", 5, 2), ("r2", 5, 1)]
        assert kept[0]["meta"]["curation"]["problems"] == ["out_of_range"]  # "Score: 10" was not read as 1
        rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
        assert [(r["id"], r["reject"], r["score"]) for r in rejected] == [("r1", "unparsed_score", None)]
        assert rejected[0]["meta"]["curation"]["problems"] == ["not_integer"] * 3
        seeds = sorted(b["seed"] for b in server.bodies if "number 1" in b["messages"][0]["content"])
        assert seeds == [0, 1, 2]
        temps = {b["seed"]: b["temperature"] for b in server.bodies if "number 1" in b["messages"][0]["content"]}
        assert temps[0] == 0.0 and temps[1] == temps[2] == 0.7
        assert server.requests_total == 2 + 3 + 1
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["counts"]["rejected_by_reason"] == {"unparsed_score": 1}


def test_expected_score_from_logprobs_ranks_and_breaks_ties(tmp_path, monkeypatch):
    confidence = {"r0": 0.55, "r1": 0.95, "r2": 0.75}

    def reply(body):
        rid = re.search(r"number (\d+)", body["messages"][-1]["content"]).group(1)
        return f"Solid answer for r{rid}.\nScore: 5"

    original = chat_server.make_logprobs

    def logprobs(text, top_k):
        rid = re.search(r"for (r\d+)", text).group(1)
        out = original(text, top_k)
        last = out["content"][-1]
        assert last["token"] == " 5"
        p = confidence[rid]
        last["logprob"] = math.log(p)
        last["top_logprobs"] = [{"token": " 5", "logprob": math.log(p), "bytes": []},
                                {"token": " 4", "logprob": math.log(1 - p), "bytes": []}]
        return out

    monkeypatch.setattr(chat_server, "make_logprobs", logprobs)
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(3)])
    with ChatServer(reply=reply) as server:
        proc = curate(server, inp, tmp_path / "out", tmp_path / "cache", "--top", "2")
        assert proc.returncode == 0, proc.stderr
        kept = read_jsonl(tmp_path / "out" / "data.jsonl")
        assert [(r["id"], r["score_expected"]) for r in kept] == [("r1", 4.95), ("r2", 4.75)]
        rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
        assert [(r["id"], r["reject"], r["score_expected"]) for r in rejected] == [("r0", "not_top", 4.55)]
        assert "expected 4.75" in proc.stdout


def test_filters_and_decontamination_run_before_any_request(tmp_path):
    evals = write(tmp_path / "eval.jsonl", [{"id": 0, "instruction": "Write a poem about the sea in the style of a pirate shanty with three verses"},
                                            {"id": 1, "instruction": "Which famous actors started their careers on Broadway?"}])
    records = [record(i, 5) for i in range(6)]
    records[1]["messages"][1]["content"] = "As an AI language model, I cannot explain machines."
    records[2]["messages"][0]["content"] = "Explain how machine number 0 turns heat into motion!"  # duplicate of r0
    records[3]["messages"][0]["content"] = ("Please write a poem about the sea in the style of a pirate shanty "
                                            "with three verses and a chorus")  # holds an eval prompt
    records[4]["messages"][0]["content"] = "Name famous actors who started their careers on Broadway"  # BLEU
    records[5]["messages"] += [{"role": "user", "content": "And who invented it?"},
                               {"role": "assistant", "content": "James Watt improved it a great deal. QUALITY5"}]
    inp = write(tmp_path / "in.jsonl", records)
    with ChatServer(reply=judge) as server:
        proc = curate(server, inp, tmp_path / "out", tmp_path / "cache", "--decontaminate", evals,
                      "--decontaminate-bleu", "20")
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 2  # only r0 and the dialog r5 were rated
        dialog = next(b for b in server.bodies if "James Watt" in b["messages"][0]["content"])
        assert "And who invented it?" in dialog["messages"][0]["content"]  # every turn is rated
        assert "conversation" in dialog["messages"][0]["content"]
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["prefilter"] == {"passed": 2, "refusal": 1, "duplicate": 1, "contaminated_ngram": 1,
                                         "contaminated_bleu": 1}
        assert manifest["counts"]["kept"] == 2
        rejected = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "rejected.jsonl")}
        assert rejected["r3"]["meta"]["curation"]["match"]["eval_index"] == 0
        assert rejected["r4"]["reject"] == "contaminated_bleu" and rejected["r4"]["meta"]["curation"]["match"]["value"] > 20


def test_a_rerun_with_a_filter_turned_off_rates_only_what_it_had_dropped(tmp_path):
    """The record filters are not in the fingerprint: --no-default-filters on a finished folder
    sends one request, for the refusal the patterns had dropped, and the manifest says so."""
    records = [record(i, 5) for i in range(3)]
    records[1]["messages"][1]["content"] = "As an AI language model, I cannot explain machines. QUALITY5"
    inp = write(tmp_path / "in.jsonl", records)
    with ChatServer(reply=judge) as server:
        assert curate(server, inp, tmp_path / "out", tmp_path / "cache").returncode == 0
        assert server.requests_total == 2
        proc = curate(server, inp, tmp_path / "out", tmp_path / "cache", "--no-default-filters")
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 3  # only r1, which no earlier session asked about
        assert sorted(r["id"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")) == ["r0", "r1", "r2"]
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["prefilter"] == {"passed": 3}
        assert manifest["settings"]["filters"]["block_patterns"]["patterns"] == {}


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    n = 40
    inp = write(tmp_path / "in.jsonl", [record(i, 1 + i % 5) for i in range(n)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer(latency_s=0.15, reply=judge) as server:
        args = ["curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url, "--model", "judge",
                "--threshold", "4", "--concurrency", "4", "--out", out, "--no-progress"]
        env = gen_env(OPENAI_API_KEY="k", BALEEN_CACHE=str(cache))
        kill_when(start_gen(*args, env=env), lambda: len(read_jsonl(out / "scoring" / "data.jsonl")) >= 8)
        done_before = len(read_jsonl(out / "scoring" / "data.jsonl"))
        assert 8 <= done_before < n
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
        sent_before = server.requests_total

        again = run_gen(*args, env=env)
        assert again.returncode == 0, again.stderr
        kept, rejected = read_jsonl(out / "data.jsonl"), read_jsonl(out / "rejected.jsonl")
        ids = [r["id"] for r in kept + rejected]
        assert sorted(ids) == sorted(f"r{i}" for i in range(n))  # none lost, none twice
        assert len(kept) == 16 and all(r["score"] >= 4 for r in kept)
        assert server.requests_total - sent_before <= n - done_before
        assert server.requests_total <= n + 4

        # a kill during the final writing: derived files gone or cut; the same command rebuilds them
        (out / "manifest.json").unlink()
        (out / "data.jsonl").write_text((out / "data.jsonl").read_text()[:100])
        before = server.requests_total
        third = run_gen(*args, env=env)
        assert third.returncode == 0 and server.requests_total == before
        assert [r["id"] for r in read_jsonl(out / "data.jsonl")] == [r["id"] for r in kept]


def test_other_rater_settings_in_the_same_folder_are_refused(tmp_path):
    write(tmp_path / "aug" / "data.jsonl", [record(0, 5)])
    inp = tmp_path / "aug"  # a run folder works as --input (its data.jsonl)
    with ChatServer(reply=judge) as server:
        assert curate(server, inp, tmp_path / "out", tmp_path / "cache").returncode == 0
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 1
        proc = run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url,
                       "--model", "other-judge", "--out", tmp_path / "out", "--no-progress",
                       env=gen_env(OPENAI_API_KEY="k", BALEEN_CACHE=str(tmp_path / "cache")))
        assert_one_line_error(proc, 2, "other settings")
        assert server.requests_total == 1


@pytest.mark.parametrize("content,extra,needle", [
    (None, [], "no such file"),
    (b"", [], "empty"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": broken\n', [], ":2"),
    (b'{"question": "no messages"}\n', [], "messages"),
    (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n', [], "utf-8"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', ["--top", "2", "--top-frac", "0.5"], "not both"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', ["--decontaminate-bleu", "20"], "--decontaminate"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', ["--decontaminate", "/nonexistent/eval.jsonl"],
     "no such file"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', ["--adapter", "/tmp/a"], "--adapter"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', ["--template", "nope"], "nope"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', ["--block", "(unclosed"], "regex"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, content, extra, needle):
    inp = tmp_path / "in.jsonl"
    if content is not None:
        inp.write_bytes(content)
    proc = run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--model", "m", "--out", tmp_path / "out", "--no-progress", *extra,
                   env=gen_env(BALEEN_CACHE=str(tmp_path / "cache")))
    assert_one_line_error(proc, 2, needle)


def test_bad_usage_exits_2(tmp_path):
    assert_one_line_error(run_gen("curate", "--input", "x.jsonl", "--threshold", "7"), 2, "threshold")
    assert_one_line_error(run_gen("curate", "--input", "x.jsonl", "--top-frac", "0"), 2, "top-frac")
    assert_one_line_error(run_gen("curate"), 2, "--input")
