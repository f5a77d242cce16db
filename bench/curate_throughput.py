"""Throughput of what `gen curate` does before rating: filters, decontamination, near-dup.

    python bench/curate_throughput.py              # 20k records against the 805 AlpacaEval prompts
    python bench/curate_throughput.py --n 5000 --baseline-n 200

Eval prompts come from $BALEEN_BENCH_DATA/alpaca_eval_instructions.jsonl when present, else 805
synthetic ones. Records are synthetic instructions with planted contamination (eval prompts
copied whole, inside longer requests, or reworded), near-duplicates, refusals and non-English.
It prints records/s for each step and the whole prefilter, and the ratio of the n-gram-indexed
BLEU check to the naive baseline (BLEU against every eval prompt) measured on the same
subsample in the same run, with whether both flag the same records.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from curation.decontaminate import Decontaminator, load_eval_prompts  # noqa: E402
from curation.dedup import InstructionDedup  # noqa: E402
from curation.filters import record_chain  # noqa: E402
from curation.prefilter import Prefilter  # noqa: E402

SHARED = Path(os.environ.get("BALEEN_BENCH_DATA", ".")) / "alpaca_eval_instructions.jsonl"
TOPICS = ("photosynthesis", "compound interest", "the French revolution", "neural networks", "sourdough bread",
          "black holes", "tax returns", "marathon training", "climate change", "the stock market", "jazz",
          "vaccines", "plate tectonics", "a job interview", "python decorators", "the Roman empire", "sleep")
VERBS = ("Explain", "Describe", "Summarize", "Give me tips on", "Write a short essay about", "What do you know about",
         "Compare two views on", "List the main facts about", "Teach a beginner about", "Write a poem about")
AUDIENCES = ("a child", "a busy manager", "a college student", "my grandmother", "an engineer", "a tourist")
ANSWER = ("Here is a clear answer: start with the basic idea, then look at the details one by one, and finish "
          "with a short example that shows how it works in practice for most people.")


def eval_prompts() -> tuple[list[str], str]:
    if SHARED.is_file():
        return load_eval_prompts(SHARED), str(SHARED)
    rng = random.Random(1)
    return [f"{rng.choice(VERBS)} {rng.choice(TOPICS)} for {rng.choice(AUDIENCES)}, in detail number {i}."
            for i in range(805)], "synthetic"


def records(n: int, evals: list[str], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.01:
            text = rng.choice(evals)  # copied whole
        elif kind < 0.02:
            text = f"My teacher asked: {rng.choice(evals)} Please answer in detail."
        elif kind < 0.03:
            words = rng.choice(evals).split()
            drop = rng.randrange(len(words))
            text = " ".join(words[:drop] + words[drop + 1:])  # reworded a little
        elif kind < 0.08 and out:
            text = out[rng.randrange(len(out))]["messages"][0]["content"] + " Thanks!"  # near duplicate
        else:
            text = (f"{rng.choice(VERBS)} {rng.choice(TOPICS)} for {rng.choice(AUDIENCES)} "
                    f"(case {rng.randrange(10**6)}), with {rng.randint(2, 9)} examples.")
        answer = ANSWER
        if rng.random() < 0.02:
            answer = "I'm sorry, but I cannot help with that request."
        elif rng.random() < 0.02:
            answer = "Voici une réponse claire: commencez par l'idée de base, puis regardez les détails un par un."
            text = "Explique-moi comment cela fonctionne exactement, s'il te plaît, avec des détails."
        out.append({"id": f"b{i}", "source": "bench", "messages": [{"role": "user", "content": text},
                                                                    {"role": "assistant", "content": answer}]})
    return out


def rate(fn, items) -> tuple[float, list]:
    start = time.perf_counter()
    results = [fn(item) for item in items]
    return len(items) / (time.perf_counter() - start), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--baseline-n", type=int, default=300, help="Subsample for the all-pairs BLEU baseline.")
    parser.add_argument("--bleu", type=float, default=20.0)
    args = parser.parse_args()

    evals, origin = eval_prompts()
    data = records(args.n, evals)
    print(f"{args.n} records against {len(evals)} eval prompts ({origin})")

    start = time.perf_counter()
    deco = Decontaminator(evals, bleu=args.bleu)
    print(f"index build            {time.perf_counter() - start:8.3f} s")
    flt = record_chain()
    speed, _ = rate(flt.check, data)
    print(f"filters                {speed:10.0f} records/s")
    speed, matches = rate(deco.check, data)
    print(f"decontamination        {speed:10.0f} records/s  ({sum(m is not None for m in matches)} flagged)")
    dedup = InstructionDedup()
    speed, dups = rate(dedup.check, data)
    print(f"near-dup (MinHash LSH) {speed:10.0f} records/s  ({sum(d is not None for d in dups)} flagged)")
    pre = Prefilter(decontaminator=Decontaminator(evals, bleu=args.bleu), dedup=InstructionDedup())
    speed, _ = rate(pre.decide, data)
    print(f"whole prefilter        {speed:10.0f} records/s  {dict(pre.counts)}")

    sample = [r["messages"][0]["content"] for r in random.Random(7).sample(data, min(args.baseline_n, len(data)))]
    fast_speed, fast = rate(deco._check_bleu, sample)
    slow_speed, slow = rate(deco.bleu_all_pairs, sample)
    agree = sum((a is None) == (b is None) for a, b in zip(fast, slow))
    print(f"BLEU > {args.bleu:g} on {len(sample)} records: indexed {fast_speed:.0f} records/s, all pairs "
          f"{slow_speed:.0f} records/s, ratio {fast_speed / slow_speed:.1f}x; same verdict on {agree}/{len(sample)} "
          f"({sum(b is not None for b in slow)} flagged by all pairs)")


if __name__ == "__main__":
    main()
