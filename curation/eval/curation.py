"""`gen eval curation`: can the rater tell a true pair from a bad one? Held-out pairs (label 1)
and negatives made from them (label 0, see candidates.py) are rated by the very path `gen curate`
uses (rubric, strict "Score: N", resampling, expected score from logprobs, --score-mode,
--rate). Metrics: ROC AUC (of the expected score where every rating has one, else of the
score), AUC per kind of negative, precision and recall of "score >= t" for t = 1..5 (as in
Humpback's Table 7), and the share of ratings that stayed unparsed."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from generators.core.adapters import adapter_identity
from generators.core.dry_run import DryRun
from generators.core.errors import UsageError
from generators.core.options import RunOptions, backend_kind
from generators.core.records import instruction, make_record, stable_id
from generators.core.runner import Item, Kept, Rejected, Worker
from generators.core.stage import Generation

from curation.rubric import check_template
from curation.scoring import rater_generation, rating_plan, rating_worker
from curation.settings import CurateSettings
from curation.eval.base import EvalStage
from curation.eval.candidates import KINDS, make_candidates
from curation.eval.metrics import precision_recall, roc_auc
from curation.eval.pairs import load_pairs


class CurationEvalStage(EvalStage):
    name = "eval-curation"
    results_name = "scores.jsonl"

    def __init__(self, opts: RunOptions, out: Path, pairs: Path, rater: CurateSettings,
                 kinds: tuple[str, ...] = KINDS) -> None:
        super().__init__(opts, out, adapter=rater.adapter)
        self.pairs_path = Path(pairs)
        self.rater_config = rater
        self.kinds = kinds
        self.shared: dict[str, asyncio.Future] = {}

    def check(self) -> None:
        caps = backend_kind(self.opts).capabilities
        if self.rater_config.score_mode == "direct" and not (caps.prefill and caps.logprobs):
            raise UsageError("--score-mode direct continues a prefilled answer and reads token logprobs, which "
                             "only the local backends do; use --backend hf or vllm, or --score-mode reasoned")
        check_template(self.rater_config.template)

    def load_inputs(self) -> None:
        self.pairs = load_pairs(self.pairs_path, limit=self.opts.limit)
        self.candidates = make_candidates(self.pairs, self.kinds, self.opts.seed)

    @cached_property
    def rater(self) -> Generation:
        """The rater `gen curate` would use, derived once; its identity names the adapter and --rate."""
        assert self.engine is not None
        rater = rater_generation(self.rater_config, self.opts, self.engine.backend)
        return replace(rater, identity={**rater.identity, "rate": self.rater_config.rate,
                                        "adapter": adapter_identity(self.adapter) if self.adapter else None})

    @cached_property
    def worker(self) -> Worker:
        assert self.engine is not None
        return rating_worker(self.engine, self.rater_config, self.rater)

    def settings(self) -> dict[str, Any]:
        return {"rater": self.rater.identity, "negatives": list(self.kinds)}

    def input_summary(self) -> dict[str, Any]:
        return {"pairs": str(self.pairs_path), "count": len(self.pairs), "limit": self.opts.limit,
                "candidates": len(self.candidates)}

    def eval_items(self) -> list[Item]:
        items = []
        for position, c in enumerate(self.candidates):
            item_id = stable_id("eval-curation", c.kind, c.instruction, c.answer, self.rater.identity)
            record = make_record(id=item_id, source="eval", meta={"pair": c.pair, "kind": c.kind, "label": c.label},
                                 messages=[{"role": "user", "content": c.instruction},
                                           {"role": "assistant", "content": c.answer}])
            items.append(Item(id=item_id, source="eval", input={"pair": c.pair, "kind": c.kind},
                              extra={"record": record, "position": position, "candidate": c}))
        return items

    def dry_run(self) -> DryRun:
        """The rating request of every candidate, by `gen curate`'s path; with --rate instruction,
        candidates the rater sees identically share one (as `work` does)."""
        assert self.engine is not None
        seen: set[str] = set()

        def rated(item: Item) -> bool:
            if self.rater_config.rate != "instruction":
                return True
            key = instruction(item.extra["record"])
            fresh = key not in seen
            seen.add(key)
            return fresh

        plan = rating_plan(self.engine, self.rater_config, self.rater,
                           (item for item in self.work_items if rated(item)))
        plan.unit = "candidate"
        return plan

    async def work(self, item: Item) -> Kept | Rejected:
        """Rate one candidate; candidates the rater sees identically (with --rate instruction, every
        negative that keeps the instruction) share one rating: one request, and the same score by
        construction, whichever batch of a local backend each would have landed in."""
        record = item.extra["record"]
        key = instruction(record) if self.rater_config.rate == "instruction" else None
        if key is None:
            return await self.worker(item)
        first = self.shared.get(key)
        if first is None:
            first = self.shared[key] = asyncio.ensure_future(self.worker(item))
            return await first
        outcome = await asyncio.shield(first)
        rated = outcome.records[0] if isinstance(outcome, Kept) else outcome.record
        for field in ("score", "score_expected", "reason"):
            record[field] = rated.get(field)
        record["meta"]["curation"] = {**rated["meta"]["curation"], "shared_with": rated["id"],
                                      "position": item.extra["position"]}
        return Kept([record]) if isinstance(outcome, Kept) else Rejected(record, outcome.reason)

    def result_row(self, line: dict[str, Any], rejected: str | None) -> dict[str, Any]:
        meta = line.get("meta") or {}
        curation = meta.get("curation") or {}
        messages = line.get("messages") or []
        text = {m.get("role"): m.get("content") for m in reversed(messages) if isinstance(m, dict)}
        return {"id": line.get("id"), "pair": meta.get("pair"), "kind": meta.get("kind"), "label": meta.get("label"),
                "score": line.get("score"), "score_expected": line.get("score_expected"),
                "instruction": text.get("user"), "answer": text.get("assistant"),
                "problems": curation.get("problems") or [], "raw": curation.get("raw")}

    def metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return curation_metrics(rows)


def _auc(rows: list[dict[str, Any]], key: str) -> float | None:
    parsed = [r for r in rows if r["score"] is not None]
    value = roc_auc([r["label"] for r in parsed], [float(r[key]) for r in parsed])
    return round(value, 4) if value is not None else None


def curation_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of scores.jsonl rows (id, kind, label, score, score_expected)."""
    parsed = [r for r in rows if r["score"] is not None]
    expected = bool(parsed) and all(r["score_expected"] is not None for r in parsed)
    key = "score_expected" if expected else "score"
    positives = [r for r in rows if r["label"] == 1]
    by_kind = {}
    for kind in sorted({r["kind"] for r in rows if r["label"] == 0}):
        negatives = [r for r in rows if r["kind"] == kind]
        pairs = {r["pair"] for r in negatives}  # the true pairs these negatives were made from
        by_kind[kind] = _auc([r for r in positives if r["pair"] in pairs] + negatives, key)
    return {"n": len(rows), "positives": len(positives), "negatives": len(rows) - len(positives),
            "auc": _auc(rows, key), "auc_of": key, "auc_score": _auc(rows, "score"), "auc_by_kind": by_kind,
            "unparsed_share": round(1 - len(parsed) / len(rows), 4) if rows else None,
            "mean_score": {label: (round(sum(r["score"] for r in group) / len(group), 4) if group else None)
                           for label, group in (("true", [r for r in parsed if r["label"] == 1]),
                                                ("negative", [r for r in parsed if r["label"] == 0]))},
            "threshold": precision_recall([r["label"] for r in rows], [r["score"] for r in rows])}
