"""`gen eval curation` end to end through the `gen curate` rating path: the real CLI, the real openai
client, the loopback server as the rater. AUC, precision/recall and the unparsed share are
recomputed here from scores.jsonl (AUC by counting pairs, not by ranks as the code does)."""
from __future__ import annotations

import json
import re

from tests.chat_server import ChatServer
from tests.e2e.test_eval_backward import PAIRS, write_pairs
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen

TRUE = {q: a for q, a in PAIRS}


def shown(prompt: str, role: str) -> str:
    found = re.search(rf"### {role}\n(.*?)(?:\n\n###|\n\n(?:First|Reply))", prompt, re.S)
    return found.group(1).strip() if found else ""


def rater(body: dict) -> str:
    """Scripted rater: 5 for a true pair, 4 for a cut answer (a mistake), 2 for a wrong answer, 1 for
    a copied instruction; never a readable score for the egg answer (not even when told what was
    wrong: the rubric is the first message, the retry's follow-up the last)."""
    prompt = body["messages"][0]["content"]
    if "### Request" in prompt:  # --rate instruction: the instruction alone
        request = shown(prompt, "Request")
        return f"A request.\nScore: {5 if request.endswith('?') else 2}"
    user, answer = shown(prompt, "User"), shown(prompt, "Assistant")
    if "egg" in answer:
        return "It is fine I guess."
    if user not in TRUE:
        return "Copied text.\nScore: 1"
    if answer == TRUE[user]:
        return "Good.\nScore: 5"
    return "Cut short.\nScore: 4" if TRUE[user].startswith(answer) else "Off topic.\nScore: 2"


def run_curation(server, pairs, out, cache, *extra):
    return run_gen("eval", "curation", "--pairs", pairs, "--backend", "openai", "--base-url", server.base_url,
                   "--model", "judge", "--out", out, "--no-progress", "--retries-unparsed", "1", *extra,
                   env=gen_env(OPENAI_API_KEY="k", BALEEN_CACHE=str(cache)))


def auc_by_pairs(rows: list[dict], key: str) -> float:
    pos = [r[key] for r in rows if r["label"] == 1]
    neg = [r[key] for r in rows if r["label"] == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_eval_curation_rates_true_pairs_against_negatives(tmp_path):
    pairs, out, cache = write_pairs(tmp_path / "heldout.jsonl"), tmp_path / "eval", tmp_path / "cache"
    with ChatServer(reply=rater) as server:
        proc = run_curation(server, pairs, out, cache)
        assert proc.returncode == 0, proc.stderr
        rows = read_jsonl(out / "scores.jsonl")
        kinds = [r["kind"] for r in rows]
        # 4 positives; each pair gives a mismatched, a truncated and a copied negative, but a
        # one-sentence answer (the last pair) cannot be cut shorter
        assert kinds.count("true") == 4 and kinds.count("mismatched") == 4
        assert kinds.count("truncated") == 3 and kinds.count("copied") == 4
        assert all(r["label"] == (r["kind"] == "true") for r in rows)
        requests = server.requests_total
        unparsed = [r for r in rows if r["score"] is None]
        assert unparsed and all("egg" in json.dumps(r) for r in unparsed)
        assert requests == len(rows) + len(unparsed)  # one resample each for the unreadable ones

        metrics = json.loads((out / "manifest.json").read_text())["metrics"]
        parsed = [r for r in rows if r["score"] is not None]
        assert metrics["auc_of"] == "score_expected"  # the server gives logprobs
        assert abs(metrics["auc"] - auc_by_pairs(parsed, "score_expected")) < 1e-4
        assert abs(metrics["auc_score"] - auc_by_pairs(parsed, "score")) < 1e-4
        mismatched = [r for r in parsed if r["kind"] in ("true", "mismatched")]
        assert metrics["auc_by_kind"]["mismatched"] == round(auc_by_pairs(mismatched, "score_expected"), 4) == 1.0
        assert metrics["unparsed_share"] == round(len(unparsed) / len(rows), 4)
        for t in ("4", "5"):
            kept = [r for r in parsed if r["score"] >= int(t)]
            hits = sum(r["label"] for r in kept)
            assert metrics["threshold"][t]["precision"] == hits / len(kept)
            assert metrics["threshold"][t]["recall"] == hits / 4
        assert metrics["threshold"]["5"]["precision"] == 1.0 and metrics["threshold"]["4"]["precision"] < 1.0

        again = run_curation(server, pairs, out, cache)  # resume: nothing new is asked
        assert again.returncode == 0, again.stderr
        assert server.requests_total == requests

        by_instruction = tmp_path / "eval-instruction"
        proc = run_curation(server, pairs, by_instruction, cache, "--rate", "instruction")
        assert proc.returncode == 0, proc.stderr
        instruction_prompts = [b["messages"][-1]["content"] for b in server.bodies[requests:]]
        # one rating per distinct instruction (4 real ones, 4 copied first sentences): the negatives
        # that keep the instruction share its rating rather than asking again
        assert len(instruction_prompts) == 8
        assert instruction_prompts and all("### Request" in p and "### Assistant" not in p for p in instruction_prompts)
        # the answer is never shown (the last one is a single sentence: its copied negative is the answer)
        assert not any(a in p for p in instruction_prompts for _, a in PAIRS[:3])
        manifest = json.loads((by_instruction / "manifest.json").read_text())
        assert manifest["settings"]["rater"]["rate"] == "instruction"
        assert manifest["settings"]["rater"]["template"].startswith("curate_instruction@")
        rows = read_jsonl(by_instruction / "scores.jsonl")
        # the instruction alone cannot tell a wrong answer from the right one, but sees a copied instruction
        assert manifest["metrics"]["auc_by_kind"]["mismatched"] == 0.5
        copied = [r for r in rows if r["kind"] in ("true", "copied")]
        assert manifest["metrics"]["auc_by_kind"]["copied"] == round(auc_by_pairs(copied, "score_expected"), 4)


def test_eval_curation_refuses_too_few_pairs_and_bad_flags(tmp_path):
    one = write_pairs(tmp_path / "one.jsonl", PAIRS[:1])
    with ChatServer(reply=rater) as server:
        assert_one_line_error(run_curation(server, one, tmp_path / "o", tmp_path / "c"), 2, "at least 2 pairs")
        assert_one_line_error(run_curation(server, one, tmp_path / "o", tmp_path / "c", "--negatives", "wrong"),
                              2, "--negatives")
        assert_one_line_error(run_curation(server, tmp_path / "missing.jsonl", tmp_path / "o", tmp_path / "c"),
                              2, "no such file")
        assert_one_line_error(run_curation(server, write_pairs(tmp_path / "two.jsonl", PAIRS[:2]), tmp_path / "o",
                                           tmp_path / "c", "--score-mode", "direct"), 2, "--score-mode direct")
        assert server.requests_total == 0
    assert not (tmp_path / "o").exists()
