"""`gen eval winrate` end to end: two LoRA adapters on the tiny model answer with real
transformers+peft (hf backend), the loopback server is the judge through the real openai client.
The win rate is recomputed here from judgements.jsonl."""
from __future__ import annotations

import json
import math
import re

import pytest

from tests.backtranslate_fixtures import build_adapter
from tests.chat_server import ChatServer
from curation.eval.cli import eval_command
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen

pytestmark = pytest.mark.slow  # runs a real (tiny) model

INSTRUCTIONS = ["What is the capital of France?", "How do I boil an egg?", "Tell me a joke about whales.",
                "Why is the sky blue?", "What is a whale?"]


def answers(prompt: str) -> tuple[str, str]:
    found = re.search(r"### Answer 1\n(.*)\n\n### Answer 2\n(.*)\n\nExplain your judgement", prompt, re.S)
    assert found, prompt
    return found.group(1).strip(), found.group(2).strip()


def prefer_longer(body: dict) -> str:
    """A judge with a known taste: the answer with more characters wins; equal lengths tie."""
    first, second = answers(body["messages"][-1]["content"])
    verdict = "1" if len(first) > len(second) else "2" if len(second) > len(first) else "tie"
    return f"Longer is better here.\nWinner: {verdict}"


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("winrate")
    return build_adapter(tiny_model_dir, root / "new", seed=1), build_adapter(tiny_model_dir, root / "old", seed=2)


def args(server, model, new, old, out, cache) -> list[str]:
    path = out.parent / "instructions.jsonl"
    path.write_text("".join(json.dumps({"instruction": q}) + "\n" for q in INSTRUCTIONS))
    return ["winrate", "--instructions", str(path), "--backend", "hf", "--model", str(model), "--adapter", str(new),
            "--baseline-adapter", str(old), "--judge-model", "judge", "--judge-base-url", server.base_url,
            "--max-tokens", "12", "--out", str(out), "--no-progress", "--cache-dir", str(cache)]


def winrate(server, model, new, old, out, cache, monkeypatch):
    """The command in this process (the models load once per run, without a new interpreter)."""
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    eval_command.main(args(server, model, new, old, out, cache), standalone_mode=False)


def test_winrate_judges_both_orders_and_is_recomputable(tmp_path, tiny_model_dir, adapters, monkeypatch):
    new, old = adapters
    out, cache = tmp_path / "win", tmp_path / "cache"
    with ChatServer(reply=prefer_longer) as server:
        winrate(server, tiny_model_dir, new, old, out, cache, monkeypatch)
        assert server.requests_total == 2 * len(INSTRUCTIONS)  # both orders of every pair
        rows = read_jsonl(out / "judgements.jsonl")
        assert [r["instruction"] for r in rows] == INSTRUCTIONS
        assert any(r["answer"] != r["baseline"] for r in rows)  # the two adapters answer differently
        outcomes = []
        for r in rows:
            a, b = len(r["answer"]), len(r["baseline"])
            assert r["verdict_answer_first"] == ("1" if a > b else "2" if b > a else "tie")
            assert r["verdict_baseline_first"] == ("1" if b > a else "2" if a > b else "tie")
            outcomes.append(1.0 if a > b else 0.0 if b > a else 0.5)
            assert r["outcome"] == outcomes[-1]
        metrics = json.loads((out / "manifest.json").read_text())["metrics"]
        n = len(outcomes)
        mean = sum(outcomes) / n
        half = 1.959964 * math.sqrt(sum((o - mean) ** 2 for o in outcomes) / (n - 1) / n)
        assert metrics["win_rate"] == round(mean, 4)
        assert metrics["ci95"] == [round(max(0.0, mean - half), 4), round(min(1.0, mean + half), 4)]
        assert metrics["orders_agree"] == 1.0  # a judge without position bias
        assert metrics["answer_words"] == round(sum(r["answer_words"] for r in rows) / n, 2)
        assert metrics["length_controlled"] is None and "20" in metrics["length_controlled_note"]

        winrate(server, tiny_model_dir, new, old, out, cache, monkeypatch)  # resume: no request, same numbers
        assert server.requests_total == 2 * len(INSTRUCTIONS)
        assert json.loads((out / "manifest.json").read_text())["metrics"] == metrics


def biased(body: dict) -> str:
    """Always the first answer, except for the egg question, where the verdict is unreadable."""
    return "Both are fine." if "boil an egg" in body["messages"][0]["content"] else "The first one.\nWinner: 1"


def test_position_bias_cancels_and_unreadable_verdicts_are_rejected(tmp_path, tiny_model_dir, adapters, monkeypatch):
    new, old = adapters
    with ChatServer(reply=biased) as server:
        winrate(server, tiny_model_dir, new, old, tmp_path / "win", tmp_path / "cache", monkeypatch)
        assert server.requests_total == 2 * len(INSTRUCTIONS) + 2  # one retry per order of the egg
        # --constrained auto: every judge request carries the verdict's schema, and the retry sends
        # the unreadable verdict back with what was wrong
        for body in server.bodies:
            assert body["response_format"]["json_schema"]["schema"]["properties"]["winner"]["enum"] == ["1", "2", "tie"]
        retries = [b for b in server.bodies if len(b["messages"]) == 3]
        assert len(retries) == 2
        for body in retries:
            assert body["messages"][1] == {"role": "assistant", "content": "Both are fine."}
            assert "no verdict line" in body["messages"][2]["content"] and '"winner": one of' in body["messages"][2]["content"]
        same = run_gen("eval", *args(server, tiny_model_dir, new, new, tmp_path / "same", tmp_path / "cache"),
                       env=gen_env(OPENAI_API_KEY="k"))
        assert_one_line_error(same, 2, "same")
        missing = args(server, tiny_model_dir, new, old, tmp_path / "o", tmp_path / "cache")
        missing[2] = str(tmp_path / "none.jsonl")
        assert_one_line_error(run_gen("eval", *missing, env=gen_env(OPENAI_API_KEY="k")), 2, "no such file")
    assert not (tmp_path / "o").exists() and not (tmp_path / "same").exists()
    manifest = json.loads((tmp_path / "win" / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert manifest["counts"]["rejected_by_reason"] == {"unparsed_verdict": 1}
    assert metrics["judged"] == len(INSTRUCTIONS) - 1 and metrics["unparsed"] == 1
    assert metrics["win_rate"] == 0.5 and metrics["ties"] == len(INSTRUCTIONS) - 1
    assert metrics["orders_agree"] == 0.0 and metrics["first_position_share"] == 1.0
    rows = read_jsonl(tmp_path / "win" / "judgements.jsonl")
    assert len(rows) == len(INSTRUCTIONS) and [r["outcome"] for r in rows].count(None) == 1
