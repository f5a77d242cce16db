"""Reasoning teachers end to end: the real `gen` CLI against the loopback servers answering with
thinking in each form (inline `<think>`, a `reasoning_content` / `reasoning` field, Anthropic
thinking blocks, and thinking cut by max_tokens), through self-chat (transcript and agents),
backtranslation, curation and export. No think text reaches the training messages unless
--keep-reasoning, and then it is where each export format expects it."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.anthropic_server import AnthropicServer
from tests.backtranslate_fixtures import backward_reply, plain_pages, write_corpus
from tests.chat_server import ChatServer, default_reply
from tests.e2e.test_curate_cli import record, write
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen, write_seeds

KEY = "test-key-reasoning"
ENV = gen_env(OPENAI_API_KEY=KEY)


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def messages_text(records: list[dict]) -> str:
    """Everything the training messages hold (content and any other field)."""
    return json.dumps([r["messages"] for r in records])


def selfchat(server, seeds: Path, out: Path, cache: Path, *extra: str):
    return run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--base-url",
                   server.base_url, "--model", "teacher", "--out", out, "--cache-dir", cache, "--no-progress",
                   *extra, env=ENV)


def thinking_transcript(body: dict):
    """A teacher that thinks in every form, chosen by the seed's word."""
    transcript = default_reply(body)
    asked = body["messages"][-1]["content"]
    if "bicycle" in asked:  # inline: before the transcript and inside every AI turn
        return "<think>PLAN-SECRET of the talk</think>\n" + transcript.replace("[AI] ", "[AI] <think>TURN-SECRET</think>")
    if "compass" in asked:  # a field beside the transcript
        return {"content": transcript, "reasoning": "FIELD-SECRET about the whole dialog"}
    if "telescope" in asked:  # a think block that never closes (cut by the rule below)
        return "<think>CUT-SECRET and on and on and on"
    if "piano" in asked:  # the second AI turn's thinking never closes
        return ("[Human] What is a piano?\n[AI] <think>OK-SECRET</think>An instrument with strings.\n"
                "[Human] How is it tuned?\n[AI] <think>LOST-SECRET never closed")
    return transcript


def test_transcript_mode_keeps_thinking_out_of_the_messages_in_every_form(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["How does a bicycle work?", "How does a compass work?",
                                                   "How does a telescope work?", "How does a piano work?"])
    out, kept_out, cache = tmp_path / "out", tmp_path / "kept", tmp_path / "cache"
    with ChatServer(reply=thinking_transcript, rules=[{"match": "telescope", "truncate": 4}]) as server:
        proc = selfchat(server, seeds, out, cache, "--reasoning-effort", "high")
        assert proc.returncode == 0, proc.stderr
        assert all(body["reasoning_effort"] == "high" for body in server.bodies)
        data = {r["meta"]["seed"].split()[3]: r for r in read_jsonl(out / "data.jsonl")}
        rejected = read_jsonl(out / "rejected.jsonl")
        assert [r["reject"] for r in rejected] == ["truncated_reasoning"]  # the telescope: no transcript at all
        assert sorted(data) == ["bicycle", "compass", "piano"]
        assert "SECRET" not in messages_text(list(data.values())) and "think>" not in messages_text(list(data.values()))
        bicycle = data["bicycle"]
        assert bicycle["meta"]["transcript_reasoning"] == "PLAN-SECRET of the talk"
        assert bicycle["meta"]["reasoning"] == ["TURN-SECRET"] * 3 and len(bicycle["messages"]) == 6
        assert bicycle["messages"][1]["content"].startswith("Sure. The best way")
        assert data["compass"]["meta"]["transcript_reasoning"] == "FIELD-SECRET about the whole dialog"
        assert "reasoning" not in data["compass"]["meta"]
        piano = data["piano"]  # the exchange whose thinking never closed is dropped, the one before kept
        assert [m["content"] for m in piano["messages"]] == ["What is a piano?", "An instrument with strings."]
        assert piano["meta"]["reasoning"] == ["OK-SECRET"] and "dropped_truncated_reasoning" in piano["meta"]["notes"]
        usage = manifest_of(out)["usage"]  # the field's words are counted by the server; inline thinking estimated
        assert usage["reasoning_tokens"] == sum(r["meta"]["usage"].get("reasoning_tokens", 0)
                                                for r in read_jsonl(out / "data.jsonl") + rejected) > 5
        assert data["compass"]["meta"]["usage"]["reasoning_tokens"] == 5

        sent = server.requests_total
        again = selfchat(server, seeds, kept_out, cache, "--reasoning-effort", "high", "--keep-reasoning")
        assert again.returncode == 0, again.stderr
        assert server.requests_total == sent  # the same requests: answered from the cache
    kept = {r["meta"]["seed"].split()[3]: r for r in read_jsonl(kept_out / "data.jsonl")}
    assert [m.get("reasoning_content") for m in kept["bicycle"]["messages"]] == [None, "TURN-SECRET"] * 3
    assert "PLAN-SECRET" not in messages_text(list(kept.values()))  # the plan of both sides is no answer's thought
    assert manifest_of(kept_out)["settings"]["keep_reasoning"] is True
    report = run_gen("report", out)
    assert report.returncode == 0, report.stderr
    row = f"| out | {usage['completion_tokens']:,} | {usage['reasoning_tokens']:,} |"
    assert "## Reasoning" in (out / "report.md").read_text("utf-8") and row in (out / "report.md").read_text("utf-8")


