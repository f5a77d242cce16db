"""Calibrate the thresholds of the checks of meaning on real text no one here wrote.

    .venv/bin/python bench/calibrate_embed.py [--model minilm] [--figure docs/embeddings.png]

semantic_duplicate (--semantic-threshold): the MedQuAD questions, AlpacaEval instructions and Stack
Overflow titles in tests/data/quality/ are distinct by construction within a set, so every one
the dedup drops there is a false duplicate; tests/data/quality/paraphrase_pairs.jsonl (written
here) are pairs that mean the same, so a pair below the threshold is a miss.
off_topic by meaning (--topic-threshold): the on-topic dialogs there (teacher_dialogs.jsonl, and
the smollm2_dialogs.jsonl hand-labelled on_topic) against their own seed must pass; the same
dialogs against another dialog's seed (a fixed rotation) must be caught.
Prints the table docs/filters.md carries and draws the figure docs/embeddings.md shows.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generators.core.embeddings import (SEMANTIC_THRESHOLD, TOPIC_THRESHOLD, Embeddings, EmbedSettings,  # noqa: E402
                                        SemanticDedup, load_embedder)
from generators.selfchat.filters import topic_cosine  # noqa: E402

DATA = REPO / "tests" / "data" / "quality"


def lines(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]


class Memory(Embeddings):
    """Embeddings with the model loaded once and no cache folder (the bench measures the model)."""

    def __init__(self, embedder) -> None:
        super().__init__(EmbedSettings(embed_model=embedder.name), None)
        self._embedder = embedder
        self.seen: dict[str, np.ndarray] = {}

    def encode(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if missing:
            self.seen.update(zip(missing, self._embedder.encode(missing)))
        return np.stack([self.seen[t] for t in texts])


def false_duplicates(emb: Memory, texts: list[str], threshold: float) -> int:
    dedup = SemanticDedup(emb, threshold)
    dedup.warm(texts)
    return sum(dedup.is_duplicate(t) for t in texts)


def nearest_earlier(vectors: np.ndarray) -> np.ndarray:
    """For each row, the cosine of the nearest row before it (what in-order dedup compares)."""
    sims = vectors @ vectors.T
    return np.array([sims[i, :i].max() if i else -1.0 for i in range(len(vectors))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    embedder = load_embedder(args.model)
    emb = Memory(embedder)
    sets = {"MedQuAD questions": [r["question"] for r in lines("medquad_pairs.jsonl")],
            "AlpacaEval instructions": [r["instruction"] for r in lines("alpaca_eval_instructions.jsonl")],
            "Stack Overflow titles": [r["title"] for r in lines("stackoverflow_titles.jsonl")]}
    pairs = lines("paraphrase_pairs.jsonl")
    every = [t for texts in sets.values() for t in texts] + [p[k] for p in pairs for k in ("a", "b")]
    embedder.encode(every[:64])  # warm up
    start = time.perf_counter()
    embedder.encode(every)
    rate = len(every) / (time.perf_counter() - start)

    t = SEMANTIC_THRESHOLD
    print(f"model {embedder.name}, semantic threshold {t}, topic threshold {TOPIC_THRESHOLD}\n")
    print("| check | data | n | result | target |\n|---|---|---:|---:|---|")
    nearest = {}
    for name, texts in sets.items():
        dropped = false_duplicates(emb, texts, t)
        nearest[name] = nearest_earlier(embedder.encode(texts))
        print(f"| semantic_duplicate, distinct texts wrongly dropped | {name} | {len(texts)} | "
              f"{dropped} ({100 * dropped / len(texts):.1f}%) | <= 1% |")
    a, b = embedder.encode([p["a"] for p in pairs]), embedder.encode([p["b"] for p in pairs])
    pair_cos = (a * b).sum(axis=1)
    caught = int((pair_cos >= t).sum())
    print(f"| semantic_duplicate, paraphrases caught | paraphrase_pairs.jsonl | {len(pairs)} | "
          f"{caught} ({100 * caught / len(pairs):.1f}%) | >= 85% |")

    dialogs = [(d["seed"], d["messages"]) for d in lines("teacher_dialogs.jsonl")]
    dialogs += [(d["seed"], d["messages"]) for d in lines("smollm2_dialogs.jsonl") if d["on_topic"] and d["messages"]]
    own = np.array([topic_cosine(emb, seed, msgs) for seed, msgs in dialogs])
    other = np.array([topic_cosine(emb, dialogs[(i + 7) % len(dialogs)][0], msgs)
                      for i, (_, msgs) in enumerate(dialogs)
                      if dialogs[(i + 7) % len(dialogs)][0] != dialogs[i][0]])
    wrong = int((own < TOPIC_THRESHOLD).sum())
    missed_caught = int((other < TOPIC_THRESHOLD).sum())
    print(f"| off_topic by meaning, on-topic dialogs wrongly dropped | teacher + SmolLM2 on-topic | {len(own)} | "
          f"{wrong} ({100 * wrong / len(own):.1f}%) | <= 2% |")
    print(f"| off_topic by meaning, dialogs under another seed caught | the same, seeds rotated | {len(other)} | "
          f"{missed_caught} ({100 * missed_caught / len(other):.1f}%) | - |")
    print(f"| throughput | all texts above, batch 64 | {len(every)} | {rate:.0f} texts/s | - |")
    print("\nsweep of --semantic-threshold: distinct texts wrongly dropped (MedQuAD / AlpacaEval / Stack Overflow), "
          "paraphrases caught\n\n| threshold | MedQuAD | AlpacaEval | Stack Overflow | all distinct | paraphrases |\n"
          "|---:|---:|---:|---:|---:|---:|")
    total = sum(len(v) for v in sets.values())
    for sweep in (0.7, 0.75, 0.78, 0.8, 0.82, 0.85, 0.9):
        wrong_by_set = [false_duplicates(emb, texts, sweep) for texts in sets.values()]
        print(f"| {sweep} | " + " | ".join(f"{w / len(v):.1%}" for w, v in zip(wrong_by_set, sets.values()))
              + f" | {sum(wrong_by_set) / total:.1%} | {(pair_cos >= sweep).mean():.0%} |")
    print("\nnearest-earlier cosine, max per set: " +
          ", ".join(f"{k} {v.max():.3f}" for k, v in nearest.items()) +
          f"; paraphrase pairs min {pair_cos.min():.3f}; own-seed topic min {own.min():.3f}, "
          f"other-seed max {other.max():.3f}")
    if args.figure:
        draw(args.figure, nearest, pair_cos, own, other, t)
        print(f"figure: {args.figure}")


def draw(path: Path, nearest: dict[str, np.ndarray], pairs: np.ndarray, own: np.ndarray, other: np.ndarray,
         threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(-0.2, 1.0, 49)
    for name, values in nearest.items():
        left.hist(values[1:], bins=bins, alpha=0.5, label=f"{name}: nearest earlier")
    left.hist(pairs, bins=bins, alpha=0.7, label="paraphrase pairs", color="black")
    left.axvline(threshold, color="red", linestyle="--", label=f"--semantic-threshold {threshold}")
    left.set(title="semantic_duplicate", xlabel="cosine", ylabel="texts")
    left.legend(fontsize=7)
    right.hist(own, bins=bins, alpha=0.6, label="dialog vs its own seed")
    right.hist(other, bins=bins, alpha=0.6, label="dialog vs another seed")
    right.axvline(TOPIC_THRESHOLD, color="red", linestyle="--", label=f"--topic-threshold {TOPIC_THRESHOLD}")
    right.set(title="off_topic by meaning", xlabel="cosine", ylabel="dialogs")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
