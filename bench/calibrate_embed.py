"""Calibrate the thresholds of the checks of meaning on real text no one here wrote.

    .venv/bin/python bench/calibrate_embed.py [--model minilm] [--figure docs/embeddings.png]
    .venv/bin/python bench/calibrate_embed.py --cv    # the two-fold choice of floor, k and margin
    .venv/bin/python bench/calibrate_embed.py --fit   # refit the pair test, print its weights

Other data, without editing code (each replaces the committed files of its kind; a PATH is
read as JSON lines; the pairs need fields id, a, b):

    .venv/bin/python bench/calibrate_embed.py \
        --distinct-sets "SO fresh=/path/so.jsonl:title" "AlpacaEval fresh=/path/alpaca.jsonl:instruction" \
        --pairs /path/paraphrases.jsonl --distinct-pairs /path/distinct.jsonl [--no-topic]

The pool the pairs are measured in is made of every distinct set given, so give all of them
(medical, general and technical) for a pool as dense as the committed one. --no-topic skips the
off_topic rows (their dialogs are the committed ones). Bad data: one line, exit 2.

semantic_duplicate (--semantic-threshold, the margin and the pair test of
generators/core/same_meaning.py): the texts of a distinct set (by default the MedQuAD questions,
AlpacaEval instructions and Stack Overflow titles in tests/data/quality/) are distinct by
construction, so every one the dedup drops there is a false duplicate; each set is deduplicated
whole, in file order, as a run would. Paraphrase pairs (paraphrase_pairs.jsonl) mean the same,
so a pair not caught is a miss; hard distinct pairs (distinct_pairs.jsonl) are near-identical
wordings that ask different things, so a pair caught is a false duplicate. Pairs are measured
two ways: alone (the two texts are the whole input: no neighbourhood, the margin hardly acts)
and in a pool (every pair text among all texts of the distinct sets, in an order fixed by a hash
of the text; a pair is caught when the later of its two texts is dropped, whichever earlier text
it is dropped for). The pool is the realistic one: a SQL paraphrase there sits among the SQL
titles, as in a real input.
--cv: every set is split in two by a hash of its id (or text); on each half the floor, k and
margin with every set's false duplicates at most 1% and the most pool paraphrases caught are
chosen, and measured on the other half; both folds and the pooled figures are printed.
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
from generators.core.same_meaning import (DENSITY_NEIGHBOURS, MARGIN, WEIGHTS, PairWeights,  # noqa: E402
                                          pair_features)
from generators.selfchat.filters import topic_cosine  # noqa: E402

DATA = REPO / "tests" / "data" / "quality"
PAIR_TEST_FLOOR = 0.72  # the floor the pair test's weights were fitted at (--fit)
V1 = {"threshold": 0.72, "margin": -1.0}  # the rule before the margin (pair-logistic-v1), for comparison
GRID = {"threshold": (0.6, 0.62, 0.65, 0.68, 0.72), "density_k": (3, 5, 10),
        "margin": (0.16, 0.18, 0.2, 0.22, 0.24, 0.26)}  # what --cv chooses from
DEFAULT_SETS = ("MedQuAD questions=medquad_pairs.jsonl:question",
                "AlpacaEval instructions=alpaca_eval_instructions.jsonl:instruction",
                "Stack Overflow titles=stackoverflow_titles.jsonl:title")


def lines(name: str | Path) -> list[dict]:
    path = Path(name) if Path(name).is_absolute() or Path(name).exists() else DATA / name
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def distinct_set(spec: str) -> tuple[str, list[str]]:
    """NAME=PATH:FIELD -> (NAME, the FIELD of every line of PATH)."""
    name, _, rest = spec.partition("=")
    path, _, field = rest.rpartition(":")
    if not name or not path or not field:
        raise ValueError(f"--distinct-sets {spec!r}: give NAME=PATH:FIELD")
    return name, [str(r[field]) for r in lines(path)]


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


def dropped(emb: Memory, texts: list[str], threshold: float = SEMANTIC_THRESHOLD, margin: float = MARGIN,
            density_k: int = DENSITY_NEIGHBOURS, weights: PairWeights = WEIGHTS) -> set[int]:
    """Positions of the texts the shipped rule drops, the whole list deduplicated in order."""
    dedup = SemanticDedup(emb, threshold, weights, margin=margin, density_k=density_k)
    dedup.warm(texts)
    return {i for i, t in enumerate(texts) if dedup.is_duplicate(t)}


def false_duplicates(emb: Memory, texts: list[str], threshold: float = SEMANTIC_THRESHOLD, **rule) -> int:
    """Texts of a distinct set the rule drops."""
    return len(dropped(emb, texts, threshold, **rule))


def cosine_only_duplicates(vectors: np.ndarray, threshold: float) -> int:
    """Texts the rule before the pair test dropped: cosine with an earlier kept one >= threshold."""
    kept: list[int] = []
    out = 0
    for i in range(len(vectors)):
        if kept and float((vectors[kept] @ vectors[i]).max()) >= threshold:
            out += 1
        else:
            kept.append(i)
    return out


def nearest_earlier(vectors: np.ndarray) -> np.ndarray:
    """For each row, the cosine of the nearest row before it (what in-order dedup compares)."""
    sims = vectors @ vectors.T
    return np.array([sims[i, :i].max() if i else -1.0 for i in range(len(vectors))])


def held_out(key: str, other_fold: bool = False) -> bool:
    """The fixed split: half of every set is held out of the fit, by a hash of its id or text
    (other_fold: the halves swapped, for the second fold of a two-fold check)."""
    return (int(hashlib.sha256(f"split:{key}".encode()).hexdigest(), 16) % 2 == 1) != other_fold


def fit(emb: Memory, sets: dict[str, list[str]], paraphrases: list[dict], distinct: list[dict],
        floor: float = PAIR_TEST_FLOOR, c: float = 100.0, other_fold: bool = False) -> PairWeights:
    """The pair test: logistic regression (L2, 1/c on the weights, Newton steps) on the training
    half: the paraphrase pairs are positives; the hard distinct pairs and every pair of texts of a
    distinct set whose cosine is at or above the floor are negatives."""
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


def alone(emb: Memory, pairs: list[dict], threshold: float = SEMANTIC_THRESHOLD, **rule) -> set[str]:
    """Ids of the pairs whose second text the rule drops when the two texts are the whole input."""
    return {p["id"] for p in pairs if dropped(emb, [p["a"], p["b"]], threshold, **rule)}


def pool_order(texts: list[str]) -> list[str]:
    return sorted(dict.fromkeys(texts), key=lambda t: hashlib.sha256(f"pool:{t}".encode()).hexdigest())


def in_pool(emb: Memory, sets: dict[str, list[str]], pairs: list[dict], threshold: float = SEMANTIC_THRESHOLD,
            **rule) -> set[str]:
    """Ids of the pairs whose later text is dropped when every pair text is deduplicated among all
    the texts of the distinct sets (one input, in an order fixed by a hash of the text)."""
    texts = pool_order([t for ts in sets.values() for t in ts] + [p[k] for p in pairs for k in ("a", "b")])
    gone = dropped(emb, texts, threshold, **rule)
    at = {t: i for i, t in enumerate(texts)}
    return {p["id"] for p in pairs if max(at[p["a"]], at[p["b"]]) in gone}


def pair_share(emb: Memory, pairs: list[dict], threshold: float = SEMANTIC_THRESHOLD, **rule) -> tuple[int, int]:
    """(caught, n): pairs alone whose second text the rule drops."""
    return len(alone(emb, pairs, threshold, **rule)), len(pairs)


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else "-"


def measure(emb: Memory, sets: dict[str, list[str]], pairs: list[dict], distinct: list[dict],
            **rule) -> dict[str, set[str]]:
    """What one rule drops: per distinct set the texts, and the ids of the pairs caught (alone and
    in the pool)."""
    out: dict[str, set[str]] = {}
    for name, texts in sets.items():
        out[name] = {texts[i] for i in dropped(emb, texts, **rule)}
    for label, group in (("paraphrases", pairs), ("distinct pairs", distinct)):
        out[f"{label} alone"] = alone(emb, group, **rule)
        out[f"{label} in pool"] = in_pool(emb, sets, group, **rule)
    return out


def split_counts(found: dict[str, set[str]], sets: dict[str, list[str]], pairs: list[dict], distinct: list[dict],
                 other: bool, test: bool) -> dict[str, tuple[int, int]]:
    """(hits, n) per measure, on one half of every set."""
    counts = {}
    for name, texts in sets.items():
        half = [t for t in texts if held_out(t, other) == test]
        counts[name] = (sum(t in found[name] for t in half), len(half))
    for label, group in (("paraphrases", pairs), ("distinct pairs", distinct)):
        half = [p["id"] for p in group if held_out(p["id"], other) == test]
        for how in ("alone", "in pool"):
            counts[f"{label} {how}"] = (sum(i in found[f"{label} {how}"] for i in half), len(half))
    return counts


def cross_validate(emb: Memory, sets: dict[str, list[str]], pairs: list[dict], distinct: list[dict]) -> None:
    """Two folds: on each half choose (floor, k, margin) from GRID, every set's false duplicates at
    most 1% and the most paraphrases caught in the pool (ties: the larger margin, the smaller k),
    then measure on the other half. The pair test's weights stay the shipped ones."""
    rules = [dict(threshold=t, density_k=k, margin=m) for t in GRID["threshold"] for k in GRID["density_k"]
             for m in GRID["margin"]]
    found = {i: measure(emb, sets, pairs, distinct, **r) for i, r in enumerate(rules)}
    pooled: dict[str, list[int]] = {}
    for other in (False, True):
        best = None
        for i, r in enumerate(rules):
            train = split_counts(found[i], sets, pairs, distinct, other, test=False)
            if all(train[name][0] <= 0.01 * train[name][1] for name in sets):
                score = (train["paraphrases in pool"][0], r["margin"], -r["density_k"])
                if best is None or score > best[0]:
                    best = (score, i)
        if best is None:
            print(f"fold {int(other) + 1}: no rule of the grid keeps every set at 1% on the fitting half")
            continue
        rule = rules[best[1]]
        test = split_counts(found[best[1]], sets, pairs, distinct, other, test=True)
        print(f"fold {int(other) + 1}: chosen on half {'B' if other else 'A'} {rule}, "
              f"measured on half {'A' if other else 'B'}: "
              + "; ".join(f"{k} {pct(*v)}" for k, v in test.items()))
        for k, v in test.items():
            pooled.setdefault(k, [0, 0])
            pooled[k][0] += v[0]
            pooled[k][1] += v[1]
    print("both folds, held out: " + "; ".join(f"{k} {pct(*v)}" for k, v in pooled.items()))
    print("\nthe whole grid on the whole data (every set whole; pairs alone / in the pool):")
    print("| floor | k | margin | " + " | ".join(sets) + " | paraphrases alone | in pool | distinct alone | in pool |")
    print("|---:|---:|---:|" + "---:|" * (len(sets) + 4))
    for i, r in enumerate(rules):
        f = found[i]
        print(f"| {r['threshold']} | {r['density_k']} | {r['margin']} | "
              + " | ".join(f"{len(f[n]) / len(sets[n]):.1%}" for n in sets)
              + f" | {len(f['paraphrases alone']) / len(pairs):.0%} | {len(f['paraphrases in pool']) / len(pairs):.0%}"
              + f" | {len(f['distinct pairs alone']) / len(distinct):.0%}"
              + f" | {len(f['distinct pairs in pool']) / len(distinct):.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--fit", action="store_true", help="refit the pair test on the training half, print it")
    parser.add_argument("--cv", action="store_true", help="the two-fold choice of floor, k and margin")
    parser.add_argument("--distinct-sets", nargs="+", metavar="NAME=PATH:FIELD", default=list(DEFAULT_SETS),
                        help="JSON-lines files of texts distinct by construction (PATH relative to "
                             "tests/data/quality/ when not found as given)")
    parser.add_argument("--pairs", default="paraphrase_pairs.jsonl", help="paraphrase pairs {id, a, b}")
    parser.add_argument("--distinct-pairs", default="distinct_pairs.jsonl", help="hard distinct pairs {id, a, b}")
    parser.add_argument("--no-topic", action="store_true", help="skip the off_topic check (its data is fixed)")
    args = parser.parse_args()
    try:
        sets = dict(distinct_set(spec) for spec in args.distinct_sets)
        pairs = lines(args.pairs)
        distinct = lines(args.distinct_pairs)
    except (OSError, KeyError, ValueError) as exc:
        print(f"calibrate_embed: cannot read the data: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    embedder = load_embedder(args.model)
    emb = Memory(embedder)
    every = list(dict.fromkeys([t for texts in sets.values() for t in texts]
                               + [p[k] for p in pairs + distinct for k in ("a", "b")]))
    embedder.encode(every[:64])  # warm up
    load_before = os.getloadavg()
    cpu, start = time.process_time(), time.perf_counter()
    emb.encode(every)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    load_after = os.getloadavg()
    if args.fit:
        fit(emb, sets, pairs, distinct)
        return
    if args.cv:
        cross_validate(emb, sets, pairs, distinct)
        return

    t = SEMANTIC_THRESHOLD
    print(f"model {embedder.name}, --semantic-threshold (candidate floor) {t}, margin {MARGIN} over the "
          f"density of {DENSITY_NEIGHBOURS} kept neighbours, then the pair test; topic threshold {TOPIC_THRESHOLD}\n")
    now = measure(emb, sets, pairs, distinct)
    before = measure(emb, sets, pairs, distinct, **V1)
    print("| check | data | this rule | before: pair-logistic-v1 at 0.72 | cosine alone >= 0.8 | target |\n"
          "|---|---|---:|---:|---:|---|")
    nearest = {}
    for name, texts in sets.items():
        print(f"| semantic_duplicate, distinct texts wrongly dropped (whole set) | {name} | "
              f"{pct(len(now[name]), len(texts))} | {pct(len(before[name]), len(texts))} | "
              f"{pct(cosine_only_duplicates(emb.encode(texts), 0.8), len(texts))} | <= 1% |")
        nearest[name] = nearest_earlier(emb.encode(texts))
    pair_cos = np.array([cosine(emb, p["a"], p["b"]) for p in pairs])
    dist_cos = np.array([cosine(emb, p["a"], p["b"]) for p in distinct])
    for label, group, cos, target in (("paraphrases", pairs, pair_cos, ">= 85%"),
                                      ("distinct pairs", distinct, dist_cos, "low")):
        for how in ("in pool", "alone"):
            print(f"| semantic_duplicate, {label} caught, {how} | {len(group)} pairs | "
                  f"{pct(len(now[f'{label} {how}']), len(group))} | {pct(len(before[f'{label} {how}']), len(group))} | "
                  f"{pct(int((cos >= 0.8).sum()), len(group)) if how == 'alone' else '-'} | {target} |")

    if not args.no_topic:
        dialogs = [(d["seed"], d["messages"]) for d in lines("teacher_dialogs.jsonl")]
        dialogs += [(d["seed"], d["messages"]) for d in lines("smollm2_dialogs.jsonl")
                    if d["on_topic"] and d["messages"]]
        own = np.array([topic_cosine(emb, seed, msgs) for seed, msgs in dialogs])
        other = np.array([topic_cosine(emb, dialogs[(i + 7) % len(dialogs)][0], msgs)
                          for i, (_, msgs) in enumerate(dialogs)
                          if dialogs[(i + 7) % len(dialogs)][0] != dialogs[i][0]])
        print(f"| off_topic by meaning, on-topic dialogs wrongly dropped | teacher + SmolLM2 on-topic | "
              f"{pct(int((own < TOPIC_THRESHOLD).sum()), len(own))} | - | - | <= 2% |")
        print(f"| off_topic by meaning, dialogs under another seed caught | the same, seeds rotated | "
              f"{pct(int((other < TOPIC_THRESHOLD).sum()), len(other))} | - | - | - |")
    print(f"\nthroughput: {len(every)} texts, batch {64}: {len(every) / wall:.1f} texts/s wall, "
          f"{len(every) / cpu:.1f} texts per CPU-second ({cpu:.1f} CPU-s in {wall:.1f} s, {os.cpu_count()} CPUs); "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")

    print("\nsweep (whole sets; pairs in the pool / alone): distinct texts wrongly dropped, paraphrases caught, "
          "hard distinct pairs caught\n\n| floor | margin | " + " | ".join(sets)
          + " | paraphrases in pool | alone | distinct in pool | alone |\n|---:|---:|" + "---:|" * (len(sets) + 4))
    for floor, margin in ([(f, MARGIN) for f in (0.6, 0.62, 0.65, 0.68, 0.72, 0.8)]
                          + [(t, m) for m in (-1.0, 0.18, 0.2, 0.22, 0.26, 0.28)]):
        f = measure(emb, sets, pairs, distinct, threshold=floor, margin=margin)
        print(f"| {floor} | {'none' if margin < 0 else margin} | "
              + " | ".join(f"{len(f[n]) / len(sets[n]):.1%}" for n in sets)
              + "".join(f" | {len(f[k]) / len(g):.0%}" for k, g in (("paraphrases in pool", pairs),
                        ("paraphrases alone", pairs), ("distinct pairs in pool", distinct),
                        ("distinct pairs alone", distinct))) + " |")
    print("\nnearest-earlier cosine, max per set: " +
          ", ".join(f"{k} {v.max():.3f}" for k, v in nearest.items()) +
          f"; paraphrase pairs min {pair_cos.min():.3f}")
    if args.figure and not args.no_topic:
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
                 label=f"--semantic-threshold {threshold} (floor; the margin and the pair test decide above)")
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
