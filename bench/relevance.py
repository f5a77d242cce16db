"""The checks by meaning of backward outputs: measure them by cross-validation, train them, and
measure what they keep of real requests.

    python bench/relevance.py            # out-of-fold figures (needs baleen[embed]; seconds once cached)
    python bench/relevance.py --train    # also fit on every train row and write the weights
    python bench/relevance.py --show 5   # also print a few of each mistake

The labelled set is tests/data/relevance/labelled.jsonl: real outputs of SmolLM2-135M-Instruct
as the backward model, before and after a backward LoRA, on held-out MedQuAD answers, each
labelled good or bad by hand (docs/backtranslate.md, "Checks by meaning", has the rules). Every
row is development data (`split: train`); rows with `split: test` are a test set kept apart.

The protocol, fitted on a set of train rows: the `assistant_chatter` logistic regression (the
instruction's embedding; L2 --l2, balanced classes; numpy) on those rows, with half of the real
user requests of tests/data/quality/ as more good examples (MedQuAD questions, AlpacaEval instructions,
Stack Overflow titles: `user_requests(0)`); the `unrelated_instruction` threshold at the
--relevance-quantile of the good rows' cosines less --margin; the classifier's threshold from
out-of-fold probabilities on those rows (their folds by page), so that it keeps --keep-target of
the good rows that every other post-filter keeps. The other post-filters (garbled_term included)
have nothing fitted.

Measured by cross-validation on the train rows: 5 folds by page (`page_fold`); each fold is judged
by the whole protocol fitted on the other four (the classifier's threshold from inner folds over
those four), and the out-of-fold verdicts are pooled. Prints caught (bad outputs rejected by any
post-filter) and kept (good outputs kept), overall, by source (before/after training) and by
kind; then, where the set has test rows, the committed weights on them ("no test split" where it has none); then what the
committed checks keep of the other half of the real user requests. `--train` fits the protocol on
every train row and writes generators/backtranslate/relevance_weights.json; the test rows are
never fitted on. `summary()` gives the figures tests/unit/test_relevance.py compares with the
docs. Embeddings are cached in --cache (default .cache/bench-relevance/embeddings.sqlite).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.backtranslate.postfilter import (AssistantChatter, UnrelatedInstruction,  # noqa: E402
                                                 instruction_chain, judge_instruction)
from generators.backtranslate.relevance import WEIGHTS, chatter_features, load_weights, relevance_model  # noqa: E402
from generators.core.embeddings import EmbedSettings, Embeddings  # noqa: E402
from generators.core.filtering import FilterChain  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "relevance" / "labelled.jsonl"
QUALITY = ROOT / "tests" / "data" / "quality"
CACHE = ROOT / ".cache" / "bench-relevance"
FOLDS = 5


@dataclass(frozen=True)
class Settings:
    """How the classifier is regularised and the thresholds are set from the rows fitted on."""

    l2: float = 3e-3            # the classifier's L2 penalty
    keep_target: float = 0.98   # share of the good rows the other checks keep that the classifier keeps
    lost_share: float = 0.02    # quantile of the good rows' cosines that min_relevance sits under ...
    margin: float = 0.02        # ... by this much


def load_rows(path: Path = LABELLED) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def bench_embeddings(folder: Path | None = CACHE) -> Embeddings:
    """MiniLM through a cache on disk, so a second run embeds nothing."""
    return Embeddings(EmbedSettings(), folder)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = Settings.l2, steps: int = 3000, lr: float = 0.5) -> tuple[np.ndarray, float]:
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


def page_fold(segment: str, folds: int = FOLDS) -> int:
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


def chain_before_embedding(values: dict[str, Any]) -> FilterChain[Any]:
    """Every post-filter the flags turn on but the two that embed (and are fitted here)."""
    chain = instruction_chain(values)
    return FilterChain([f for f in chain.filters if not isinstance(f, (AssistantChatter, UnrelatedInstruction))])


@dataclass
class Prepared:
    """What the fits read of a set of rows: each row's verdict by the post-filters that embed
    nothing (`lexical`: those that run without --meaning-checks; `before`: also garbled_term),
    its instruction's features, its cosine with its page, its fold; and the real requests' features."""

    rows: list[dict[str, Any]]
    lexical: list[Any]
    before: list[Any]
    x: np.ndarray
    cosines: np.ndarray
    bad: np.ndarray
    fold: np.ndarray
    extra: np.ndarray

    @property
    def rejected_before(self) -> np.ndarray:
        return np.array([v.reason is not None for v in self.before])


def prepare(rows: list[dict[str, Any]], embeddings: Embeddings) -> Prepared:
    def judge(chain: FilterChain[Any]) -> list[Any]:
        return [judge_instruction(r["output"], r["segment"], finish=r["finish"], filters=chain) for r in rows]

    lexical = judge(instruction_chain({"meaning_checks": "off"}))
    before = judge(chain_before_embedding({"meaning_checks": "on", "embeddings": embeddings}))
    instructions = embeddings.encode([v.instruction or " " for v in before])
    segments = embeddings.encode([r["segment"] for r in rows])
    extra = chatter_features(embeddings.encode([text for text, _ in user_requests(0)])).astype(np.float64)
    return Prepared(rows, lexical, before, chatter_features(instructions).astype(np.float64),
                    np.einsum("ij,ij->i", instructions, segments), np.array([r["label"] == "bad" for r in rows]),
                    np.array([page_fold(r["segment"]) for r in rows]), extra)


def fit(data: Prepared, idx: np.ndarray, settings: Settings) -> dict[str, Any]:
    """The protocol fitted on the rows `idx` alone: min_relevance, the classifier, and its
    threshold from out-of-fold probabilities over the folds those rows hold."""
    bad = data.bad

    def classifier(part: np.ndarray) -> tuple[np.ndarray, float]:
        # every labelled output (the lexically caught ones are chatter to learn from too), and
        # the real user requests as good examples
        return fit_logistic(np.vstack([data.x[part], data.extra]),
                            np.concatenate([bad[part].astype(np.float64), np.zeros(len(data.extra))]), l2=settings.l2)

    good_cos = data.cosines[idx][~bad[idx]]
    min_relevance = round(float(np.floor((np.quantile(good_cos, settings.lost_share) - settings.margin) * 100) / 100), 2)
    out_of_fold = np.zeros(len(data.rows))
    for k in np.unique(data.fold[idx]):
        coef, intercept = classifier(idx[data.fold[idx] != k])
        held = idx[data.fold[idx] == k]
        out_of_fold[held] = predict(data.x[held], coef, intercept)
    # the lowest threshold that keeps keep_target of the good rows the other checks keep
    passing = idx[~bad[idx] & ~data.rejected_before[idx] & (data.cosines[idx] >= min_relevance)]
    candidates = np.unique(np.round(out_of_fold[idx], 3))
    threshold = next(t for t in candidates if (out_of_fold[passing] < t).mean() >= settings.keep_target)
    coef, intercept = classifier(idx)
    return {"min_relevance": min_relevance, "chatter_threshold": float(threshold),
            "intercept": float(intercept), "coef": coef}


def verdicts_with(data: Prepared, idx: np.ndarray, weights: dict[str, Any]) -> np.ndarray:
    """Rejected by some post-filter, on the rows idx, with these weights."""
    chatter = predict(data.x[idx], np.asarray(weights["coef"], dtype=np.float64), weights["intercept"])
    return (data.rejected_before[idx] | (chatter >= weights["chatter_threshold"])
            | (data.cosines[idx] < weights["min_relevance"]))


def cross_validate(data: Prepared, settings: Settings = Settings()) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold verdicts (rejected by any post-filter), each fold judged by the protocol
    fitted on the other four; and each fold's thresholds."""
    rejected = np.zeros(len(data.rows), dtype=bool)
    fitted = []
    for k in range(FOLDS):
        weights = fit(data, np.flatnonzero(data.fold != k), settings)
        held = np.flatnonzero(data.fold == k)
        rejected[held] = verdicts_with(data, held, weights)
        fitted.append({"min_relevance": weights["min_relevance"], "chatter_threshold": weights["chatter_threshold"]})
    return rejected, fitted


