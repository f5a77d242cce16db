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
files atomically (temp file + rename), manifest last. A kill at any point loses at most the
requests in flight; the same command again finishes the job. Because the selection flags are not
part of the scoring fingerprint, rerunning with another --threshold/--top reselects without a
single request.

The phases live in their own modules: prefilter_pass (1), scoring (2), output (3); this one checks
the options, runs them in order and writes the manifest.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from generators.errors import BaleenError, UsageError
from generators.options import RunOptions, build_engine, check_options, make_backend, run_settings
from generators.runner import run_items
from generators.store import versions

from .files import read_json, resolve_input, write_json
from .output import write_selection
from .prefilter_pass import PREFILTER_STATE, PREFILTERED, build_prefilter, item_id, prefilter_pass
from .scoring import (RATER_SAMPLING, SCORING_STAGE, check_fingerprint, open_scoring_store, pending_items,
                      rater_sampling, rater_settings, rating_worker)
from .settings import CurateSettings

# The names this module offered before its phases moved out; callers may still import them here.
__all__ = ["CurateSettings", "run_curate", "resolve_input", "build_prefilter", "item_id", "prefilter_pass",
           "write_selection", "SCORING_STAGE", "RATER_SAMPLING", "PREFILTERED", "PREFILTER_STATE"]


async def _run(settings: CurateSettings, opts: RunOptions) -> dict[str, Any]:
    started = time.time()
    kind = opts.resolved_backend()
    check_options(opts)
    if settings.adapter and kind == "openai":
        raise UsageError("--adapter loads a LoRA adapter locally (--backend hf or vllm); for a server, serve the "
                         "adapter under a name (vllm serve --lora-modules NAME=DIR) and pass --model NAME")
    if settings.score_mode == "direct" and kind == "openai":
        raise UsageError("--score-mode direct continues a prefilled answer and reads token logprobs, which "
                         "only the local backends do; use --backend hf or vllm, or --score-mode reasoned")
    if settings.retries_unparsed < 0:
        raise UsageError("--retries-unparsed must be 0 or more")
    if settings.out.exists() and not settings.out.is_dir():
        raise UsageError(f"--out {settings.out}: exists and is not a folder; choose another --out")
    source = resolve_input(Path(settings.input))
    prefilter = build_prefilter(settings)
    backend = make_backend(opts, adapter=settings.adapter)
    engine = build_engine(opts, backend)
    sampling = rater_sampling(settings, opts)
    rater = rater_settings(settings, opts, backend, sampling)
    check_fingerprint(settings.out / "scoring", rater)  # before anything is written
    try:
        passed, total = prefilter_pass(settings, prefilter, source, opts.limit)
    except BaseException:
        await engine.aclose()
        raise
    store = open_scoring_store(settings, rater, opts.retry_errors)
    prior = store.previous.get("usage") if store.previous else None
    if prior:
        engine.accounting.prior = prior
    previous = read_json(settings.out / "manifest.json")
    session_start = time.monotonic()

    def manifest(status: str, selection: dict[str, Any] | None) -> dict[str, Any]:
        body = {"stage": "curate", "status": status, "fingerprint": store.fingerprint,
                "settings": {"rater": rater, "select": settings.select.describe(), **prefilter.describe()},
                "input": {"path": str(source), "records": total, "limit": opts.limit},
                "prefilter": dict(prefilter.counts), "run": run_settings(opts),
                "usage": engine.accounting.summary(),
                "duration_s": round(float(previous.get("duration_s", 0.0)) + time.time() - started, 3),
                "sessions": int(previous.get("sessions", 0)) + 1, "versions": versions()}
        if selection:
            body.update(selection)
        else:
            body["counts"] = {"kept": 0, "rejected": sum(v for k, v in prefilter.counts.items() if k != "passed"),
                              "errors": 0, "rejected_by_reason": {k: v for k, v in prefilter.counts.items()
                                                                  if k != "passed"}}
        write_json(settings.out / "manifest.json", body)
        return body

    def extra() -> dict[str, Any]:
        return {"run": run_settings(opts), "usage": engine.accounting.summary(),
                "session_s": round(time.monotonic() - session_start, 3)}

    manifest("scoring", None)
    todo = sum(1 for item in passed if item not in store.done)
    work = rating_worker(engine, settings, sampling, kind, rater["template"])
    try:
        await run_items(pending_items(source, opts.limit, passed, store), work, store=store, engine=engine,
                        concurrency=opts.concurrency, manifest_extra=extra, total=todo,
                        progress=not opts.no_progress)
    except BaleenError:
        manifest("stopped", None)
        raise
    finally:
        store.close()
        await engine.aclose()
    return manifest("complete", write_selection(settings, passed))


def run_curate(settings: CurateSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return asyncio.run(_run(settings, opts))
