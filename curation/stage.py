"""The curate stage: prefilter, rate every surviving record, then select A_k.

Folder (--out DIR):
  prefiltered.jsonl   records dropped before rating, with "reject" (rewritten whole when the
                      input or the filter settings change)
  prefilter.json      the prefilter's decisions (items to rate), keyed by input size/mtime and
                      settings, so a rerun on the same input skips the pass
  scoring/            the rating phase, a RunStore: data.jsonl (rated records with score),
                      rejected.jsonl (unparsed_score), errors.jsonl (requests that failed),
                      manifest.json. Append-only, one line per item: this is what resumes.
  data.jsonl          A_k: kept records, in input order
  rejected.jsonl      everything else with "reject": prefilter reasons, unparsed_score,
                      below_threshold, not_top
  errors.jsonl        records whose rating failed (rerun with --retry-errors)
  manifest.json       settings, counts by reason, score histogram, usage and cost
Selection needs every score, so the top-level files are derived: each run recomputes the
(deterministic) prefilter, rates only items missing from scoring/, and rewrites the derived
files atomically (temp file + rename), manifest last. Because the selection flags are not part
of the scoring fingerprint, rerunning with another --threshold/--top reselects without a single
request.

The phases live in their own modules: prefilter_pass (1), scoring (2), output (3); this one is
the stage the skeleton (generators.core.stage) runs.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from generators.core.dry_run import DryRun
from generators.core.errors import UsageError
from generators.core.manifest import counts
from generators.core.options import RunOptions, backend_kind
from generators.core.records import read_records
from generators.core.runner import Item, Kept, Rejected, Worker
from generators.core.stage import Generation, Stage, run_stage
from generators.core.store import RunStore

from curation.files import resolve_input
from curation.output import write_selection
from curation.prefilter_pass import build_prefilter, passed_items, prefilter_pass
from curation.rubric import check_template
from curation.scoring import SCORING_STAGE, pending_items, rater_generation, rating_plan, rating_worker
from curation.settings import CurateSettings


class CurateStage(Stage):
    name = "curate"
    store_name = SCORING_STAGE
    sub_store = "scoring"
    usage_at = ("meta", "curation", "usage")

    def __init__(self, settings: CurateSettings, opts: RunOptions) -> None:
        super().__init__(opts, settings.out, adapter=settings.adapter)
        self.config = settings
        self.passed: dict[str, int] = {}
        self.input_total = 0

    def check(self) -> None:
        caps = backend_kind(self.opts).capabilities
        if self.config.score_mode == "direct" and not (caps.prefill and caps.logprobs):
            raise UsageError("--score-mode direct continues a prefilled answer and reads token logprobs, which "
                             "only the local backends do; use --backend hf or vllm, or --score-mode reasoned")
        if self.config.retries_unparsed < 0:
            raise UsageError("--retries-unparsed must be 0 or more")
        check_template(self.config.template)

    def load_inputs(self) -> None:
        self.source = resolve_input(Path(self.config.input))
        if not self.out.exists():  # a bad input must leave no folder behind: read it all first
            for _ in read_records(self.source):
                pass
        self.prefilter = build_prefilter(self.config)

    @cached_property
    def rater(self) -> Generation:
        """The rater, derived once from the flags and the engine: its sampling, template id, and
        the settings every rating depends on (the scoring store's fingerprint)."""
        assert self.engine is not None
        return rater_generation(self.config, self.opts, self.engine.backend)

    @cached_property
    def worker(self) -> Worker:
        assert self.engine is not None
        return rating_worker(self.engine, self.config, self.rater)

    def settings(self) -> dict[str, Any]:
        return self.rater.identity

    def prime(self, store: RunStore) -> None:
        """The prefilter decides every input record (or its decisions are read back from the folder)."""
        self.passed, self.input_total = prefilter_pass(self.config, self.prefilter, self.source, self.opts.limit)

    def items(self) -> Iterable[Item]:
        return pending_items(self.source, self.opts.limit, self.passed)

    def total(self, items: Iterable[Item], done: set[str]) -> int | None:
        return sum(1 for item in self.passed if item not in done)

    async def work(self, item: Item) -> Kept | Rejected:
        return await self.worker(item)

    def dry_run(self) -> DryRun:
        """The rating request of every record the prefilter passes (decided in memory: no
        prefiltered.jsonl, no prefilter.json)."""
        assert self.engine is not None
        passed = passed_items(self.prefilter, self.source, self.opts.limit)
        plan = rating_plan(self.engine, self.config, self.rater, pending_items(self.source, self.opts.limit, passed))
        dropped = {reason: n for reason, n in self.prefilter.counts.items() if reason != "passed" and n}
        if dropped:
            plan.notes.append("the prefilter drops, before any request: "
                              + ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())))
        return plan

    def derive(self, status: str) -> dict[str, Any]:
        """At an end, A_k is selected from scoring/ (data.jsonl, rejected.jsonl, errors.jsonl);
        the top-level manifest shows the selection, the prefilter and the input."""
        prefilter_counts = dict(self.prefilter.counts)
        fields: dict[str, Any] = {
            "settings": {"rater": self.rater.identity, "select": self.config.select.describe(),
                         **self.prefilter.describe()},
            "input": {"path": str(self.source), "records": self.input_total, "limit": self.opts.limit},
            "prefilter": prefilter_counts}
        selection = write_selection(self.config, self.passed) if status == "complete" else None
        if selection:
            guide = self.rater.sampling.guide
            selection["rating"]["constrained"] = guide[0] if guide else None  # the guide kind the requests carried
            fields.update(selection)
        else:
            dropped = {k: v for k, v in prefilter_counts.items() if k != "passed"}
            fields["counts"] = counts(0, sum(dropped.values()), 0, dropped)
        return fields


def run_curate(settings: CurateSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return run_stage(CurateStage(settings, opts))
