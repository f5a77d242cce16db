"""`gen selfchat` end to end: the real CLI in a subprocess, the real openai client, the loopback server."""
from __future__ import annotations

import json

import pytest

from tests.chat_server import ChatServer
from tests.helpers import (assert_one_line_error, gen_env, kill_when, read_jsonl, run_gen, start_gen,
                           write_seeds)

SECRET = "test-secret-DO-NOT-LEAK-4242"
QUESTIONS = [f"How does a {thing} work?" for thing in
             ("bicycle", "compass", "refrigerator", "vaccine", "mortgage", "telescope", "battery", "piano")]


def selfchat(server: ChatServer, seeds, out, cache, *extra: str, env=None):
    return run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai",
                   "--base-url", server.base_url, "--model", "teacher", "--concurrency", "32",
                   "--out", out, "--cache-dir", cache, "--no-progress", *extra,
                   env=env or gen_env(OPENAI_API_KEY=SECRET))


def every_file(*folders):
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                yield path


def test_issue_command_line_works_and_reruns_for_free(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", QUESTIONS)
    out, cache = tmp_path / "runs" / "chat", tmp_path / "cache"
    with ChatServer(api_key=SECRET) as server:
        proc = selfchat(server, seeds, out, cache)
        assert proc.returncode == 0, proc.stderr
        assert "kept 8" in proc.stdout and str(out / "data.jsonl") in proc.stdout
        records = read_jsonl(out / "data.jsonl")
        assert len(records) == 8 and len({r["id"] for r in records}) == 8
        for record in records:  # the default reply has 3 exchanges; the last one must survive
            roles = [m["role"] for m in record["messages"]]
            assert roles == ["user", "assistant"] * 3
            assert record["meta"]["finish"] == "natural" and record["meta"]["template"].startswith("selfchat_transcript@")
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["counts"]["kept"] == 8
        assert manifest["usage"]["requests"] == 8 and manifest["usage"]["completion_tokens"] > 0
        assert server.requests_total == 8 and server.max_in_flight <= 32

        again = selfchat(server, seeds, out, cache)
        assert again.returncode == 0 and server.requests_total == 8  # nothing sent twice
        assert len(read_jsonl(out / "data.jsonl")) == 8

        fresh = selfchat(server, seeds, tmp_path / "other", cache)  # new folder, same cache
        assert fresh.returncode == 0 and server.requests_total == 8
        assert json.loads((tmp_path / "other" / "manifest.json").read_text())["usage"]["cached"] == 8
    for path in every_file(out, cache, tmp_path / "other"):
        assert SECRET.encode() not in path.read_bytes(), path


def test_failed_items_go_to_errors_and_rejections_keep_their_reason(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:4] + ["Tell me about poison pills", "Tell me about chatbots"])

    def reply(body):
        text = body["messages"][-1]["content"]
        if "chatbots" in text:
            return "[Human] Who made you?\n[AI] I am ChatGPT, a model trained by OpenAI to help people."
        from tests.chat_server import default_reply
        return default_reply(body)

    rules = [{"match": "poison", "status": 400, "error": {"message": "prompt flagged", "code": "content_filter"}}]
    with ChatServer(rules=rules, reply=reply) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache")
        assert proc.returncode == 0, proc.stderr
        errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
        rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
        assert [e["input"] for e in errors] == ["Tell me about poison pills"]
        assert errors[0]["status"] == 400 and "content_filter" in errors[0]["last_response"]
        assert [r["reject"] for r in rejected] == ["identity"] and "raw" in rejected[0]["meta"]
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 4
        assert server.by_status[400] == 1  # a 400 is not retried

        server.rules.clear()  # the server is fixed; --retry-errors tries the failed item again
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--retry-errors")
        assert proc.returncode == 0
        assert read_jsonl(tmp_path / "out" / "errors.jsonl") == []
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 5
        assert server.requests_total == 7  # 6 first time, 1 retry


