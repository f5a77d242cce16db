"""The checks by meaning of backward outputs: train them, and measure what they catch and keep.

    python bench/relevance.py            # measure on the test split (needs baleen[embed])
    python bench/relevance.py --train    # fit on the train split, write the weights, then measure
    python bench/relevance.py --show 5   # also print a few of each mistake

The labelled set is tests/data/relevance/labelled.jsonl: real outputs of SmolLM2-135M-Instruct
as the backward model, before and after a backward LoRA, on held-out MedQuAD answers, each
labelled good or bad by hand (docs/backtranslate.md, "Checks by meaning", has the rules).
`--train` fits the `assistant_chatter` logistic regression on the train split (the instruction's
embedding; L2, balanced classes; numpy), sets the `unrelated_instruction` threshold to the
--relevance-quantile of the good train instructions' cosines less --margin, and the classifier's
threshold from out-of-fold probabilities on train, so that it keeps --keep-target of the good
train outputs the other checks keep. The test split is never seen.

Prints, for the test split (and train, for reference): the share of bad outputs caught and of
good ones kept, by the lexical post-filters alone and with the checks by meaning, and the catch
per kind of bad output.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.backtranslate.postfilter import instruction_chain, judge_instruction  # noqa: E402
from generators.backtranslate.relevance import WEIGHTS, chatter_features  # noqa: E402
from generators.core.embeddings import load_embedder  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "relevance" / "labelled.jsonl"


def load_rows(path: Path = LABELLED) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def lexical_verdicts(rows: list[dict[str, Any]]) -> list[Any]:
    chain = instruction_chain({"meaning_checks": "off"})
    return [judge_instruction(r["output"], r["segment"], finish=r["finish"], filters=chain) for r in rows]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 3000, lr: float = 0.5) -> tuple[np.ndarray, float]:
    """Logistic regression by gradient descent, classes weighted to count alike."""
    weight = np.where(y == 1, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    coef, intercept = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))
        g = weight * (p - y)
        coef -= lr * (x.T @ g / len(y) + l2 * coef)
        intercept -= lr * float(g.mean())
    return coef, intercept


def predict(x: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))


def embed_rows(rows: list[dict[str, Any]], verdicts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    embedder = load_embedder("minilm")
    instructions = embedder.encode([v.instruction or " " for v in verdicts])
    segments = embedder.encode([r["segment"] for r in rows])
    return instructions, np.einsum("ij,ij->i", instructions, segments)


def train(rows: list[dict[str, Any]], keep_target: float, margin: float, lost_share: float,
          folds: int = 5) -> dict[str, Any]:
    """Fit on the train split and write the weights; return them."""
    train_rows = [r for r in rows if r["split"] == "train"]
    verdicts = lexical_verdicts(train_rows)
    instructions, cosines = embed_rows(train_rows, verdicts)
    x = chatter_features(instructions).astype(np.float64)
    bad = np.array([r["label"] == "bad" for r in train_rows])
    lexical = np.array([v.reason is not None for v in verdicts])
    # the classifier learns what the lexical filters let through (what it sees in a run)
    seen = ~lexical | ~bad
    y = bad.astype(np.float64)
    good_cos = cosines[~bad]
    min_relevance = round(float(np.floor((np.quantile(good_cos, lost_share) - margin) * 100) / 100), 2)
    order = np.arange(len(train_rows)) % folds
    out_of_fold = np.zeros(len(train_rows))
    for fold in range(folds):
        test = order == fold
        coef, intercept = fit_logistic(x[seen & ~test], y[seen & ~test])
        out_of_fold[test] = predict(x[test], coef, intercept)
    # the lowest threshold that keeps keep_target of the good train outputs the other checks keep
    passing = ~bad & ~lexical & (cosines >= min_relevance)
    candidates = np.unique(np.round(out_of_fold, 3))
    threshold = next(t for t in candidates if (out_of_fold[passing] < t).mean() >= keep_target)
    coef, intercept = fit_logistic(x[seen], y[seen])
    weights = {"embedder": "minilm", "dim": int(instructions.shape[1]),
               "features": "the instruction's embedding",
               "trained_on": f"{LABELLED.relative_to(ROOT)} split=train ({len(train_rows)} rows)",
               "min_relevance": min_relevance, "chatter_threshold": float(threshold),
               "intercept": float(intercept), "coef": [round(float(c), 6) for c in coef]}
    WEIGHTS.write_text(json.dumps(weights) + "\n", encoding="utf-8")
    print(f"wrote {WEIGHTS.relative_to(ROOT)}: min_relevance {min_relevance}, chatter_threshold {threshold:.3f}")
    return weights


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100.0 * hits / total:.1f}%" if total else "0/0"


def measure(rows: list[dict[str, Any]], split: str, show: int) -> None:
    part = [r for r in rows if split == "all" or r["split"] == split]
    lexical = lexical_verdicts(part)
    full_chain = instruction_chain({"meaning_checks": "on"})
    full = [judge_instruction(r["output"], r["segment"], finish=r["finish"], filters=full_chain) for r in part]
    bad = [r["label"] == "bad" for r in part]
    n_bad, n_good = sum(bad), len(part) - sum(bad)
    print(f"== {split} split: {len(part)} outputs, {n_bad} bad, {n_good} good")
    for name, verdicts in (("lexical post-filters", lexical), ("with the checks by meaning", full)):
        caught = sum(b and v.reason is not None for b, v in zip(bad, verdicts))
        kept = sum(not b and v.reason is None for b, v in zip(bad, verdicts))
        print(f"  {name:28s} caught {rate(caught, n_bad):18s} kept {rate(kept, n_good)}")
    for source in ("before", "after"):
        idx = [i for i, r in enumerate(part) if r["source"] == source]
        caught = sum(bad[i] and full[i].reason is not None for i in idx)
        kept = sum(not bad[i] and full[i].reason is None for i in idx)
        print(f"  {source + ' training':28s} caught {rate(caught, sum(bad[i] for i in idx)):18s} "
              f"kept {rate(kept, sum(not bad[i] for i in idx))}")
    kinds = Counter(r["kind"] for r in part if r["label"] == "bad")
    caught_kinds = Counter(r["kind"] for r, v in zip(part, full) if r["label"] == "bad" and v.reason is not None)
    print("  caught by kind: " + ", ".join(f"{k} {caught_kinds[k]}/{n}" for k, n in kinds.most_common()))
    print("  reasons: " + ", ".join(f"{k} {n}" for k, n in Counter(v.reason or "kept" for v in full).most_common()))
    if show:
        missed = [(r, v) for r, v in zip(part, full) if r["label"] == "bad" and v.reason is None][:show]
        lost = [(r, v) for r, v in zip(part, full) if r["label"] == "good" and v.reason is not None][:show]
        for title, items in (("missed", missed), ("lost", lost)):
            for r, v in items:
                print(f"    {title} [{r.get('kind') or v.reason}] {v.instruction[:110]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="store_true", help="fit on the train split and write the weights first")
    parser.add_argument("--keep-target", type=float, default=0.97,
                        help="share of the good train outputs the classifier must keep (default 0.97)")
    parser.add_argument("--relevance-quantile", type=float, default=0.02,
                        help="share of the good train outputs the relevance threshold may sit above (default 0.02)")
    parser.add_argument("--margin", type=float, default=0.02, help="cosine margin under that quantile (default 0.02)")
    parser.add_argument("--show", type=int, default=0, help="print this many mistakes of each kind")
    args = parser.parse_args()
    rows = load_rows()
    if args.train:
        train(rows, args.keep_target, args.margin, args.relevance_quantile)
    for split in ("test", "train"):
        measure(rows, split, args.show if split == "test" else 0)


if __name__ == "__main__":
    main()
