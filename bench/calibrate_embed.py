"""Calibrate the thresholds of the checks of meaning on real text no one here wrote.

    .venv/bin/python bench/calibrate_embed.py [--model minilm] [--figure docs/embeddings.png]

    .venv/bin/python bench/calibrate_embed.py --fit   # refit the pair test, print its weights

semantic_duplicate (--semantic-threshold, the pair test of generators/core/same_meaning.py): the
MedQuAD questions, AlpacaEval instructions and Stack Overflow titles in tests/data/quality/ are
distinct by construction within a set, so every one the dedup drops there is a false duplicate;
paraphrase_pairs.jsonl (written here) are pairs that mean the same, so a pair not caught is a
miss; distinct_pairs.jsonl (written here) are near-identical wordings that ask different things,
so a pair caught is a false duplicate. Every set is split in two by a hash of its id (or text):
the pair test was fitted on the training half only (--fit), and the figures are given for the
held-out half, and for the whole set beside them.
off_topic by meaning (--topic-threshold): the on-topic dialogs there (teacher_dialogs.jsonl, and
the smollm2_dialogs.jsonl hand-labelled on_topic) against their own seed must pass; the same
dialogs against another dialog's seed (a fixed rotation) must be caught.
Prints the table docs/filters.md carries and draws the figure docs/embeddings.md shows.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generators.core.embeddings import (SEMANTIC_THRESHOLD, TOPIC_THRESHOLD, Embeddings, EmbedSettings,  # noqa: E402
                                        SemanticDedup, load_embedder)
from generators.core.same_meaning import WEIGHTS, PairWeights, pair_features, same_meaning  # noqa: E402
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


def false_duplicates(emb: Memory, texts: list[str], threshold: float, weights: PairWeights = WEIGHTS) -> int:
    """Texts the shipped rule (candidates from the index, then the pair test) drops."""
    dedup = SemanticDedup(emb, threshold, weights)
    dedup.warm(texts)
    return sum(dedup.is_duplicate(t) for t in texts)


def cosine_only_duplicates(vectors: np.ndarray, threshold: float) -> int:
    """Texts the rule before the pair test dropped: cosine with an earlier kept one >= threshold."""
    kept: list[int] = []
    dropped = 0
    for i in range(len(vectors)):
        if kept and float((vectors[kept] @ vectors[i]).max()) >= threshold:
            dropped += 1
        else:
            kept.append(i)
    return dropped


def nearest_earlier(vectors: np.ndarray) -> np.ndarray:
    """For each row, the cosine of the nearest row before it (what in-order dedup compares)."""
    sims = vectors @ vectors.T
    return np.array([sims[i, :i].max() if i else -1.0 for i in range(len(vectors))])


def held_out(key: str, other_fold: bool = False) -> bool:
    """The fixed split: half of every set is held out of the fit, by a hash of its id or text
    (other_fold: the halves swapped, for the second fold of a two-fold check)."""
    return (int(hashlib.sha256(f"split:{key}".encode()).hexdigest(), 16) % 2 == 1) != other_fold


def fit(emb: Memory, sets: dict[str, list[str]], paraphrases: list[dict], distinct: list[dict], floor: float,
        c: float = 100.0, other_fold: bool = False) -> PairWeights:
    """Logistic regression (L2, 1/c on the weights, Newton steps) on the training half: the
    paraphrase pairs are positives; the hard distinct pairs and every pair of texts of a distinct
    set whose cosine is at or above the floor are negatives."""
    rows, labels = [], []
    for pairs, label in ((paraphrases, 1.0), (distinct, 0.0)):
        for p in pairs:
            if not held_out(p["id"], other_fold):
                rows.append(pair_features(p["a"], p["b"], cosine(emb, p["a"], p["b"])))
                labels.append(label)
    for texts in sets.values():
        train = [t for t in texts if not held_out(t, other_fold)]
        vectors = emb.encode(train)
        sims = vectors @ vectors.T
        for i in range(len(train)):
            for j in range(i):
                if sims[i, j] >= floor:
                    rows.append(pair_features(train[j], train[i], float(sims[i, j])))
                    labels.append(0.0)
    x = np.hstack([np.ones((len(rows), 1)), np.array(rows)])
    y = np.array(labels)
    penalty = np.diag([0.0] + [1.0 / c] * (x.shape[1] - 1))
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x.T * (p * (1 - p))) @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    print(f"fitted on {len(y)} training pairs ({int(y.sum())} paraphrases), floor {floor}, c {c}:")
    weights = PairWeights(*(round(float(v), 3) for v in w))
    print(f"WEIGHTS = {weights!r}")
    return weights


def cosine(emb: Memory, a: str, b: str) -> float:
    va, vb = emb.encode([a, b])
    return float(va @ vb)


def pair_share(emb: Memory, pairs: list[dict], floor: float, weights: PairWeights = WEIGHTS) -> tuple[int, int]:
    """(caught, n): pairs the shipped rule calls the same (cosine >= floor, then the pair test)."""
    caught = 0
    for p in pairs:
        c = cosine(emb, p["a"], p["b"])
        caught += bool(c >= floor and same_meaning(p["a"], p["b"], c, weights))
    return caught, len(pairs)


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else "-"


def other_fold(emb: Memory, sets: dict[str, list[str]], pairs: list[dict], distinct: list[dict]) -> None:
    """The two-fold check: the halves swapped, fitted afresh, measured on the half the shipped
    weights were fitted on (what the shipped split's held-out figures would have been by chance)."""
    t = SEMANTIC_THRESHOLD
    weights = fit(emb, sets, pairs, distinct, t, other_fold=True)
    print(f"\nthe other fold (fitted on the shipped held-out half, measured on the shipped training half), floor {t}:")
    for name, texts in sets.items():
        test = [x for x in texts if held_out(x, True)]
        print(f"  {name}: distinct texts wrongly dropped {pct(false_duplicates(emb, test, t, weights), len(test))}")
    for label, group in (("paraphrases caught", pairs), ("hard distinct pairs wrongly caught", distinct)):
        print(f"  {label}: {pct(*pair_share(emb, [p for p in group if held_out(p['id'], True)], t, weights))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--fit", action="store_true", help="refit the pair test on the training half, print it")
    parser.add_argument("--other-fold", action="store_true",
                        help="the second fold: fit on the held-out half, measure on the training half")
    args = parser.parse_args()
    embedder = load_embedder(args.model)
    emb = Memory(embedder)
    sets = {"MedQuAD questions": [r["question"] for r in lines("medquad_pairs.jsonl")],
            "AlpacaEval instructions": [r["instruction"] for r in lines("alpaca_eval_instructions.jsonl")],
            "Stack Overflow titles": [r["title"] for r in lines("stackoverflow_titles.jsonl")]}
    pairs = lines("paraphrase_pairs.jsonl")
    distinct = lines("distinct_pairs.jsonl")
    every = list(dict.fromkeys([t for texts in sets.values() for t in texts]
                               + [p[k] for p in pairs + distinct for k in ("a", "b")]))
    embedder.encode(every[:64])  # warm up
    load_before = os.getloadavg()
    cpu, start = time.process_time(), time.perf_counter()
    emb.encode(every)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    load_after = os.getloadavg()
    if args.fit:
        fit(emb, sets, pairs, distinct, SEMANTIC_THRESHOLD)
        return
    if args.other_fold:
        other_fold(emb, sets, pairs, distinct)
        return

    t = SEMANTIC_THRESHOLD
    print(f"model {embedder.name}, --semantic-threshold (candidate floor) {t} + pair test, "
          f"topic threshold {TOPIC_THRESHOLD}; held out = the half not fitted on\n")
    print("| check | data | held out: n, result | whole set: n, result | cosine alone >= 0.8, whole set | target |\n"
          "|---|---|---:|---:|---:|---|")
    nearest = {}
    for name, texts in sets.items():
        test = [x for x in texts if held_out(x)]
        whole = false_duplicates(emb, texts, t)
        print(f"| semantic_duplicate, distinct texts wrongly dropped | {name} | "
              f"{pct(false_duplicates(emb, test, t), len(test))} | {pct(whole, len(texts))} | "
              f"{pct(cosine_only_duplicates(emb.encode(texts), 0.8), len(texts))} | <= 1% |")
        nearest[name] = nearest_earlier(emb.encode(texts))
    pair_cos = np.array([cosine(emb, p["a"], p["b"]) for p in pairs])
    dist_cos = np.array([cosine(emb, p["a"], p["b"]) for p in distinct])
    for label, group, cos, target in (("paraphrases caught", pairs, pair_cos, ">= 85%"),
                                      ("hard distinct pairs wrongly caught", distinct, dist_cos, "low")):
        test = [p for p in group if held_out(p["id"])]
        print(f"| semantic_duplicate, {label} | {'paraphrase' if group is pairs else 'distinct'}_pairs.jsonl | "
              f"{pct(*pair_share(emb, test, t))} | {pct(*pair_share(emb, group, t))} | "
              f"{pct(int((cos >= 0.8).sum()), len(group))} | {target} |")

    dialogs = [(d["seed"], d["messages"]) for d in lines("teacher_dialogs.jsonl")]
    dialogs += [(d["seed"], d["messages"]) for d in lines("smollm2_dialogs.jsonl") if d["on_topic"] and d["messages"]]
    own = np.array([topic_cosine(emb, seed, msgs) for seed, msgs in dialogs])
    other = np.array([topic_cosine(emb, dialogs[(i + 7) % len(dialogs)][0], msgs)
                      for i, (_, msgs) in enumerate(dialogs)
                      if dialogs[(i + 7) % len(dialogs)][0] != dialogs[i][0]])
    wrong = int((own < TOPIC_THRESHOLD).sum())
    missed_caught = int((other < TOPIC_THRESHOLD).sum())
    print(f"| off_topic by meaning, on-topic dialogs wrongly dropped | teacher + SmolLM2 on-topic | - | "
          f"{pct(wrong, len(own))} | - | <= 2% |")
    print(f"| off_topic by meaning, dialogs under another seed caught | the same, seeds rotated | - | "
          f"{pct(missed_caught, len(other))} | - | - |")
    print(f"\nthroughput: {len(every)} texts, batch {64}: {len(every) / wall:.1f} texts/s wall, "
          f"{len(every) / cpu:.1f} texts per CPU-second ({cpu:.1f} CPU-s in {wall:.1f} s, {os.cpu_count()} CPUs); "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")

    print("\nsweep of --semantic-threshold: distinct texts wrongly dropped (MedQuAD / AlpacaEval / "
          "Stack Overflow), paraphrases caught, hard distinct pairs caught; held-out half with the pair test and "
          "with the cosine alone, then the whole sets with the pair test\n\n"
          "| threshold | rule | MedQuAD | AlpacaEval | Stack Overflow | paraphrases | hard distinct |\n"
          "|---:|---|---:|---:|---:|---:|---:|")
    held = {name: [x for x in texts if held_out(x)] for name, texts in sets.items()}
    test_pairs = [p for p in pairs if held_out(p["id"])]
    test_dist = [p for p in distinct if held_out(p["id"])]
    tp_cos = np.array([cosine(emb, p["a"], p["b"]) for p in test_pairs])
    td_cos = np.array([cosine(emb, p["a"], p["b"]) for p in test_dist])
    for sweep in (0.65, 0.7, 0.72, 0.75, 0.8, 0.85, 0.9):
        tested = [false_duplicates(emb, texts, sweep) / len(texts) for texts in held.values()]
        alone = [cosine_only_duplicates(emb.encode(texts), sweep) / len(texts) for texts in held.values()]
        caught, n = pair_share(emb, test_pairs, sweep)
        wrong_d, nd = pair_share(emb, test_dist, sweep)
        print(f"| {sweep} | pair test | " + " | ".join(f"{v:.1%}" for v in tested)
              + f" | {caught / n:.0%} | {wrong_d / nd:.0%} |")
        print(f"| {sweep} | cosine alone | " + " | ".join(f"{v:.1%}" for v in alone)
              + f" | {(tp_cos >= sweep).mean():.0%} | {(td_cos >= sweep).mean():.0%} |")
        whole = [false_duplicates(emb, texts, sweep) / len(texts) for texts in sets.values()]
        caught, n = pair_share(emb, pairs, sweep)
        wrong_d, nd = pair_share(emb, distinct, sweep)
        print(f"| {sweep} | pair test, whole sets | " + " | ".join(f"{v:.1%}" for v in whole)
              + f" | {caught / n:.0%} | {wrong_d / nd:.0%} |")
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
    left.axvline(threshold, color="red", linestyle="--",
                 label=f"--semantic-threshold {threshold} (floor; the pair test decides above)")
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