def test_rate_limits_and_server_errors_are_survived(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    rules = [{"match": "compass", "status": 429, "retry_after": 0.1, "times": 2},
             {"match": "piano", "status": 503, "times": 1}, {"match": "vaccine", "drop": True, "times": 1}]
    with ChatServer(rules=rules) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache")
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 8
        assert server.by_status[429] == 2 and server.by_status[503] == 1


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    questions = [f"What is fact number {i} about rivers?" for i in range(40)]
    seeds = write_seeds(tmp_path / "s.jsonl", questions)
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--model", "t",
            "--concurrency", "4", "--out", out, "--cache-dir", cache, "--no-progress"]
    with ChatServer(latency_s=0.15) as server:
        args[args.index("--backend"):args.index("--backend")] = ["--base-url", server.base_url]
        proc = start_gen(*args, env=gen_env(OPENAI_API_KEY="k"))
        kill_when(proc, lambda: len(read_jsonl(out / "data.jsonl")) >= 8)
        done_before = len(read_jsonl(out / "data.jsonl"))
        assert 8 <= done_before < 40
        sent_before = server.requests_total

        again = run_gen(*args, env=gen_env(OPENAI_API_KEY="k"))
        assert again.returncode == 0, again.stderr
        records = read_jsonl(out / "data.jsonl")
        assert sorted(r["meta"]["seed"] for r in records) == sorted(questions)  # none lost, none twice
        # only items not yet written were asked again: at most the 4 that were in flight at the kill
        assert server.requests_total - sent_before <= 40 - done_before
        assert server.requests_total <= 40 + 4


def test_budget_stops_cleanly_and_a_rerun_continues(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS)
    with ChatServer() as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--max-total-tokens", "300",
                        "--concurrency", "1")
        assert_one_line_error(proc, 1, "token budget reached")
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["status"] == "stopped" and 0 < manifest["counts"]["kept"] < 8
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache")
        assert proc.returncode == 0 and len(read_jsonl(tmp_path / "out" / "data.jsonl")) == 8
        assert server.requests_total == 8


def test_agents_mode_takes_turns_until_the_person_stops(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", ["How do tides work?", "Why do leaves change colour?"])

    def reply(body):
        if body["messages"][0]["role"] == "system" and "role-playing" in body["messages"][0]["content"]:
            assistant_turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
            return "[END]" if assistant_turns >= 2 else f"Follow-up question number {assistant_turns}?"
        return "Here is a complete and careful answer about " + body["messages"][-1]["content"]

    with ChatServer(reply=reply) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--mode", "agents",
                        "--max-turns", "5", "--user-model", "person")
        assert proc.returncode == 0, proc.stderr
        records = read_jsonl(tmp_path / "out" / "data.jsonl")
        assert len(records) == 2
        for record in records:
            users = [m["content"] for m in record["messages"] if m["role"] == "user"]
            assert users[0] == record["meta"]["seed"] and users[1:] == ["Follow-up question number 1?"]
            assert record["meta"]["finish"] == "natural" and record["meta"]["user_model"] == "person"
        models = {b["model"] for b in server.bodies}
        assert models == {"teacher", "person"}


def test_max_turns_caps_agents_dialogs(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", ["How do tides work?"])
    thoughts = ["the moon pulls the oceans toward it", "spring tides come at new and full moon",
                "the sun adds a weaker pull of its own", "coastlines shape how high water rises",
                "most shores see two highs a day", "neap tides follow the quarter moons",
                "bays can funnel water into huge ranges", "friction slowly lengthens our day"]

    def reply(body):  # every turn different (not even a near repeat), so only --max-turns ends the dialog
        return f"On tides: {thoughts[len(body['messages']) % len(thoughts)]}?"

    with ChatServer(reply=reply) as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--mode", "agents", "--max-turns", "3")
        assert proc.returncode == 0, proc.stderr
        record = read_jsonl(tmp_path / "out" / "data.jsonl")[0]
        assert len(record["messages"]) == 6 and record["meta"]["finish"] == "max_turns"


@pytest.mark.parametrize("content,extra,needle", [
    (None, [], "no such file"),
    (b"", [], "empty"),
    (b'{"question": "ok?"}\n{"question": broken\n', [], ":2"),
    (b'{"question": "ok?"}\n', ["--field", "nope"], "nope"),
    (b'{"question": "caf\xe9?"}\n', [], "utf-8"),
])
def test_bad_seed_files_exit_2_with_one_line(tmp_path, content, extra, needle):
    seeds = tmp_path / "seeds.jsonl"
    if content is not None:
        seeds.write_bytes(content)
    args = ["selfchat", "--seeds", seeds, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
            "--model", "m", "--out", tmp_path / "out", "--no-progress"]
    if not extra:
        args += ["--field", "question"]
    proc = run_gen(*args, *extra)
    assert_one_line_error(proc, 2, needle)


def test_bad_usage_exits_2(tmp_path):
    assert_one_line_error(run_gen("selfchat", "--seeds", "x.jsonl", "--concurrency", "0"), 2, "concurrency")
    assert_one_line_error(run_gen("selfchat", "--nope"), 2, "--nope")
    assert_one_line_error(run_gen("selfchat", "--seeds", "x.jsonl", "--backend", "openai", "--model", "m",
                                  "--out", tmp_path / "o"), 2, "--base-url")


def test_refused_key_and_unreachable_server_exit_1(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:2])
    with ChatServer(api_key="sk-the-right-one") as server:
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache")
        assert_one_line_error(proc, 1, "refused the API key")
        assert SECRET not in proc.stderr
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--base-url", "http://127.0.0.1:9/v1",
                   "--model", "m", "--out", tmp_path / "out2", "--cache-dir", tmp_path / "cache", "--no-progress",
                   env=gen_env(OPENAI_API_KEY=SECRET))
    assert_one_line_error(proc, 1, "cannot reach the server")


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:2])
    with ChatServer() as server:
        assert selfchat(server, seeds, tmp_path / "out", tmp_path / "cache").returncode == 0
        proc = selfchat(server, seeds, tmp_path / "out", tmp_path / "cache", "--temperature", "1.3")
        assert_one_line_error(proc, 2, "other settings")



