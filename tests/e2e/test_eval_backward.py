"""`gen eval backward` end to end: the real CLI, the real openai client, the loopback server
playing the backward model. The metrics are recomputed here from predictions.jsonl."""
from __future__ import annotations

import json

import prompts
from generators.backtranslate.postfilter import judge_instruction
from curation.eval.metrics import normalized, rouge_l
from tests.chat_server import ChatServer
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen

PAIRS = [
    ("What causes the tides?", "The moon pulls on the oceans. Its gravity raises a bulge of water that "
                               "follows it around the earth, so the sea rises and falls twice a day."),
    ("How do I boil an egg?", "Put the egg in boiling water. Leave it nine minutes for a firm yolk, then "
                              "cool it in cold water so it peels easily."),
    ("Why is the sky blue?", "Air scatters short wavelengths of sunlight more than long ones. Blue light "
                             "is scattered all over the sky, so we see blue wherever we look."),
    ("Name three primary colours.", "Red, yellow and blue are the traditional primary colours used by "
                                    "painters when mixing paint."),
]
# what the scripted backward model answers for each answer (by its first words)
REPLIES = {
    "The moon": "Instruction: What causes the tides?",                          # label stripped: exact match
    "Put the egg": "\"How long should I boil an egg for a firm yolk?\"",        # quotes stripped: a fair request
    "Air scatters": "Air scatters short wavelengths of sunlight more than long ones. Blue light is scattered",
    "Red, yellow": "primary colours of paint",                                   # a bare topic
}


