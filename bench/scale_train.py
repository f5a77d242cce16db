"""Training scale-out: tokens/s with 1 vs 2 torchrun processes on the CPU (DDP over gloo).

Both runs are the real `gen train` started by torchrun, each process pinned to one thread
(OMP_NUM_THREADS=1), with the same effective batch: 1 process with --grad-accum 2, 2 processes
with --grad-accum 1, so both make the same updates (the same adapter). Tokens/s is the trainer's
own figure from the manifest (real tokens over the training loop's time, model loading excluded).
Prints each and the 2-process/1-process ratio (2.0 would be perfect scaling).

  python bench/scale_train.py                   # tiny model, 20 steps of 2 x 4 examples
  python bench/scale_train.py --model smollm2   # the embedded SmolLM2-135M (slower)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def run(procs: int, args: argparse.Namespace, base: str, data: Path, out: Path) -> dict:
    """One `gen train` under torchrun; its manifest's batching and throughput."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
           "-m", "generators.cli", "train", "--data", str(data), "--base", base, "--out", str(out),
           "--batch-size", str(args.batch_size), "--grad-accum", str(2 // procs),
           "--max-steps", str(args.steps), "--max-length", str(args.max_length), "--eval-frac", "0",
           "--lora-dropout", "0", "--save-every", "0", "--log-every", str(args.steps), "--packing", "off"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"scale_train: {procs}-process run failed:\n{proc.stderr[-2000:]}")
    m = json.loads((out / "manifest.json").read_text())
    return {**m["throughput"], **m["batching"]}


def main(argv: list[str] | None = None) -> float:
    """Run both and print the ratio; returns it (bench/scale.py calls this with no arguments)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4, help="per process (micro-batch)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv or [])
    import train_throughput  # the realistic synthetic records of the packing benchmark

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base, _ = train_throughput.model_folder(args.model, tmp_path)
        data = tmp_path / "data.jsonl"
        rows = train_throughput.records(args.examples, args.seed, 120)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"model {args.model} on the CPU, one thread per process; micro-batch {args.batch_size}, "
              f"effective batch {2 * args.batch_size}, {args.steps} steps", flush=True)
        one = run(1, args, base, data, tmp_path / "one")
        two = run(2, args, base, data, tmp_path / "two")
    for name, r in (("1 process ", one), ("2 processes", two)):
        print(f"{name} {r['tokens_per_s']:10.1f} tokens/s  ({r['tokens']} tokens in {r['train_seconds']:.2f} s, "
              f"world {r['world_size']}, grad-accum {r['grad_accum']})")
    ratio = two["tokens_per_s"] / one["tokens_per_s"]
    print(f"2-process/1-process training tokens/s ratio: {ratio:.2f} (scaling efficiency {ratio / 2:.0%})")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
