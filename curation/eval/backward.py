"""`gen eval backward`: how well does the backward model M_yx recover the instruction of a
held-out answer? It writes one instruction per answer with exactly what `gen backtranslate`
uses (prompts/backward.j2, T 0.7 / top-p 0.9, the per-item seed, `judge_instruction` for
cleaning, salvage and the post-filters), and compares it with the real instruction: ROUGE-L F1
over words, exact match, and the share that the post-filters would keep."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from generators.backtranslate.backward import backward_generation, backward_request, write_instruction
from generators.backtranslate.postfilter import instruction_chain
from generators.core.dry_run import DryRun, Planned
from generators.core.options import RunOptions
from generators.core.records import derive_seed, stable_id
from generators.core.runner import Item, Kept, Rejected
from generators.core.stage import Generation

from curation.eval.base import EvalStage
from curation.eval.metrics import normalized, rouge_l
from curation.eval.pairs import Pair, load_pairs


class BackwardEvalStage(EvalStage):
    name = "eval-backward"
    results_name = "predictions.jsonl"

    def __init__(self, opts: RunOptions, out: Path, pairs: Path, *, adapter: str | None = None,
                 postfilter: dict[str, Any] | None = None) -> None:
        super().__init__(opts, out, adapter=adapter)
        self.pairs_path = Path(pairs)
        self.postfilter = instruction_chain(postfilter)  # the post-filter flags, as gen backtranslate takes them

    def load_inputs(self) -> None:
        self.pairs = load_pairs(self.pairs_path, limit=self.opts.limit)

    @cached_property
    def generation(self) -> Generation:
        """Exactly what `gen backtranslate` writes instructions with, derived once."""
        return backward_generation(self)

    def settings(self) -> dict[str, Any]:
        return {**self.generation.identity, "postfilter": self.postfilter.settings()}

    def input_summary(self) -> dict[str, Any]:
        return {"pairs": str(self.pairs_path), "count": len(self.pairs), "limit": self.opts.limit}

    def eval_items(self) -> list[Item]:
        return [Item(id=stable_id("eval-backward", pair.id, pair.answer, self.generation.identity), source="eval",
                     input={"id": pair.id}, extra={"pair": pair}) for pair in self.pairs]

    def dry_run(self) -> DryRun:
        """One backward request per held-out answer, as `gen backtranslate` sends it."""
        assert self.engine is not None
        engine, sampling = self.engine, self.generation.sampling
        return DryRun((Planned(item.id, engine, backward_request(item.extra["pair"].answer, sampling=sampling,
                                                                 seed=derive_seed(self.opts.seed, item.id)))
                       for item in self.work_items), unit="pair", how="one backward request per pair")

    async def work(self, item: Item) -> Kept | Rejected:
        assert self.engine is not None
        pair: Pair = item.extra["pair"]
        seed = derive_seed(self.opts.seed, item.id)
        result, verdict = await write_instruction(self.engine, pair.answer, sampling=self.generation.sampling,
                                                  seed=seed, filters=self.postfilter)
        return Kept([{"id": pair.id, "reference": pair.instruction, "prediction": verdict.instruction,
                      "raw": result.text, "finish": result.finish, "verdict": verdict.reason or "kept",
                      "salvaged": verdict.salvaged, "meta": {"seed": seed}}])

    def result_row(self, line: dict[str, Any], rejected: str | None) -> dict[str, Any]:
        row = {key: line.get(key) for key in ("id", "reference", "prediction", "verdict", "salvaged", "raw", "finish")}
        row["rouge_l"] = round(rouge_l(row["prediction"] or "", row["reference"] or ""), 4)
        return row

    def metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(rows)
        passed = [r for r in rows if r["verdict"] == "kept"]
        verdicts: dict[str, int] = {}
        for r in rows:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        scores = [rouge_l(r["prediction"] or "", r["reference"] or "") for r in rows]
        passed_scores = [rouge_l(r["prediction"] or "", r["reference"] or "") for r in passed]
        exact = sum(1 for r in rows if normalized(r["prediction"] or "") == normalized(r["reference"] or ""))
        return {"n": n,
                "rouge_l": round(sum(scores) / n, 4) if n else None,
                "rouge_l_passed": round(sum(passed_scores) / len(passed_scores), 4) if passed_scores else None,
                "passed_share": round(len(passed) / n, 4) if n else None,
                "exact_match": round(exact / n, 4) if n else None,
                "salvaged": sum(1 for r in rows if r["salvaged"]),
                "verdicts": dict(sorted(verdicts.items()))}
