"""What --feedback N costs in requests and in time, against plain agents-mode self-chat.

    python bench/selfchat_feedback.py                      # 16 seeds, N 4, 2 turns, 200 ms per request
    python bench/selfchat_feedback.py --seeds 32 --n 2 4 8 --latency-ms 100

Seeds are the first MedQuAD questions of $BALEEN_BENCH_DATA/medquad_questions.jsonl when present,
else numbered questions. The loopback server (tests/chat_server.py) answers every request after
--latency-ms, each answer naming its sampling seed (so the N candidates differ), and answers the
judge with a fixed verdict. `gen selfchat --mode agents` runs in a subprocess, once plain and once
per N, on a fresh cache each time, with --concurrency = seeds x the largest N: --concurrency caps
the requests in flight (the connection pool), and a dialog under feedback has N in flight at once,
so this lets every dialog run unhindered in every run.

Per run it prints the requests per assistant turn and the busy time as the server saw it (first
request to last answer). With every dialog in flight, a dialog's time is its chain of requests
one after the other: plain, one request per turn plus the person's follow-ups; with feedback the
N candidates go out together, so a turn costs two latencies (candidates, then the judge), not
N + 1. The ratios printed, all from the same run:
  time ratio     feedback busy time / plain busy time, measured;
  ideal          (2 T + P) / (T + P), T assistant turns and P person requests per dialog;
  sequential     ((N + 1) T + P) / (T + P), what one candidate after another would cost.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.chat_server import ChatServer, Rule  # noqa: E402

SEEDS = Path(os.environ.get("BALEEN_BENCH_DATA", ".")) / "medquad_questions.jsonl"
JUDGE_MARK = "## Candidate replies"


def questions(count: int) -> list[str]:
    if SEEDS.is_file():
        out: list[str] = []
        with SEEDS.open(encoding="utf-8") as handle:
            for line in handle:
                question = json.loads(line)["question"]
                if question not in out:
                    out.append(question)
                if len(out) == count:
                    return out
    return [f"How does thing number {i} work?" for i in range(count)]


def reply(body: dict) -> str:
    first = body["messages"][0]
    if first["role"] == "system" and "role-playing" in first["content"]:
        return "Could you give me one more concrete example of that?"
    question = body["messages"][-1]["content"]
    return (f"Answer with seed {body.get('seed')} to '{question}' (turn {len(body['messages']) // 2}): "
            "the main ideas, step by step, with an example.")


def run(server: ChatServer, seeds: Path, work: Path, turns: int, n: int | None, concurrency: int) -> dict:
    """One `gen selfchat` run; returns requests, busy seconds, assistant turns and person requests."""
    server.reset()
    out = work / f"out-{n or 0}"
    args = ["selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai", "--base-url",
            server.base_url, "--model", "teacher", "--mode", "agents", "--max-turns", str(turns),
            "--concurrency", str(concurrency), "--out", out, "--cache-dir", work / f"cache-{n or 0}",
            "--no-progress"]
    if n:
        args += ["--feedback", str(n), "--judge-model", "judge"]
    env = {**os.environ, "OPENAI_API_KEY": "k", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "generators.cli", *map(str, args)], env=env, cwd=REPO, check=True,
                   capture_output=True)
    records = [json.loads(line) for name in ("data.jsonl", "rejected.jsonl")
               for line in (out / name).read_text("utf-8").splitlines()]
    assistant_turns = sum(len(r["messages"]) // 2 for r in records)
    person = sum(1 for b in server.bodies if "role-playing" in b["messages"][0]["content"])
    assert server.first_at is not None and server.last_at is not None
    return {"requests": server.requests_total, "busy_s": server.last_at - server.first_at,
            "turns": assistant_turns, "person": person, "dialogs": len(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--n", type=int, nargs="+", default=[4])
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    a = parser.parse_args()
    verdicts = {n: "\n".join(f"Answer {k}: {k % 10 + 1}" for k in range(1, n + 1)) for n in a.n}
    with tempfile.TemporaryDirectory() as tmp, ChatServer(reply=reply, latency_s=a.latency_ms / 1000) as server:
        work = Path(tmp)
        seeds = work / "seeds.jsonl"
        seeds.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions(a.seeds)), "utf-8")
        concurrency = a.seeds * max(a.n)
        plain = run(server, seeds, work, a.turns, None, concurrency)
        print(f"seeds {a.seeds}, {a.turns} turns, latency {a.latency_ms:.0f} ms; plain: {plain['requests']} requests, "
              f"{plain['requests'] / plain['turns']:.2f} per assistant turn (the person's included), "
              f"busy {plain['busy_s']:.2f} s")
        for n in a.n:
            server.rules[:] = [Rule(match=JUDGE_MARK, reply=verdicts[n])]
            fed = run(server, seeds, work, a.turns, n, concurrency)
            per_dialog_t = fed["turns"] / fed["dialogs"]
            per_dialog_p = fed["person"] / fed["dialogs"]
            ideal = (2 * per_dialog_t + per_dialog_p) / (per_dialog_t + per_dialog_p)
            sequential = ((n + 1) * per_dialog_t + per_dialog_p) / (per_dialog_t + per_dialog_p)
            extra = (fed["requests"] - fed["person"]) / fed["turns"]
            print(f"--feedback {n}: {fed['requests']} requests, {extra:.2f} teacher+judge requests per assistant "
                  f"turn (N + 1 = {n + 1}), busy {fed['busy_s']:.2f} s; "
                  f"time ratio {fed['busy_s'] / plain['busy_s']:.2f} "
                  f"(ideal {ideal:.2f}, sequential candidates {sequential:.2f})")


if __name__ == "__main__":
    main()
