"""`gen selfchat --feedback N`: the real CLI, the real openai client, the loopback server as
teacher, person and judge (the judge's verdicts scripted with Rules)."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from generators.selfchat.feedback import parse_scores
from tests.chat_server import ChatServer, Rule, messages_text
from tests.helpers import assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen, write_seeds

QUESTIONS = ["How do tides work?", "Why do leaves change colour?"]
JUDGE_MARK = "## Candidate replies"
VERDICT = "The second reply is the clearest and most complete.\nAnswer 1: 4\nAnswer 2: 9\nAnswer 3: 2"
VERDICT_OF_TWO = "The second reply is the clearest.\nAnswer 1: 4\nAnswer 2: 9"


def role_of(body: dict) -> str:
    """Which side asked: the judge, the simulated person or the assistant."""
    if JUDGE_MARK in messages_text(body):
        return "judge"
    first = body["messages"][0]
    return "person" if first["role"] == "system" and "role-playing" in first["content"] else "assistant"


def reply(body: dict) -> str:
    """The person asks one follow-up; each assistant answer names its seed, so candidates differ."""
    if role_of(body) == "person":
        return "Could you give me one more concrete example of that?"
    question = body["messages"][-1]["content"]
    return f"Answer drawn with seed {body.get('seed')}: about '{question}', here are the main ideas, step by step."


def selfchat(server: ChatServer, seeds, out, cache, *extra: str):
    return run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai",
                   "--base-url", server.base_url, "--model", "teacher", "--mode", "agents", "--max-turns", "2",
                   "--out", out, "--cache-dir", cache, "--no-progress", *extra, env=gen_env(OPENAI_API_KEY="k"))


def shown_answers(judge_body: dict) -> list[str]:
    """The candidates as the judge saw them, in order (Answer 1, Answer 2, ...)."""
    prompt = judge_body["messages"][-1]["content"]
    block = prompt.split(JUDGE_MARK, 1)[1].split("\nFirst compare", 1)[0]
    return [part.strip() for part in re.split(r"^### Answer \d+\n", block, flags=re.M)[1:]]


def request_key(body: dict) -> str:
    return json.dumps({"messages": body["messages"], "seed": body.get("seed"), "model": body.get("model")},
                      sort_keys=True)


def test_the_judges_pick_is_continued_and_every_judged_turn_yields_preferences(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer(rules=[Rule(match=JUDGE_MARK, reply=VERDICT)], reply=reply) as server:
        proc = selfchat(server, seeds, out, cache, "--feedback", "3", "--judge-model", "judge")
        assert proc.returncode == 0, proc.stderr
        bodies = list(server.bodies)
        # per dialog: 2 turns x (3 candidates + 1 judge) + 1 person request
        assert Counter(map(role_of, bodies)) == {"assistant": 12, "judge": 4, "person": 2}
        assert {b["model"] for b in bodies if role_of(b) == "judge"} == {"judge"}
        records = read_jsonl(out / "data.jsonl")
        assert len(records) == 2
        expected_pairs = []
        for record in records:
            messages, verdicts = record["messages"], record["meta"]["feedback"]
            assert [m["role"] for m in messages] == ["user", "assistant"] * 2 and len(verdicts) == 2
            assert record["meta"]["judge_model"] == "judge"
            for turn, verdict in enumerate(verdicts):
                prefix = messages[:2 * turn + 1]
                asked = [b for b in bodies if role_of(b) == "assistant" and b["messages"][1:] == prefix]
                assert len(asked) == 3 and len({b["seed"] for b in asked}) == 3  # N candidates, N seeds
                assert sorted(verdict["candidates"]) == sorted(reply(b) for b in asked)
                judged = [b for b in bodies if role_of(b) == "judge"
                          and sorted(shown_answers(b)) == sorted(verdict["candidates"])]
                assert len(judged) == 1
                shown = shown_answers(judged[0])
                picked = shown[1]  # the scripted verdict gives Answer 2 the top score
                assert messages[2 * turn + 1]["content"] == picked == verdict["candidates"][verdict["chosen"]]
                assert verdict["judgement"] == "judged"
                scores = dict(zip(shown, (4, 9, 2)))
                assert verdict["scores"] == [scores[c] for c in verdict["candidates"]]
                for other in (shown[0], shown[2]):
                    expected_pairs.append((record["id"], turn, json.dumps(prefix), picked, other, 9 - scores[other]))
            person = next(b for b in bodies if role_of(b) == "person" and messages[0]["content"] in messages_text(b))
            assert person["messages"][-1]["content"] == messages[1]["content"]  # the person heard the pick

        lines = read_jsonl(out / "preferences.jsonl")
        got = [(p["meta"]["item"], p["meta"]["turn"], json.dumps(p["prompt"]), p["chosen"][0]["content"],
                p["rejected"][0]["content"], p["meta"]["margin"]) for p in lines]
        assert sorted(got) == sorted(expected_pairs) and len({p["id"] for p in lines}) == 8
        assert all(p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant" for p in lines)
        manifest = json.loads((out / "manifest.json").read_text())
        feedback = manifest["feedback"]
        assert (feedback["turns"], feedback["judged"], feedback["unparsed"], feedback["pairs"]) == (4, 4, 0, 8)
        assert feedback["judge_requests"] == 4 and feedback["n"] == 3 and feedback["judge_model"] == "judge"
        assert manifest["settings"]["feedback"]["n"] == 3 and manifest["settings"]["feedback"]["judge_model"] == "judge"
        assert manifest["usage"]["requests"] == 18 == sum(r["meta"]["usage"]["requests"] for r in records)

        before = (out / "preferences.jsonl").read_bytes()
        again = selfchat(server, seeds, out, cache, "--feedback", "3", "--judge-model", "judge")
        assert again.returncode == 0, again.stderr
        assert server.requests_total == 18  # nothing asked twice
        assert (out / "preferences.jsonl").read_bytes() == before
        assert json.loads((out / "manifest.json").read_text())["feedback"]["pairs"] == 8

        other = selfchat(server, seeds, out, cache, "--feedback", "4", "--judge-model", "judge")
        assert_one_line_error(other, 2, "other settings")  # N is part of the fingerprint

    exported = run_gen("export", "--input", out, "--format", "dpo", "--out", tmp_path / "dpo")
    assert exported.returncode == 0, exported.stderr
    rows = [row for path in sorted((tmp_path / "dpo").rglob("*.jsonl")) if path.name != "provenance.jsonl"
            for row in read_jsonl(path)]
    assert len(rows) == 8 and {json.dumps(r["prompt"]) for r in rows} == {p[2] for p in expected_pairs}


def test_a_judge_on_its_own_server_is_booked_to_the_item(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    with ChatServer(reply=reply) as teacher, ChatServer(rules=[Rule(reply=VERDICT_OF_TWO)
                                                               ]) as judge:
        proc = selfchat(teacher, seeds, tmp_path / "out", tmp_path / "cache", "--feedback", "2",
                        "--judge-model", "critic", "--judge-base-url", judge.base_url)
        assert proc.returncode == 0, proc.stderr
        assert Counter(map(role_of, teacher.bodies)) == {"assistant": 4, "person": 1}
        assert Counter(map(role_of, judge.bodies)) == {"judge": 2}
        assert {b["model"] for b in judge.bodies} == {"critic"}
        record = read_jsonl(tmp_path / "out" / "data.jsonl")[0]
        assert record["meta"]["usage"]["requests"] == 7 and record["meta"]["judge_model"] == "critic"
        assert [v["judgement"] for v in record["meta"]["feedback"]] == ["judged", "judged"]
        assert len(read_jsonl(tmp_path / "out" / "preferences.jsonl")) == 2
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["usage"]["requests"] == 7 and manifest["feedback"]["judge_base_url"] == judge.base_url


@pytest.mark.parametrize("constrained", ["auto", "off"])
def test_an_unreadable_verdict_falls_back_to_the_first_answer_and_is_counted(tmp_path, constrained):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    rules = [Rule(match=JUDGE_MARK, reply="Both are fine.\nAnswer 1: 7/10\nAnswer 2: 8/10")]
    with ChatServer(rules=rules, reply=reply) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--feedback", "2",
                        "--judge-model", "judge", "--max-turns", "1", "--constrained", constrained)
        assert proc.returncode == 0, proc.stderr
        record = read_jsonl(tmp_path / "out" / "data.jsonl")[0]
        verdict = record["meta"]["feedback"][0]
        assert verdict["judgement"] == "unparsed" and verdict["chosen"] == 0 and "7/10" in verdict["judge_text"]
        assert record["messages"][1]["content"] == verdict["candidates"][0]
        assert read_jsonl(tmp_path / "out" / "preferences.jsonl") == []
        feedback = json.loads((tmp_path / "out" / "manifest.json").read_text())["feedback"]
        assert (feedback["unparsed"], feedback["judged"], feedback["pairs"]) == (1, 0, 0)
        judged = [b for b in server.bodies if role_of(b) == "judge"]
        if constrained == "off":  # plain requests, no retry
            assert len(judged) == 1 and "response_format" not in judged[0] and "retried" not in verdict
            assert feedback["judge_requests"] == 1 and feedback["retried"] == 0
            return
        # auto: the judge's schema on every request, and one retry that says what was wrong
        assert len(judged) == 2 and verdict["retried"] is True
        for body in judged:
            schema = body["response_format"]["json_schema"]["schema"]
            assert schema["required"] == ["reason", "answer_1", "answer_2"]
        assert judged[1]["messages"][1]["content"] == "Both are fine.\nAnswer 1: 7/10\nAnswer 2: 8/10"
        assert "from 1 to 10" in judged[1]["messages"][2]["content"]
        assert feedback["judge_requests"] == 2 and feedback["retried"] == 1 and feedback["unparsed_share"] == 1.0
        assert record["meta"]["usage"]["requests"] == 2 + 2  # two candidates, two judge requests


def test_a_json_verdict_is_read_under_the_schema(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    rules = [Rule(match=JUDGE_MARK, schema=True, reply='{"reason": "The second.", "answer_1": 3, "answer_2": 9}')]
    with ChatServer(rules=rules, reply=reply) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--feedback", "2",
                        "--judge-model", "judge", "--max-turns", "1")
        assert proc.returncode == 0, proc.stderr
        verdict = read_jsonl(tmp_path / "out" / "data.jsonl")[0]["meta"]["feedback"][0]
        assert verdict["judgement"] == "judged" and sorted(verdict["scores"]) == [3, 9]
        assert len(read_jsonl(tmp_path / "out" / "preferences.jsonl")) == 1


def test_identical_candidates_are_not_sent_to_the_judge(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:1])
    with ChatServer() as server:  # the default reply ignores the seed: all candidates are the same
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--feedback", "3",
                        "--judge-model", "judge", "--max-turns", "1")
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 3 and not any(role_of(b) == "judge" for b in server.bodies)
        verdict = read_jsonl(tmp_path / "out" / "data.jsonl")[0]["meta"]["feedback"][0]
        assert verdict["judgement"] == "identical" and verdict["chosen"] == 0
        assert read_jsonl(tmp_path / "out" / "preferences.jsonl") == []


def test_a_killed_run_resumes_without_repeating_requests_or_preference_lines(tmp_path):
    questions = [f"What is fact number {i} about rivers?" for i in range(12)]
    seeds = write_seeds(tmp_path / "s.jsonl", questions)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer(rules=[Rule(match=JUDGE_MARK, reply=VERDICT_OF_TWO)], reply=reply,
                    latency_s=0.05) as server:
        args = ["selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--base-url",
                server.base_url, "--model", "teacher", "--mode", "agents", "--max-turns", "2", "--feedback", "2",
                "--judge-model", "judge", "--concurrency", "2", "--out", out, "--cache-dir", cache, "--no-progress"]
        proc = start_gen(*args, env=gen_env(OPENAI_API_KEY="k"))
        kill_when(proc, lambda: len(read_jsonl(out / "data.jsonl")) >= 3)
        done = [r["meta"]["seed"] for r in read_jsonl(out / "data.jsonl")]
        assert len(done) < 12
        sent_before = server.requests_total
        again = run_gen(*args, env=gen_env(OPENAI_API_KEY="k"))
        assert again.returncode == 0, again.stderr
        records = read_jsonl(out / "data.jsonl")
        assert sorted(r["meta"]["seed"] for r in records) == sorted(questions)
        lines = read_jsonl(out / "preferences.jsonl")
        assert len(lines) == len({p["id"] for p in lines}) == 2 * 12  # one pair per judged turn, none twice
        assert {p["meta"]["item"] for p in lines} == {r["id"] for r in records}
        for body in server.bodies[sent_before:]:  # nothing of a dialog written before the kill is asked again
            assert not any(seed in messages_text(body) for seed in done)
        repeats = sum(n - 1 for n in Counter(map(request_key, server.bodies)).values())
        assert repeats <= 2 * 7  # at most the 2 dialogs in flight at the kill, 7 requests each (2 x (2 + 1) + 1)
        assert json.loads((out / "manifest.json").read_text())["feedback"]["pairs"] == 24


@pytest.mark.parametrize("extra,needle", [
    (["--mode", "agents", "--feedback", "1", "--judge-model", "j"], "--feedback 1"),
    (["--mode", "agents", "--feedback", "3"], "--judge-model"),
    (["--mode", "agents", "--judge-model", "j"], "add --feedback"),
    (["--feedback", "3", "--judge-model", "j"], "--mode agents"),
    (["--mode", "agents", "--feedback", "2", "--judge-model", "j", "--judge-base-url", "ftp://x"], "the judge"),
])
def test_bad_feedback_flags_exit_2_with_one_line(tmp_path, extra, needle):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--base-url",
                   "http://127.0.0.1:9/v1", "--model", "m", "--out", tmp_path / "out", "--no-progress", *extra,
                   env=gen_env(OPENAI_API_KEY="k"))
    assert_one_line_error(proc, 2, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text,count,scores", [
    ("Close call.\nAnswer 1: 6\nAnswer 2: 8", 2, [6, 8]),
    ("**Answer 1:** 3\n**Answer 2:** 10\nAnswer 3: 1", 3, [3, 10, 1]),
    ("Answer 1: 2\nAnswer 2: 5\nOn reflection:\nAnswer 1: 9", 2, [9, 5]),  # the last line of each decides
    ("Answer 1: 7/10\nAnswer 2: 8/10", 2, None),
    ("Answer 1: 7.5\nAnswer 2: 8", 2, None),
    ("Answer 1: 11\nAnswer 2: 8", 2, None),
    ("Answer 1: 0\nAnswer 2: 8", 2, None),
    ("Answer 1: 7", 2, None),
    ("Answer 1: 7\nAnswer 2: 8\nAnswer 3: 9", 2, None),
    ("Answer 1 is better: 7 vs 5", 2, None),
    ("", 2, None),
])
def test_verdicts_are_parsed_strictly(text, count, scores):
    assert parse_scores(text, count) == scores


@pytest.mark.slow
def test_feedback_on_the_embedded_smollm2_judging_itself(tmp_path):
    """The local path: one SmolLM2 loaded once answers N times and judges; a 135M judge rarely
    writes the score lines, so what is checked is the plumbing and the counters, not its taste."""
    from generators.backends.embedded import default_cache_dir

    seeds = write_seeds(tmp_path / "s.jsonl", ["How do plants make food?"])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf", "--model", "smollm2-135m",
                   "--mode", "agents", "--max-turns", "1", "--max-tokens", "120", "--feedback", "3",
                   "--judge-model", "smollm2-135m", "--assistant-prompt", "selfchat_assistant_brief",
                   "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--no-progress",
                   env=gen_env(BALEEN_CACHE=str(default_cache_dir())), timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(tmp_path / "out" / "data.jsonl") + read_jsonl(tmp_path / "out" / "rejected.jsonl")
    verdict = lines[0]["meta"]["feedback"][0]
    assert len(verdict["candidates"]) == 3 and len(set(verdict["candidates"])) == 3  # distinct seeds, distinct answers
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    feedback = manifest["feedback"]
    # one judge request, and one more when --constrained auto sent an unreadable verdict back
    # (whether the greedy 135M judge needs it depends on the candidates it was shown)
    retried = int(bool(verdict.get("retried")))
    assert feedback["judged"] + feedback["unparsed"] == 1 and feedback["retried"] == retried
    assert feedback["judge_requests"] == 1 + retried
    assert manifest["usage"]["requests"] == 3 + 1 + retried == lines[0]["meta"]["usage"]["requests"]
    assert len(read_jsonl(tmp_path / "out" / "preferences.jsonl")) == feedback["pairs"]


def test_pairs_of_a_rejected_dialog_stay_in_its_record_and_out_of_preferences(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", ["Who built you, chatbot?"])

    def leaky(body: dict) -> str:  # every candidate leaks an identity, so the identity filter rejects the dialog
        return f"I am ChatGPT, trained by OpenAI; seed {body.get('seed')} says hello and answers at length."

    with ChatServer(rules=[Rule(match=JUDGE_MARK, reply=VERDICT)], reply=leaky) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--feedback", "3",
                        "--judge-model", "judge", "--max-turns", "1")
        assert proc.returncode == 0, proc.stderr
        rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
        assert [r["reject"] for r in rejected] == ["identity"]
        assert rejected[0]["meta"]["feedback"][0]["judgement"] == "judged"
        assert read_jsonl(tmp_path / "out" / "preferences.jsonl") == []
        feedback = json.loads((tmp_path / "out" / "manifest.json").read_text())["feedback"]
        assert (feedback["judged"], feedback["pairs"], feedback["pairs_in_rejected"]) == (1, 0, 2)
