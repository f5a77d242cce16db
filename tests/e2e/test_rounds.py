"""`./run.sh rounds` (rounds.sh) end to end on a tiny model: killed in the middle and rerun.

M_yx, M0, M1 and M2 are LoRA adapters trained here on a tiny random Llama. A random model writes
no usable instruction or score, so the loopback server plays the served backward model
(BACKWARD_BASE_URL, as `vllm serve --lora-modules backward=...` would) and an external judge
(JUDGE_MODEL): some candidates are kept and M1/M2 really train on seed + curated data with both
tags. The local hf/vLLM generation paths have their own tests.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import tiny_model
from tests.backtranslate_fixtures import backward_reply, plain_pages, write_corpus
from tests.chat_server import ChatServer
from tests.helpers import REPO, gen_env, read_jsonl

pytestmark = pytest.mark.slow  # runs a real (tiny) model


def serve(body: dict) -> str:
    """Plays the served backward model, and the judge: 5 for about half the candidates, else 3; as
    the win-rate judge, the first answer shown wins when the instruction mentions an egg, else a tie."""
    text = body["messages"][-1]["content"]
    if "Winner:" in text:
        return "Close.\nWinner: " + ("1" if "egg" in text.split("### Answer 1")[0] else "tie")
    if "Score" not in text:
        return backward_reply(body)
    return "Clear and complete.\nScore: 5" if len(text) % 2 else "Helpful but written as a web page.\nScore: 3"


def rounds_env(tmp: Path, server: ChatServer) -> dict[str, str]:
    base = tiny_model.build(tmp / "tiny")
    seed = tmp / "seed.jsonl"
    seed.write_text("".join(json.dumps(r) + "\n" for r in tiny_model.records(8, ("seed",))), "utf-8")
    corpus = write_corpus(tmp / "corpus.jsonl", plain_pages(4, sections=2))
    bin_dir = str(Path(sys.executable).parent)
    return gen_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}", OPENAI_API_KEY="sk-judge",
        BASE=str(base), SEED=str(seed), CORPUS=str(corpus), BACKEND="hf", THRESHOLD="5", ROUNDS="2",
        OUT=str(tmp / "rounds"), TRAIN_FLAGS="--max-steps 2 --batch-size 4 --eval-frac 0 --save-every 1",
        AUGMENT_FLAGS="--no-progress --min-chars 100 --cache-dir "
                      + str(tmp / "cache"),
        CURATE_FLAGS="--no-progress --min-words 1 --lang any --cache-dir " + str(tmp / "cache"),
        EVAL_FLAGS="--no-progress --cache-dir " + str(tmp / "cache"), EVAL_CURATION_FLAGS="--score-mode direct",
        WINRATE_FLAGS="--max-tokens 8",
        JUDGE_MODEL="judge", JUDGE_BASE_URL=server.base_url, BACKWARD_BASE_URL=server.base_url)


def test_rounds_complete_both_iterations_after_a_kill(tmp_path):
    out = tmp_path / "rounds"
    with ChatServer(reply=serve) as server:
        env = rounds_env(tmp_path, server)
        proc = subprocess.Popen(["bash", str(REPO / "rounds.sh")], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while not (out / "round1" / "curate").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the script and the gen command it is running
        proc.wait()
        first = proc.stdout.read().decode()
        augment_manifest = json.loads((out / "round0" / "augment" / "manifest.json").read_text())
        assert augment_manifest["status"] == "complete", first

        again = subprocess.run(["bash", str(REPO / "rounds.sh")], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "skip " + str(out / "round0" / "augment") in again.stdout  # done work is not redone
        assert "skip " + str(out / "round0" / "backward") in again.stdout

    candidates = read_jsonl(out / "round0" / "augment" / "data.jsonl")
    assert candidates and all(r["tag"] == "augmented" for r in candidates)
    for k in (1, 2):
        curated = read_jsonl(out / f"round{k}" / "curate" / "data.jsonl")
        assert curated and all(r["score"] == 5 for r in curated)
        assert len(curated) < len(candidates)
        model = json.loads((out / f"round{k}" / "model" / "manifest.json").read_text())
        assert model["status"] == "complete"
        tags = model["data"]
        assert "seed" in json.dumps(tags) and "augmented" in json.dumps(tags)
        assert (out / f"round{k}" / "model" / "adapter_config.json").exists()
        lineage = json.loads((out / f"round{k}" / "lineage.json").read_text())
        assert lineage["round"] == f"round{k}" and lineage["counts"]["curate"]["kept"] == len(curated)
    assert (out / "report.md").exists()

    # quality: 2 of the 8 seed pairs held out of every training run (a deterministic split)
    heldout = read_jsonl(out / "round0" / "heldout.jsonl")
    train = read_jsonl(out / "round0" / "seed_train.jsonl")
    assert len(heldout) == 2 and len(train) == 6
    assert not {r["id"] for r in heldout} & {r["id"] for r in train}
    backward = json.loads((out / "round0" / "eval-backward" / "manifest.json").read_text())
    assert backward["status"] == "complete" and backward["metrics"]["n"] == 2
    predictions = read_jsonl(out / "round0" / "eval-backward" / "predictions.jsonl")
    assert [p["reference"] for p in predictions] == [r["messages"][0]["content"] for r in heldout]
    for k in (0, 1, 2):
        scores = read_jsonl(out / f"round{k}" / "eval-curation" / "scores.jsonl")
        assert {s["label"] for s in scores} == {0, 1}
    for k in (1, 2):
        winrate = json.loads((out / f"round{k}" / "eval-winrate" / "manifest.json").read_text())["metrics"]
        assert winrate["judged"] == 2 and 0 <= winrate["win_rate"] <= 1
    report = (out / "report.md").read_text()
    section = report[report.index("## Quality by round"):report.index("## Between rounds")]
    rouge = backward["metrics"]["rouge_l"]
    assert f"| round0 | {rouge:.3f} |" in section
    assert "| round1 |" in section and "| round2 |" in section and "(report_files/quality.png)" in section