def train(data: Prepared, settings: Settings) -> dict[str, Any]:
    """Fit on every train row (and half of the real user requests), write the weights; return them."""
    weights = fit(data, np.arange(len(data.rows)), settings)
    weights = {"embedder": "minilm", "dim": int(data.x.shape[1]),
               "features": "the instruction's embedding",
               "trained_on": f"{LABELLED.relative_to(ROOT)} split=train ({len(data.rows)} rows) and, as good "
                             f"examples, {len(data.extra)} real requests (bench/relevance.py user_requests(0))",
               "min_relevance": weights["min_relevance"], "chatter_threshold": weights["chatter_threshold"],
               "intercept": weights["intercept"], "coef": [round(float(c), 6) for c in weights["coef"]]}
    WEIGHTS.write_text(json.dumps(weights) + "\n", encoding="utf-8")
    load_weights.cache_clear()
    relevance_model.cache_clear()
    print(f"wrote {WEIGHTS.relative_to(ROOT)}: min_relevance {weights['min_relevance']}, "
          f"chatter_threshold {weights['chatter_threshold']:.3f}")
    return weights


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100.0 * hits / total:.1f}%" if total else "0/0"


def tally(bad: np.ndarray, rejected: np.ndarray) -> dict[str, int]:
    """bad, caught (bad and rejected), good, kept (good and kept)."""
    return {"bad": int(bad.sum()), "caught": int((bad & rejected).sum()),
            "good": int((~bad).sum()), "kept": int((~bad & ~rejected).sum())}