def backward(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    return next(reply for start, reply in REPLIES.items() if start in prompt)


def write_pairs(path, pairs=PAIRS):
    path.write_text("".join(json.dumps({"id": f"p{i}", "source": "seed", "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n" for i, (q, a) in enumerate(pairs)))
    return path


def run_backward(server, pairs, out, cache, *extra):
    return run_gen("eval", "backward", "--pairs", pairs, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "backward", "--out", out, "--no-progress", *extra,
                   env=gen_env(OPENAI_API_KEY="k", BALEEN_CACHE=str(cache)))


def test_eval_backward_scores_predictions_and_resumes_without_requests(tmp_path):
    pairs, out, cache = write_pairs(tmp_path / "heldout.jsonl"), tmp_path / "eval", tmp_path / "cache"
    with ChatServer(reply=backward) as server:
        proc = run_backward(server, pairs, out, cache)
        assert proc.returncode == 0, proc.stderr
        assert server.requests_total == 4
        bodies = server.bodies  # requests run concurrently: their order is the server's, not the file's
        assert all(b["temperature"] == 0.7 and b["top_p"] == 0.9 for b in bodies)  # gen backtranslate's sampling
        assert sorted(b["messages"][0]["content"] for b in bodies) == sorted(
            prompts.render("backward", output=answer) for _, answer in PAIRS)
        assert all(len(b["messages"]) == 1 and b["messages"][0]["role"] == "user" for b in bodies)

        rows = read_jsonl(out / "predictions.jsonl")
        assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
        # the verdict is gen backtranslate's own judgement of the raw text, whatever its rules are
        judged = [judge_instruction(backward({"messages": [{"content": a}]}), a) for _, a in PAIRS]
        assert [r["verdict"] for r in rows] == [v.reason or "kept" for v in judged]
        assert [r["prediction"] for r in rows] == [v.instruction for v in judged]
        assert [r["verdict"] for r in rows][:3] == ["kept", "kept", "copies_segment"]
        assert rows[0]["prediction"] == "What causes the tides?"
        assert rows[1]["prediction"] == "How long should I boil an egg for a firm yolk?"
        assert all(r["reference"] == q for r, (q, _) in zip(rows, PAIRS))

        manifest = json.loads((out / "manifest.json").read_text())
        metrics = manifest["metrics"]
        expected = [rouge_l(r["prediction"], r["reference"]) for r in rows]
        assert expected[0] == 1.0 and 0 < expected[1] < 1
        assert abs(metrics["rouge_l"] - sum(expected) / 4) < 1e-4
        passed = [e for e, r in zip(expected, rows) if r["verdict"] == "kept"]
        assert abs(metrics["rouge_l_passed"] - sum(passed) / len(passed)) < 1e-4
        assert metrics["passed_share"] == len(passed) / 4
        assert metrics["exact_match"] == sum(normalized(r["prediction"]) == normalized(r["reference"])
                                             for r in rows) / 4 == 0.25
        assert manifest["status"] == "complete" and manifest["usage"]["requests"] == 4
        assert manifest["settings"]["sampling"]["temperature"] == 0.7

        again = run_backward(server, pairs, out, cache)  # a rerun: nothing new to ask
        assert again.returncode == 0, again.stderr
        assert server.requests_total == 4
        assert read_jsonl(out / "predictions.jsonl") == rows
        assert json.loads((out / "manifest.json").read_text())["metrics"] == metrics

        other = run_backward(server, pairs, out, cache, "--seed", "3")  # other settings, same folder
        assert_one_line_error(other, 2, "other settings")


def test_eval_backward_bad_input_is_one_line_and_no_folder(tmp_path):
    out = tmp_path / "eval"
    with ChatServer(reply=backward) as server:
        assert_one_line_error(run_backward(server, tmp_path / "missing.jsonl", out, tmp_path / "c"), 2, "no such file")
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({"instruction": "Q?", "output": "A."}) + "\n{not json\n")
        assert_one_line_error(run_backward(server, bad, out, tmp_path / "c"), 2, "bad.jsonl:2")
        empty_answer = tmp_path / "noanswer.jsonl"
        empty_answer.write_text(json.dumps({"messages": [{"role": "user", "content": "Q?"}]}) + "\n")
        assert_one_line_error(run_backward(server, empty_answer, out, tmp_path / "c"), 2, "noanswer.jsonl:1")
        assert server.requests_total == 0
    assert not out.exists()


def test_eval_backward_reads_instruction_output_lines(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": f"q{i}", "instruction": q, "output": a}) + "\n"
                             for i, (q, a) in enumerate(PAIRS[:2])))
    with ChatServer(reply=backward) as server:
        proc = run_backward(server, pairs, tmp_path / "eval", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(tmp_path / "eval" / "predictions.jsonl")
    assert [r["id"] for r in rows] == ["q0", "q1"] and rows[0]["rouge_l"] == 1.0


def test_eval_backward_killed_and_rerun_loses_and_repeats_nothing(tmp_path):
    from tests.helpers import kill_when, start_gen

    many = [(f"What is fact number {i}?", f"Fact {i} is a short statement. It has a second sentence too.")
            for i in range(6)]
    pairs, out, cache = write_pairs(tmp_path / "heldout.jsonl", many), tmp_path / "eval", tmp_path / "cache"
    with ChatServer(reply=lambda body: "What is this fact about?", latency_s=0.3) as server:
        args = ("eval", "backward", "--pairs", pairs, "--backend", "openai", "--base-url", server.base_url,
                "--model", "backward", "--out", out, "--no-progress", "--concurrency", "1")
        env = gen_env(OPENAI_API_KEY="k", BALEEN_CACHE=str(cache))
        proc = start_gen(*args, env=env)
        kill_when(proc, lambda: len(read_jsonl(out / "items" / "data.jsonl")) >= 2)
        assert not (out / "predictions.jsonl").exists()  # results only once every item is done
        done = len(read_jsonl(out / "items" / "data.jsonl"))
        again = run_gen(*args, env=env)
        assert again.returncode == 0, again.stderr
        rows = read_jsonl(out / "predictions.jsonl")
        assert [r["id"] for r in rows] == [f"p{i}" for i in range(6)]
        assert len(read_jsonl(out / "items" / "data.jsonl")) == 6  # no item twice
        assert server.requests_total <= 6 + 1 and server.requests_total >= 6  # at most the one in flight again
        assert json.loads((out / "manifest.json").read_text())["sessions"] == 2 and done >= 2