def agents_reply(body: dict):
    """The person asks once more after the seed, then ends; the assistant thinks in a field, then answers."""
    messages = body["messages"]
    if messages[0]["content"].startswith("You are role-playing a person"):
        asked = sum(1 for m in messages if m["role"] == "assistant")  # its own lines, flipped
        return "[END]" if asked >= 2 else f"And how does the gearbox manage part {asked + 1}?"
    turn = sum(1 for m in messages if m["role"] == "assistant")
    answer = ["In a gearbox, gears of different sizes trade speed for force as the shaft turns.",
              "The gearbox clutch lets the driver change the ratio without grinding the teeth.",
              "Oil keeps the gearbox metal cool and quiet over many thousands of miles."][turn % 3]
    return {"content": answer,
            "reasoning": f"ASSIST-THINK for turn {turn}", "reasoning_field": "reasoning"}


def export(folder: Path, fmt: str, out: Path) -> Path:
    proc = run_gen("export", "--input", folder, "--format", fmt, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_agents_mode_hides_thinking_from_the_person_and_export_places_kept_thinking(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["How does a gearbox work?", "How does a telescope work?"])
    out, plain_out, cache = tmp_path / "keep", tmp_path / "plain", tmp_path / "cache"
    with ChatServer(reply=agents_reply, rules=[{"match": "telescope", "truncate": 0}]) as server:
        proc = selfchat(server, seeds, out, cache, "--mode", "agents", "--keep-reasoning")
        assert proc.returncode == 0, proc.stderr
        for body in server.bodies:  # the person, and the assistant itself, never see the thinking
            assert "ASSIST-THINK" not in json.dumps(body)
        assert selfchat(server, seeds, plain_out, cache, "--mode", "agents").returncode == 0
    [dialog] = read_jsonl(out / "data.jsonl")
    assert [r["reject"] for r in read_jsonl(out / "rejected.jsonl")] == ["truncated_reasoning"]
    answers = [m for m in dialog["messages"] if m["role"] == "assistant"]
    assert [m["reasoning_content"] for m in answers] == ["ASSIST-THINK for turn 0", "ASSIST-THINK for turn 1"]
    assert dialog["meta"]["reasoning"] == [m["reasoning_content"] for m in answers]
    assert all("reasoning_content" not in m for m in dialog["messages"] if m["role"] == "user")
    [plain] = read_jsonl(plain_out / "data.jsonl")
    assert "ASSIST-THINK" not in messages_text([plain]) and plain["meta"]["reasoning"] == dialog["meta"]["reasoning"]

    sharegpt = read_jsonl(export(out, "sharegpt", tmp_path / "sg") / "train.jsonl")[0]["conversations"]
    assert sharegpt[1]["from"] == "gpt" and sharegpt[1]["value"] == (
        "<think>\nASSIST-THINK for turn 0\n</think>\n\n" + answers[0]["content"])
    alpaca = read_jsonl(export(out, "alpaca", tmp_path / "al") / "train.jsonl")[0]
    assert alpaca["output"] == "<think>\nASSIST-THINK for turn 0\n</think>\n\n" + answers[0]["content"]
    for fmt in ("openai", "messages"):
        line = read_jsonl(export(out, fmt, tmp_path / fmt) / "train.jsonl")[0]
        assert [m.get("reasoning_content") for m in line["messages"] if m["role"] == "assistant"] == \
            [m["reasoning_content"] for m in answers]
    hf = export(out, "hf", tmp_path / "hf")
    rows = pq.read_table(next((hf / "data").glob("train-*.parquet"))).to_pylist()
    assert [m["reasoning_content"] for m in rows[0]["messages"]] == \
        [None, "ASSIST-THINK for turn 0", None, "ASSIST-THINK for turn 1"]
    assert "Reasoning included: 1 records" in (hf / "README.md").read_text("utf-8")
    assert "<think>" in (tmp_path / "sg" / "README.md").read_text("utf-8")

    for fmt in ("sharegpt", "openai", "hf"):  # made without --keep-reasoning: no thinking in any file
        folder = export(plain_out, fmt, tmp_path / f"plain-{fmt}")
        for path in folder.rglob("*"):
            assert not path.is_file() or b"ASSIST-THINK" not in path.read_bytes(), path
        assert "Reasoning included" not in (folder / "README.md").read_text("utf-8")
    assert [f.name for f in pq.read_schema(next((tmp_path / "plain-hf" / "data").glob("*.parquet")))
            .field("messages").type.value_type] == ["role", "content"]


def test_backtranslation_keeps_the_backward_models_thinking_out_of_the_instruction(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(2))

    def thinking_backward(body: dict) -> str:
        if "Topic 1.1" in body["messages"][-1]["content"]:
            return "<think>BT-SECRET never closed"
        return "<think>BT-SECRET: the text explains a garden topic.</think>\n" + backward_reply(body)

    with ChatServer(reply=thinking_backward) as server:
        proc = run_gen("backtranslate", "--corpus", corpus, "--backend", "openai", "--base-url", server.base_url,
                       "--model", "backward", "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache",
                       "--no-progress", env=ENV)
        assert proc.returncode == 0, proc.stderr
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 3 and "BT-SECRET" not in messages_text(kept)
    assert all(r["messages"][0]["content"].startswith("What should I know about topic") for r in kept)
    assert all(r["meta"]["reasoning"] == "BT-SECRET: the text explains a garden topic." for r in kept)
    assert all("raw" not in r["meta"] for r in kept)  # the visible answer was the instruction as it is
    [cut] = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert cut["reject"] == "truncated_reasoning" and cut["meta"]["reasoning"] == "BT-SECRET never closed"
    assert manifest_of(tmp_path / "out")["counts"]["rejected_by_reason"]["truncated_reasoning"] == 1


def test_the_rater_reads_only_the_visible_answer(tmp_path):
    inp = write(tmp_path / "in" / "data.jsonl", [record(0, 5), record(1, 4), record(2, 3)])

    def thinking_judge(body: dict):
        rated = body["messages"][-1]["content"]
        if "QUALITY5" in rated:  # a field that names a score before changing its mind
            return {"content": "Clear and complete.\nScore: 5", "reasoning": "Score: 2 ... no wait, it is good."}
        if "QUALITY4" in rated:
            return "<think>\nScore: 1? No.\n</think>\nMostly right.\nScore: 4"
        return "<think>Score: 3 maybe, let me think more and more"

    with ChatServer(reply=thinking_judge) as server:
        proc = run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", server.base_url, "--model",
                       "judge", "--out", tmp_path / "cur", "--cache-dir", tmp_path / "cache", "--no-progress",
                       "--threshold", "1", env=ENV)
        assert proc.returncode == 0, proc.stderr
    scored = {r["id"]: r for r in read_jsonl(tmp_path / "cur" / "scoring" / "data.jsonl")}
    assert (scored["r0"]["score"], scored["r1"]["score"]) == (5, 4)
    assert scored["r0"]["reason"] == "Clear and complete." and scored["r1"]["reason"] == "Mostly right."
    assert scored["r0"]["meta"]["curation"]["reasoning"] == "Score: 2 ... no wait, it is good."
    [unparsed] = read_jsonl(tmp_path / "cur" / "scoring" / "rejected.jsonl")
    assert unparsed["reject"] == "unparsed_score" and unparsed["meta"]["curation"]["raw"] == ""
    assert unparsed["meta"]["curation"]["problems"] == ["no_score"] * 3