def split_rows(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["split"] == split]


def summary(rows: list[dict[str, Any]], embeddings: Embeddings | None = None) -> dict[str, Any]:
    """What docs/backtranslate.md reports: on the train rows, the post-filters that run without
    --meaning-checks ("lexical") and every post-filter out of fold ("out_of_fold", also "before"
    and "after" by source); on the test rows, every post-filter with the committed weights
    ("test"; None while there are none)."""
    embeddings = embeddings or bench_embeddings()
    data = prepare(split_rows(rows, "train"), embeddings)
    rejected, _ = cross_validate(data)
    source = np.array([r["source"] for r in data.rows])
    lexical = np.array([v.reason is not None for v in data.lexical])
    figures: dict[str, Any] = {"lexical": tally(data.bad, lexical), "out_of_fold": tally(data.bad, rejected)}
    for name in ("before", "after"):
        figures[name] = tally(data.bad[source == name], rejected[source == name])
    test = split_rows(rows, "test")
    if test:
        chain = instruction_chain({"meaning_checks": "on", "embeddings": embeddings})
        verdicts = [judge_instruction(r["output"], r["segment"], finish=r["finish"], filters=chain) for r in test]
        figures["test"] = tally(np.array([r["label"] == "bad" for r in test]),
                                np.array([v.reason is not None for v in verdicts]))
    else:
        figures["test"] = None
    return figures


def print_figures(name: str, rows: list[dict[str, Any]], bad: np.ndarray, rejected: np.ndarray,
                  reasons: list[str | None], instructions: list[str], show: int) -> None:
    """Caught and kept, by source and by kind, the reasons, and a few mistakes."""
    t = tally(bad, rejected)
    print(f"  {name:34s} caught {rate(t['caught'], t['bad']):18s} kept {rate(t['kept'], t['good'])}")
    source = np.array([r["source"] for r in rows])
    for part in ("before", "after"):
        t = tally(bad[source == part], rejected[source == part])
        print(f"    {part + ' training':32s} caught {rate(t['caught'], t['bad']):18s} kept {rate(t['kept'], t['good'])}")
    kinds = Counter(r["kind"] for r in rows if r["label"] == "bad")
    caught = Counter(r["kind"] for r, no in zip(rows, rejected) if r["label"] == "bad" and no)
    print("    caught by kind: " + ", ".join(f"{k} {caught[k]}/{n}" for k, n in kinds.most_common()))
    print("    reasons: " + ", ".join(f"{k} {n}" for k, n in Counter(r or "kept" for r in reasons).most_common()))
    for title, pick in (("missed", bad & ~rejected), ("lost", ~bad & rejected)):
        for i in np.flatnonzero(pick)[:show]:
            print(f"      {title} [{rows[i]['kind'] or reasons[i]}] {instructions[i][:110]!r}")