def test_a_rerun_with_other_filters_judges_the_stored_dialogs_again_without_a_request(tmp_path):
    """Filters are not in the fingerprint: --no-default-filters on a finished folder sends nothing
    and moves the refusals from rejected.jsonl to data.jsonl; the manifest names the filters used."""
    seeds = write_seeds(tmp_path / "s.jsonl", QUESTIONS[:4] + ["Tell me about chatbots", "Tell me about robots"])

    def reply(body):
        text = body["messages"][-1]["content"]
        for topic in ("chatbots", "robots"):
            if topic in text:
                return (f"[Human] Can you tell me about {topic}?\n[AI] As an AI language model, I can say that "
                        f"{topic} help people with many tasks every day.")
        from tests.chat_server import default_reply
        return default_reply(body)

    out = tmp_path / "out"
    with ChatServer(reply=reply) as server:
        assert selfchat(server, seeds, out, tmp_path / "cache").returncode == 0
        assert [r["reject"] for r in read_jsonl(out / "rejected.jsonl")] == ["refusal", "refusal"]
        assert server.requests_total == 6

        # --no-cache: a dialog asked again would reach the server, not the response cache
        proc = selfchat(server, seeds, out, tmp_path / "cache", "--no-default-filters", "--no-cache")
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 6  # judged again from the stored lines: no request
        assert read_jsonl(out / "rejected.jsonl") == []
        kept = read_jsonl(out / "data.jsonl")
        assert len(kept) == 6 and len({r["id"] for r in kept}) == 6 and not any("reject" in r for r in kept)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["kept"] == 6 and manifest["counts"]["rejected"] == 0
        assert manifest["filters"]["block_patterns"]["patterns"] == {}
        assert "filters" not in manifest["settings"]

        proc = selfchat(server, seeds, out, tmp_path / "cache", "--no-cache")  # back to the defaults: back again
        assert proc.returncode == 0 and server.requests_total == 6
        assert [r["reject"] for r in read_jsonl(out / "rejected.jsonl")] == ["refusal", "refusal"]
        assert len(read_jsonl(out / "data.jsonl")) == 4


@pytest.mark.parametrize("args, needle", [
    (["selfchat", "--seeds", "quora", "--concurrency", "0"], "'--concurrency': expected 1 to 4096, or auto"),
    (["selfchat", "--seeds", "quora", "--limit", "-1"], "'--limit'"),
    (["selfchat", "--seeds", "quora", "--backend", "foo"], "'foo' is not one of"),
    (["selfchat"], "missing option '--seeds'"),
    (["selfchat", "--seeds", "quora", "--no-such-flag"], "no such option"),
    (["nosuch"], "no such command 'nosuch'"),
])
def test_a_wrong_flag_is_one_line_naming_it_and_where_the_flags_are(args, needle):
    proc = run_gen(*args)
    assert_one_line_error(proc, 2, needle, "--help'")