def test_anthropic_thinking_blocks_and_the_effort_as_a_thinking_budget(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["How does a bicycle work?", "How does a telescope work?"])
    rules = [{"match": "telescope", "reasoning": "CLAUDE-CUT thinking", "reply": "unused", "truncate": 0},
             {"match": "bicycle", "reasoning": "CLAUDE-SECRET thinking about the talk"}]
    with AnthropicServer(rules=rules) as server:
        proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "anthropic",
                       "--base-url", server.url, "--model", "claude-test", "--out", tmp_path / "out",
                       "--cache-dir", tmp_path / "cache", "--no-progress", "--reasoning-effort", "medium",
                       "--temperature", "0.5", env=gen_env(ANTHROPIC_API_KEY="fake-key"))
        assert proc.returncode == 0, proc.stderr
        for body in server.messages:
            assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
            assert body["max_tokens"] == 1024 + 4096 and "temperature" not in body
    [kept] = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert "CLAUDE" not in messages_text([kept])
    assert kept["meta"]["transcript_reasoning"] == "CLAUDE-SECRET thinking about the talk"
    assert kept["meta"]["usage"]["reasoning_tokens"] > 0  # estimated: the API does not count them apart
    [cut] = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert cut["reject"] == "truncated_reasoning"


def test_reasoning_effort_is_refused_by_a_backend_without_the_knob(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["How does a bicycle work?"])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf", "--out", tmp_path / "out",
                   "--reasoning-effort", "low")
    assert_one_line_error(proc, 2, "--reasoning-effort", "--backend hf")
    assert not (tmp_path / "out").exists()