def measure(rows: list[dict[str, Any]], embeddings: Embeddings, settings: Settings, show: int,
            write: bool) -> None:
    data = prepare(split_rows(rows, "train"), embeddings)
    print(f"== train split, {len(data.rows)} outputs ({int(data.bad.sum())} bad, {int((~data.bad).sum())} good), "
          f"out of fold ({FOLDS} folds by page, every threshold fitted inside the fold)")
    lexical = [v.reason for v in data.lexical]
    instructions = [v.instruction for v in data.before]
    print_figures("post-filters without meaning checks", data.rows, data.bad, np.array([r is not None for r in lexical]),
                  lexical, instructions, 0)
    rejected, fitted = cross_validate(data, settings)
    # the reason of an out-of-fold rejection: the first post-filter's, else which fitted check it was
    reasons = [v.reason or ("by meaning" if no else None) for v, no in zip(data.before, rejected)]
    print_figures("every post-filter, out of fold", data.rows, data.bad, rejected, reasons, instructions, show)
    print("    thresholds fitted per fold: " + ", ".join(
        f"({f['min_relevance']}, {f['chatter_threshold']:.3f})" for f in fitted) + " (min_relevance, chatter)")
    if write:
        train(data, settings)
    test = split_rows(rows, "test")
    if not test:
        print("== no test split")
        return
    chain = instruction_chain({"meaning_checks": "on", "embeddings": embeddings})
    verdicts = [judge_instruction(r["output"], r["segment"], finish=r["finish"], filters=chain) for r in test]
    bad = np.array([r["label"] == "bad" for r in test])
    print(f"== test split, {len(test)} outputs, the committed weights")
    print_figures("every post-filter", test, bad, np.array([v.reason is not None for v in verdicts]),
                  [v.reason for v in verdicts], [v.instruction for v in verdicts], show)


def measure_requests(embeddings: Embeddings) -> None:
    """What the committed checks keep of the real user requests held out of training
    (user_requests(1)): MedQuAD questions judged on their own pages by every post-filter,
    AlpacaEval instructions and Stack Overflow titles by the classifier alone (they have no page)."""
    model = relevance_model(embeddings)
    held = user_requests(1)
    chain = instruction_chain({"meaning_checks": "on", "embeddings": embeddings})
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
    parser.add_argument("--train", action="store_true", help="fit on every train row and write the weights")
    parser.add_argument("--l2", type=float, default=Settings.l2, help="the classifier's L2 penalty (default 0.003)")
    parser.add_argument("--keep-target", type=float, default=Settings.keep_target,
                        help="share of the good rows the classifier must keep (default 0.98)")
    parser.add_argument("--relevance-quantile", type=float, default=Settings.lost_share,
                        help="share of the good rows the relevance threshold may sit above (default 0.02)")
    parser.add_argument("--margin", type=float, default=Settings.margin,
                        help="cosine margin under that quantile (default 0.02)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="folder of the embedding cache")
    parser.add_argument("--show", type=int, default=0, help="print this many mistakes of each kind")
    args = parser.parse_args()
    embeddings = bench_embeddings(args.cache)
    settings = Settings(args.l2, args.keep_target, args.relevance_quantile, args.margin)
    measure(load_rows(), embeddings, settings, args.show, args.train)
    measure_requests(embeddings)


if __name__ == "__main__":
    main()
