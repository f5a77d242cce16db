"""How fast `--dry-run` estimates a run, against reading the seeds alone.

    python bench/dry_run.py --n 1000
    python bench/dry_run.py --n 1000 --local   # also the embedded model, counted with its tokenizer

It writes N distinct seeds and prints:

- the wall time of the whole command `gen selfchat --dry-run` in a subprocess (interpreter start,
  imports, reading, rendering, counting, printing), against the loopback server, whose request
  count must stay 0 (the issue's target: under 3 s for 1,000 seeds);
- in this process, seeds/s of reading the seeds alone (`load_seeds`) and requests/s of the
  estimate after it (engines built, every first request rendered and counted, lines made), so the
  cost of the estimate itself shows apart from the reading.

Other processes on a shared machine move the times; take the best of a few runs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from generators.core.dry_run import estimate_lines  # noqa: E402
from generators.core.options import RunOptions  # noqa: E402
from generators.inputs.seeds import load_seeds  # noqa: E402
from generators.selfchat.stage import SelfChatSettings, SelfChatStage  # noqa: E402
from tests.chat_server import ChatServer  # noqa: E402
from tests.helpers import gen_cmd, gen_env, write_seeds  # noqa: E402


def command_wall(seeds: Path, out: Path, backend: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(gen_cmd("selfchat", "--seeds", seeds, "--field", "question", *backend, "--out", out,
                                  "--dry-run"), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"gen selfchat --dry-run failed: {proc.stderr.strip()}")
    return wall, proc.stdout


def in_process(seeds: Path, out: Path, backend: list[str]) -> tuple[float, float, float]:
    """Seeds/s of reading alone, the seconds the engines take to build (mostly the client
    library's import), and requests/s of the estimate after both (with a local model, its
    tokenizer's load included)."""
    started = time.perf_counter()
    count = len(load_seeds(str(seeds), field="question"))
    read_s = time.perf_counter() - started
    args = dict(zip(backend[::2], backend[1::2]))
    opts = RunOptions(backend=args["--backend"].lstrip("-"), model=args.get("--model"),
                      base_url=args.get("--base-url"), no_cache=True)
    stage = SelfChatStage(SelfChatSettings(seeds=str(seeds), text_field="question", out=out), opts)
    stage.load_inputs()
    started = time.perf_counter()
    stage.build_engines()
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    estimate_lines(stage, stage.dry_run())
    estimate_s = time.perf_counter() - started
    return count / read_s, build_s, count / estimate_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="seeds")
    parser.add_argument("--local", action="store_true", help="also the embedded model (its tokenizer)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ChatServer() as server:
        seeds = write_seeds(Path(tmp) / "seeds.jsonl", [f"How does machine number {i} work, and why?"
                                                        for i in range(args.n)])
        runs = [("openai gpt-4o-mini (chars/4)",
                 ["--backend", "openai", "--base-url", server.base_url, "--model", "gpt-4o-mini"],
                 gen_env(OPENAI_API_KEY="k"))]
        if args.local:
            runs.append(("hf smollm2-135m (its tokenizer)", ["--backend", "hf"], gen_env()))
        os.environ.setdefault("OPENAI_API_KEY", "k")
        for label, backend, env in runs:
            out = Path(tmp) / "out"
            wall, stdout = command_wall(seeds, out, backend, env)
            read_rate, build_s, estimate_rate = in_process(seeds, out, backend)
            print(f"{label}: {args.n} seeds, `gen selfchat --dry-run` {wall:.2f} s wall; in this process: "
                  f"reading the seeds {read_rate:,.0f} seeds/s, engines built in {build_s:.2f} s, "
                  f"the estimate {estimate_rate:,.0f} requests/s")
            print("  " + stdout.strip().splitlines()[2])
            assert not out.exists(), "a dry run wrote its folder"
        print(f"requests the server received: {server.requests_total}")
        assert server.requests_total == 0


if __name__ == "__main__":
    main()