def test_feedback_judge_reads_only_the_visible_verdict_and_sees_no_candidates_thinking(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["How do tides work?"])
    judge_mark = "## Candidate replies"

    def reply(body: dict):
        seed = body.get("seed")
        return {"content": f"Answer drawn with seed {seed}: tides work as the moon pulls the oceans, step by step.",
                "reasoning": f"CAND-THINK for seed {seed}"}

    verdict = {"match": judge_mark, "reply": "The second is clearer.\nAnswer 1: 4\nAnswer 2: 9",
               "reasoning": "Answer 1: 10\nAnswer 2: 1 ... no wait, the other way round"}
    with ChatServer(rules=[verdict], reply=reply) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--mode", "agents", "--max-turns", "1",
                        "--feedback", "2", "--judge-model", "judge")
        assert proc.returncode == 0, proc.stderr
        [judged] = [b for b in server.bodies if judge_mark in json.dumps(b)]
        assert "CAND-THINK" not in json.dumps(judged)
    [dialog] = read_jsonl(tmp_path / "out" / "data.jsonl")
    [turn] = dialog["meta"]["feedback"]
    assert turn["judgement"] == "judged" and turn["chosen"] == turn["shown"][1]  # the visible "Answer 2: 9"
    assert sorted(turn["scores"]) == [4, 9] and "no wait" not in turn["judge_text"]
    chosen_seed = turn["candidates"][turn["chosen"]].split(":")[0].removeprefix("Answer drawn with seed ")
    assert dialog["meta"]["reasoning"] == [f"CAND-THINK for seed {chosen_seed}"]
    assert "CAND-THINK" not in messages_text([dialog])
