"""The checks by meaning of backward outputs: train them, and measure what they catch and keep.

    python bench/relevance.py            # measure on the test split (needs baleen[embed])
    python bench/relevance.py --train    # fit on the train split, write the weights, then measure
    python bench/relevance.py --show 5   # also print a few of each mistake

The labelled set is tests/data/relevance/labelled.jsonl: real outputs of SmolLM2-135M-Instruct
as the backward model, before and after a backward LoRA, on held-out MedQuAD answers, each
labelled good or bad by hand (docs/backtranslate.md, "Checks by meaning", has the rules).
`--train` fits the `assistant_chatter` logistic regression (the instruction's embedding; L2,
balanced classes; numpy) on every output of the train split, with half of the real user requests
of tests/data/quality/ as more good examples (MedQuAD questions, AlpacaEval instructions, Stack
Overflow titles: `user_requests(0)`); sets the `unrelated_instruction` threshold to the
--relevance-quantile of the good train instructions' cosines less --margin; and sets the
classifier's threshold from out-of-fold probabilities on train (5 folds by page), so that it
keeps --keep-target of the good train outputs the other checks keep. The test split is never seen.

Prints, for the test split (and train, for reference): the share of bad outputs caught and of
good ones kept, by the lexical post-filters alone and with the checks by meaning, and the catch
per kind of bad output; then what the checks keep of the other half of the real user requests.
`summary()` gives the test split's figures (tests/unit/test_relevance.py compares them with the
docs).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.backtranslate.postfilter import instruction_chain, judge_instruction  # noqa: E402
from generators.backtranslate.relevance import WEIGHTS, chatter_features, load_weights, relevance_model  # noqa: E402
from generators.core.embeddings import load_embedder  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "relevance" / "labelled.jsonl"
QUALITY = ROOT / "tests" / "data" / "quality"


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


def page_fold(segment: str, folds: int) -> int:
    """The cross-validation fold of a page: by its hash, so a page's outputs share one fold."""
    return int(hashlib.sha256(segment.encode("utf-8")).hexdigest()[:8], 16) % folds


def user_requests(half: int) -> list[tuple[str, str | None]]:
    """Real requests no one here wrote, as (instruction, its page or None): MedQuAD questions with
    their pages (past the first 60, which tests/unit/test_relevance.py keeps apart), AlpacaEval
    instructions and Stack Overflow titles. Half 0 (even rows) trains the classifier as good
    examples; half 1 (odd rows) is held out to measure what it keeps outside the medical pages."""
    pairs = load_rows(QUALITY / "medquad_pairs.jsonl")[60:]
    alpaca = load_rows(QUALITY / "alpaca_eval_instructions.jsonl")
    titles = load_rows(QUALITY / "stackoverflow_titles.jsonl")
    return ([(r["question"], r["text"]) for r in pairs[half::2]] + [(r["instruction"], None) for r in alpaca[half::2]]
            + [(r["title"], None) for r in titles[half::2]])


def train(rows: list[dict[str, Any]], keep_target: float, margin: float, lost_share: float,
          folds: int = 5) -> dict[str, Any]:
    """Fit on the train split (and half of the real user requests) and write the weights; return them."""
    train_rows = [r for r in rows if r["split"] == "train"]
    verdicts = lexical_verdicts(train_rows)
    embedder = load_embedder("minilm")
    instructions = embedder.encode([v.instruction or " " for v in verdicts])
    cosines = np.einsum("ij,ij->i", instructions, embedder.encode([r["segment"] for r in train_rows]))
    x = chatter_features(instructions).astype(np.float64)
    extra = chatter_features(embedder.encode([text for text, _ in user_requests(0)])).astype(np.float64)
    bad = np.array([r["label"] == "bad" for r in train_rows])
    lexical = np.array([v.reason is not None for v in verdicts])
    y = bad.astype(np.float64)

    def fit(mask: np.ndarray) -> tuple[np.ndarray, float]:
        # every labelled train output (the lexically caught ones are chatter to learn from too),
        # and the real user requests as good examples
        return fit_logistic(np.vstack([x[mask], extra]), np.concatenate([y[mask], np.zeros(len(extra))]))

    good_cos = cosines[~bad]
    min_relevance = round(float(np.floor((np.quantile(good_cos, lost_share) - margin) * 100) / 100), 2)
    fold = np.array([page_fold(r["segment"], folds) for r in train_rows])
    out_of_fold = np.zeros(len(train_rows))
    for k in range(folds):
        coef, intercept = fit(fold != k)
        out_of_fold[fold == k] = predict(x[fold == k], coef, intercept)
    # the lowest threshold that keeps keep_target of the good train outputs the other checks keep
    passing = ~bad & ~lexical & (cosines >= min_relevance)
    candidates = np.unique(np.round(out_of_fold, 3))
    threshold = next(t for t in candidates if (out_of_fold[passing] < t).mean() >= keep_target)
    rejected = lexical | (out_of_fold >= threshold) | (cosines < min_relevance)
    caught, kept = int((rejected & bad).sum()), int((~rejected & ~bad).sum())
    print(f"train split, out of fold ({folds} folds by page): caught {rate(caught, int(bad.sum()))}, "
          f"kept {rate(kept, int((~bad).sum()))}")
    coef, intercept = fit(np.ones(len(train_rows), dtype=bool))
    weights = {"embedder": "minilm", "dim": int(instructions.shape[1]),
               "features": "the instruction's embedding",
               "trained_on": f"{LABELLED.relative_to(ROOT)} split=train ({len(train_rows)} rows) and, as good "
                             f"examples, {len(extra)} real requests (bench/relevance.py user_requests(0))",
               "min_relevance": min_relevance, "chatter_threshold": float(threshold),
               "intercept": float(intercept), "coef": [round(float(c), 6) for c in coef]}
    WEIGHTS.write_text(json.dumps(weights) + "\n", encoding="utf-8")
    load_weights.cache_clear()
    print(f"wrote {WEIGHTS.relative_to(ROOT)}: min_relevance {min_relevance}, chatter_threshold {threshold:.3f}")
    return weights


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100.0 * hits / total:.1f}%" if total else "0/0"


