"""How often the instruction and dialog filters are right, on real data, in one run.

    BALEEN_BENCH_DATA=/path/to/data python bench/filters.py
    python bench/filters.py --data DIR --show 5

Real instructions (the filters must pass them): every AlpacaEval instruction, every MedQuAD
question paired with its answer page (`medquad_answers.jsonl`, the answer as the segment), every
Stack Overflow title (`staqc_sql_titles.jsonl`) and every MedQuAD question alone. Files missing
from the folder are skipped. Then the committed model outputs in tests/data/quality/: raw
backward outputs of an untrained SmolLM2-135M (the share of its meta-text rejected or salvaged),
SmolLM2 self-chat dialogs (kept ones must all be on topic) and hand-written teacher dialogs (the
share kept).

Prints one line per set: items, the pass (or catch) ratio and the reasons counted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.backtranslate.postfilter import judge_instruction  # noqa: E402
from generators.selfchat.filters import Chat, dialog_chain  # noqa: E402

QUALITY = ROOT / "tests" / "data" / "quality"


def rows(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def instruction_rates(name: str, pairs: Iterable[tuple[str, str]], show: int) -> None:
    counts: Counter[str] = Counter()
    shown = 0
    start = time.perf_counter()
    for instruction, segment in pairs:
        verdict = judge_instruction(instruction, segment)
        counts[verdict.reason or ("salvaged" if verdict.salvaged else "passed")] += 1
        if verdict.reason and shown < show:
            print(f"    {verdict.reason}: {instruction[:120]!r}")
            shown += 1
    total = sum(counts.values())
    per_s = total / max(time.perf_counter() - start, 1e-9)
    print(f"{name:<28} n={total:<6} passed {counts['passed'] / total:.4f}  ({per_s:,.0f}/s)  "
          f"{dict(counts.most_common())}")


def backward_outputs(path: Path) -> None:
    """The share of hand-labelled meta outputs that are rejected or salvaged, and of the rest kept."""
    data = list(rows(path))
    meta = [r for r in data if r["label"] == "meta"]
    verdicts = [judge_instruction(r["raw"], r["segment"], finish=r.get("finish", "stop")) for r in meta]
    caught = sum(1 for v in verdicts if v.reason or v.salvaged)
    salvaged = sum(1 for v in verdicts if v.salvaged)
    print(f"{path.name:<28} meta={len(meta):<4} rejected or salvaged {caught / max(len(meta), 1):.4f} "
          f"(salvaged {salvaged}) of {len(data)} outputs")


def dialogs(path: Path, name: str) -> None:
    flt = dialog_chain()
    counts: Counter[str] = Counter()
    off = 0
    for row in rows(path):
        reason = flt.check(Chat(row["messages"], seed=row["seed"]))
        counts[reason or "kept"] += 1
        if reason is None and row.get("on_topic") is False:
            off += 1
    total = sum(counts.values())
    print(f"{name:<28} n={total:<6} kept {counts['kept'] / total:.4f}  kept but off topic {off}  "
          f"{dict(counts.most_common())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BALEEN_BENCH_DATA", ".")),
                        help="folder with the reference files (default: $BALEEN_BENCH_DATA)")
    parser.add_argument("--show", type=int, default=0, help="print this many rejected examples per set")
    args = parser.parse_args()
    data = args.data
    sets = [
        ("alpaca_eval_instructions.jsonl", "AlpacaEval instructions", lambda r: (r["instruction"], "")),
        ("medquad_answers.jsonl", "MedQuAD question + answer", lambda r: (r["question"], r["text"])),
        ("staqc_sql_titles.jsonl", "Stack Overflow titles", lambda r: (r["title"], "")),
        ("medquad_questions.jsonl", "MedQuAD questions", lambda r: (r["question"], "")),
    ]
    for file, name, pick in sets:
        path = data / file
        if path.exists():
            instruction_rates(name, (pick(r) for r in rows(path)), args.show)
        else:
            print(f"{name:<28} skipped: no {path}")
    for path in sorted(QUALITY.glob("backward_*.jsonl")):
        backward_outputs(path)
    for path in sorted(QUALITY.glob("*dialogs*.jsonl")):
        dialogs(path, path.stem)


if __name__ == "__main__":
    main()
