"""The unparsed share of `gen curate` ratings with --constrained off and auto, on the embedded
SmolLM2-135M-Instruct (hf backend, CPU), as the demo rates (./run.sh demo: --score-mode direct).

    python bench/constrained.py                                    # examples/seed_pairs.jsonl
    python bench/constrained.py --input runs/demo/rounds/round0/augment/data.jsonl
    python bench/constrained.py --modes direct reasoned --max-tokens 200
    python bench/constrained.py --modes reasoned --settings auto --out /tmp/bench-constrained

For each score mode, `gen curate` runs in a subprocess once with --constrained off and once with
auto, on the same records, with --no-cache (every rating is asked for), --retries-unparsed 0 (so
off is the single answer the model gives; auto then has its one retry that tells the model what
was wrong) and --lang any --no-dedup (every record is rated). It prints, per run, the ratings
answered, unparsed, the unparsed share from the manifest (rating.unparsed_share), and the
ratio off/auto of the shares.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO / "examples" / "seed_pairs.jsonl"


def curate(input_path: Path, out: Path, mode: str, constrained: str, max_tokens: int | None,
           model: str | None) -> tuple[dict, float]:
    """One `gen curate` run; its manifest's rating figures and its wall time."""
    cmd = [sys.executable, "-m", "generators.cli", "curate", "--input", str(input_path), "--backend", "hf",
           "--score-mode", mode, "--constrained", constrained, "--retries-unparsed", "0", "--lang", "any",
           "--no-dedup", "--threshold", "1", "--concurrency", "16", "--no-cache", "--no-progress", "--out", str(out)]
    if max_tokens:
        cmd += ["--max-tokens", str(max_tokens)]
    if model:
        cmd += ["--model", model]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"gen curate failed ({mode}, {constrained}): {proc.stderr.strip()[-2000:]}")
    return json.loads((out / "manifest.json").read_text())["rating"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--modes", nargs="+", choices=["direct", "reasoned"], default=["direct", "reasoned"])
    parser.add_argument("--max-tokens", type=int, default=200, help="reasoned mode's answer length")
    parser.add_argument("--model", default=None, help="default: the embedded SmolLM2-135M-Instruct")
    parser.add_argument("--settings", nargs="+", choices=["off", "auto"], default=["off", "auto"],
                        help="the --constrained settings to run (the ratio needs both)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    print(f"input: {args.input}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for mode in args.modes:
            shares = {}
            for constrained in args.settings:
                rating, took = curate(args.input, root / f"{mode}-{constrained}", mode, constrained,
                                      args.max_tokens if mode == "reasoned" else None, args.model)
                shares[constrained] = rating["unparsed_share"]
                print(f"{mode:8} --constrained {constrained:4}: {rating['answered']} answered, "
                      f"{rating['unparsed']} unparsed ({100 * rating['unparsed_share']:.1f}%), "
                      f"told {rating['told']}, guide {rating['constrained'] or 'none'}, {took:.0f} s", flush=True)
            if len(shares) < 2:
                continue
            off, auto = shares["off"], shares["auto"]
            ratio = "inf" if auto == 0 and off > 0 else ("1.0" if auto == off else f"{off / auto:.1f}")
            print(f"{mode:8} unparsed share off / auto: {100 * off:.1f}% / {100 * auto:.1f}% (ratio {ratio})")


if __name__ == "__main__":
    main()
