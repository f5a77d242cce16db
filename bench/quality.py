"""Does training the backward model help, and can a small rater judge pairs or only instructions?
Measured on real MedQuAD question/answer pairs with SmolLM2-135M-Instruct on the CPU, through the
real `gen eval` and `gen train` commands:

  1. backward ROUGE-L of the untrained model (base + prompts/backward.j2) on held-out answers;
  2. `gen train --direction backward` on TRAIN other pairs, then the same held-out answers again;
  3. a no-model baseline: the answer's first sentence taken as the instruction;
  4. `gen eval curation` of the untrained model (--score-mode direct) rating pairs vs rating
     the instruction alone (--rate instruction), on the same held-out pairs and negatives.

    BALEEN_BENCH_DATA=/path/to/data python bench/quality.py            # 300 train, 100 held out, 200 steps
    python bench/quality.py --input medquad_answers.jsonl --train 300 --heldout 30 --steps 24 --curation-pairs 12

It prints ROUGE-L trained / untrained and AUC instruction / pair, each from one run. The split is
deterministic: pairs with answers of 200-1,200 characters, one per question, ordered by a hash of
their question; the first HELDOUT are held out, the next TRAIN are trained on.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from curation.eval.candidates import first_sentence  # noqa: E402
from curation.eval.metrics import rouge_l  # noqa: E402

DATA = Path(os.environ.get("BALEEN_BENCH_DATA", ".")) / "medquad_answers.jsonl"


def split(path: Path, train: int, heldout: int) -> tuple[list[dict], list[dict]]:
    rows, seen = [], set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            question, answer = (obj.get("question") or "").strip(), " ".join((obj.get("text") or "").split())
            if question and 200 <= len(answer) <= 1200 and question.lower() not in seen:
                seen.add(question.lower())
                rows.append({"id": f"{obj.get('id')}:{len(rows)}", "instruction": question, "output": answer})
    rows.sort(key=lambda r: hashlib.sha256(r["instruction"].encode()).hexdigest())
    if len(rows) < train + heldout:
        sys.exit(f"bench: {path} has {len(rows)} usable pairs; need {train + heldout}")
    return rows[heldout:heldout + train], rows[:heldout]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def start(*args: object) -> tuple[subprocess.Popen, float]:
    """Start `gen ARGS` (this interpreter) in the background."""
    proc = subprocess.Popen([sys.executable, "-m", "generators.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return proc, time.monotonic()


def wait(job: tuple[subprocess.Popen, float], what: str) -> float:
    """Wait for a started `gen`; its seconds (exit on failure)."""
    proc, started = job
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"bench: {what} failed: {err.strip()[-500:]}")
    return time.monotonic() - started


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def metrics(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=DATA, help="medquad_answers.jsonl (question, text)")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200, help="gen train --max-steps for the backward model")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512, help="gen train --max-length")
    parser.add_argument("--max-tokens", type=int, default=64, help="longest instruction generated")
    parser.add_argument("--curation-pairs", type=int, default=None,
                        help="rate only the first N held-out pairs (and their negatives); default: all")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-quality"))
    args = parser.parse_args()
    if not args.input.is_file():
        sys.exit(f"bench: {args.input} not found; set BALEEN_BENCH_DATA or pass --input")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    train, heldout = split(args.input, args.train, args.heldout)
    records = [{"id": r["id"], "source": "medquad", "tag": "seed", "messages": [
        {"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]}]} for r in train]
    train_file, heldout_file = write(work / "train.jsonl", records), write(work / "heldout.jsonl", heldout)
    model = ["--backend", "hf", "--model", "smollm2-135m", "--no-progress", "--concurrency", "16"]

    # The steps that do not depend on each other run side by side (2 cores, and a shared machine:
    # the wall time is what matters here, the figures are quality ratios, not speeds).
    limit = ["--limit", args.curation_pairs] if args.curation_pairs else []
    jobs = {
        "untrained": start("eval", "backward", "--pairs", heldout_file, *model, "--max-tokens", args.max_tokens,
                           "--out", work / "backward-untrained"),
        "train": start("train", "--data", train_file, "--base", "smollm2-135m", "--direction", "backward",
                       "--out", work / "myx", "--max-steps", args.steps, "--batch-size", args.batch_size,
                       "--max-length", args.max_length, "--eval-frac", 0, "--save-every", max(args.steps // 2, 1)),
        "pair": start("eval", "curation", "--pairs", heldout_file, *model, *limit, "--score-mode", "direct",
                      "--out", work / "curation-pair"),
        "instruction": start("eval", "curation", "--pairs", heldout_file, *model, *limit, "--score-mode", "direct",
                             "--rate", "instruction", "--out", work / "curation-instruction")}
    seconds = {"train": wait(jobs.pop("train"), "gen train")}
    trained_job = start("eval", "backward", "--pairs", heldout_file, *model, "--adapter", work / "myx",
                        "--max-tokens", args.max_tokens, "--out", work / "backward-trained")
    for name, job in jobs.items():
        seconds[name] = wait(job, name)
    seconds["trained"] = wait(trained_job, "trained")
    report(args, work, train, heldout, seconds)


def report(args: argparse.Namespace, work: Path, train: list[dict], heldout: list[dict],
           seconds: dict[str, float]) -> None:
    untrained, trained = metrics(work / "backward-untrained"), metrics(work / "backward-trained")
    copy = sum(rouge_l(first_sentence(r["output"]), r["instruction"]) for r in heldout) / len(heldout)
    pair, instruction = metrics(work / "curation-pair"), metrics(work / "curation-instruction")
    print(f"curation: {pair['positives']} held-out pairs and {pair['negatives']} negatives, rated by the untrained "
          "model (--score-mode direct)")
    print(f"data: {args.input} ({len(train)} train, {len(heldout)} held out); backward trained {args.steps} steps "
          f"of {args.batch_size} ({seconds['train']:.0f} s)")
    for name, m in (("untrained", untrained), ("trained", trained)):
        print(f"backward {name:9s}: ROUGE-L {m['rouge_l']:.3f} (passing post-filters: {m['passed_share']:.0%}, "
              f"ROUGE-L of those {m['rouge_l_passed'] or 0:.3f}), exact match {m['exact_match']:.0%}")
    print(f"baseline (answer's first sentence as the instruction): ROUGE-L {copy:.3f}")
    print(f"ratio trained / untrained ROUGE-L: {trained['rouge_l'] / max(untrained['rouge_l'], 1e-9):.2f}")
    for name, m in (("pair", pair), ("instruction", instruction)):
        by_kind = ", ".join(f"{k} {v}" for k, v in m["auc_by_kind"].items())
        print(f"curation by {name:11s}: AUC {m['auc']} ({by_kind}), unparsed {m['unparsed_share']:.0%}, "
              f"precision/recall at 4: {_f(m['threshold']['4']['precision'])}/{_f(m['threshold']['4']['recall'])}, "
              f"mean score true {m['mean_score']['true']} vs negatives {m['mean_score']['negative']}")
    if pair["auc"] and instruction["auc"]:
        print(f"ratio AUC instruction / pair: {instruction['auc'] / pair['auc']:.2f}")
    took = {name: json.loads((work / folder / "manifest.json").read_text()).get("duration_s")
            for name, folder in (("untrained", "backward-untrained"), ("trained", "backward-trained"),
                                 ("pair", "curation-pair"), ("instruction", "curation-instruction"))}
    print("seconds (each eval's own manifest, all sessions; steps ran side by side on a shared machine): "
          + ", ".join(f"{k} {v:.0f}" for k, v in took.items() if v is not None) + f"; train {seconds['train']:.0f} wall")


if __name__ == "__main__":
    main()