def judged(part: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(the lexical post-filters' verdicts, every post-filter's verdicts) on these rows."""
    full_chain = instruction_chain({"meaning_checks": "on"})
    return lexical_verdicts(part), [judge_instruction(r["output"], r["segment"], finish=r["finish"],
                                                      filters=full_chain) for r in part]


def tally(part: list[dict[str, Any]], verdicts: list[Any]) -> dict[str, int]:
    """bad, caught (bad and rejected), good, kept (good and kept)."""
    bad = [r["label"] == "bad" for r in part]
    return {"bad": sum(bad), "caught": sum(b and v.reason is not None for b, v in zip(bad, verdicts)),
            "good": len(part) - sum(bad), "kept": sum(not b and v.reason is None for b, v in zip(bad, verdicts))}


def summary(rows: list[dict[str, Any]], split: str = "test") -> dict[str, dict[str, int]]:
    """The figures of one split: {"lexical": tally, "meaning": tally} (what docs/backtranslate.md reports)."""
    part = [r for r in rows if split == "all" or r["split"] == split]
    lexical, full = judged(part)
    return {"lexical": tally(part, lexical), "meaning": tally(part, full)}


def measure(rows: list[dict[str, Any]], split: str, show: int) -> None:
    part = [r for r in rows if split == "all" or r["split"] == split]
    lexical, full = judged(part)
    bad = [r["label"] == "bad" for r in part]
    print(f"== {split} split: {len(part)} outputs, {sum(bad)} bad, {len(part) - sum(bad)} good")
    for name, verdicts in (("lexical post-filters", lexical), ("with the checks by meaning", full)):
        t = tally(part, verdicts)
        print(f"  {name:28s} caught {rate(t['caught'], t['bad']):18s} kept {rate(t['kept'], t['good'])}")
    for source in ("before", "after"):
        idx = [i for i, r in enumerate(part) if r["source"] == source]
        t = tally([part[i] for i in idx], [full[i] for i in idx])
        print(f"  {source + ' training':28s} caught {rate(t['caught'], t['bad']):18s} "
              f"kept {rate(t['kept'], t['good'])}")
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


def measure_requests() -> None:
    """What the checks keep of the real user requests held out of training (user_requests(1)):
    MedQuAD questions judged on their own pages by every post-filter, AlpacaEval instructions and
    Stack Overflow titles by the classifier alone (they have no page)."""
    model = relevance_model()
    held = user_requests(1)
    chain = instruction_chain({"meaning_checks": "on"})
    with_page = [judge_instruction(text, page, filters=chain).reason is None for text, page in held if page]
    alone = [model.chatter(text) < model.chatter_threshold for text, page in held if not page]
    alpaca = len(load_rows(QUALITY / "alpaca_eval_instructions.jsonl")[1::2])
    print("== real requests held out of training: kept")
    print(f"  MedQuAD questions on their own pages (every post-filter)  {rate(sum(with_page), len(with_page))}")
    print(f"  AlpacaEval instructions (assistant_chatter alone)         {rate(sum(alone[:alpaca]), alpaca)}")
    print(f"  Stack Overflow titles (assistant_chatter alone)           "
          f"{rate(sum(alone[alpaca:]), len(alone) - alpaca)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="store_true", help="fit on the train split and write the weights first")
    parser.add_argument("--keep-target", type=float, default=0.98,
                        help="share of the good train outputs the classifier must keep (default 0.98)")
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
    measure_requests()


if __name__ == "__main__":
    main()
