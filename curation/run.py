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
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from generators.backends.base import Sampling
from generators.errors import BaleenError, UsageError
from generators.options import (RunOptions, build_engine, check_options, engine_settings, make_backend,
                                run_settings)
from generators.records import dumps, read_records, stable_id
from generators.runner import Item, Kept, Rejected, run_items
from generators.store import RunStore, _versions

from .decontaminate import Decontaminator, load_eval_prompts
from .dedup import InstructionDedup
from .filters import FilterConfig
from .prefilter import Prefilter
from .rate import rate
from .rubric import TEMPLATE, rubric_messages, template_id
from .select import Rated, SelectConfig, select
from .text import Record, instruction

SCORING_STAGE = "curate-scoring"
RATER_SAMPLING = {"temperature": 0.0, "max_tokens": 512}
PREFILTERED = "prefiltered.jsonl"
PREFILTER_STATE = "prefilter.json"


@dataclass
class CurateSettings:
    input: Path
    out: Path
    select: SelectConfig = field(default_factory=SelectConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    adapter: str | None = None
    template: str = TEMPLATE
    retries_unparsed: int = 2
    top_logprobs: int = 10
    dedup: bool = True
    near_dup_threshold: float = 0.8
    decontaminate: tuple[Path, ...] = ()
    decontaminate_ngram: int = 8
    decontaminate_overlap: float = 0.5
    decontaminate_bleu: float | None = None


def resolve_input(path: Path) -> Path:
    """A records file, or a run folder (its data.jsonl)."""
    if path.is_dir() and (path / "data.jsonl").is_file():
        return path / "data.jsonl"
    return path


def build_prefilter(settings: CurateSettings) -> Prefilter:
    decontaminator = None
    if settings.decontaminate:
        prompts = [p for path in settings.decontaminate for p in load_eval_prompts(path)]
        decontaminator = Decontaminator(prompts, ngram=settings.decontaminate_ngram,
                                        overlap=settings.decontaminate_overlap, bleu=settings.decontaminate_bleu)
    elif settings.decontaminate_bleu is not None:
        raise UsageError("--decontaminate-bleu needs at least one --decontaminate FILE")
    if not 0 < settings.near_dup_threshold <= 1:
        raise UsageError(f"--near-dup-threshold {settings.near_dup_threshold}: must be in (0, 1]")
    dedup = InstructionDedup(threshold=settings.near_dup_threshold) if settings.dedup else None
    return Prefilter(filters=settings.filters, decontaminator=decontaminator, dedup=dedup)


def item_id(record: Record) -> str:
    """Content-addressed: a stored rating is reused only for the very same dialog."""
    return stable_id("curate", record.get("id"), record["messages"])


def _records(path: Path, limit: int | None) -> Iterator[tuple[int, Record]]:
    for position, record in enumerate(read_records(path)):
        if limit is not None and position >= limit:
            return
        yield position, record


def _atomic_lines(path: Path, lines: Iterator[str]) -> int:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line if line.endswith("\n") else line + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return count


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)


def prefilter_pass(settings: CurateSettings, prefilter: Prefilter, source: Path, limit: int | None
                   ) -> tuple[dict[str, int], int]:
    """Decide every input record; write the dropped ones to prefiltered.jsonl. Returns the items
    to rate (item id -> input position) and the number of input records. The decisions are kept
    in prefilter.json, keyed by the input file (size, mtime) and the settings: a rerun on the same
    input (resume, reselection) skips the pass."""
    state_path = settings.out / PREFILTER_STATE
    key = None
    if source.is_file():
        stat = source.stat()
        key = stable_id("prefilter", prefilter.describe(), str(source.resolve()), stat.st_size,
                        stat.st_mtime_ns, limit)
        state = _previous(state_path)
        if state.get("key") == key and (settings.out / PREFILTERED).is_file():
            prefilter.counts.update(state["counts"])
            return {k: int(v) for k, v in state["passed"].items()}, int(state["total"])
    passed: dict[str, int] = {}
    total = [0]

    def rejected_lines() -> Iterator[str]:
        for position, record in _records(source, limit):
            total[0] += 1
            decision = prefilter.decide(record)
            item = item_id(record)
            if decision.reason is None:
                passed[item] = position
                continue
            meta = record.setdefault("meta", {})
            meta["item"] = item
            meta["curation"] = {"position": position, **({"match": decision.detail} if decision.detail else {})}
            record["reject"] = decision.reason
            yield dumps(record)

    settings.out.mkdir(parents=True, exist_ok=True)
    _atomic_lines(settings.out / PREFILTERED, rejected_lines())
    if key is not None:
        tmp = state_path.with_name(f".{state_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "total": total[0], "counts": dict(prefilter.counts),
                                   "passed": passed}, separators=(",", ":")), "utf-8")
        tmp.replace(state_path)
    return passed, total[0]


def _read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, object) for each complete JSON line of a file (none if it is missing)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        offset = 0
        for raw in handle:
            start, offset = offset, offset + len(raw)
            try:
                yield start, json.loads(raw)
            except ValueError:
                continue


def _item(obj: dict[str, Any]) -> str | None:
    return (obj.get("meta") or {}).get("item") or obj.get("item")


def write_selection(settings: CurateSettings, passed: dict[str, int]) -> dict[str, Any]:
    """Derive data.jsonl / rejected.jsonl / errors.jsonl from scoring/ and prefiltered.jsonl."""
    scoring = settings.out / "scoring"
    rated: list[Rated] = []
    position_of: dict[int, int] = {}
    seen: set[str] = set()
    for offset, obj in _read_lines(scoring / "data.jsonl"):
        item = _item(obj)
        if item in passed and isinstance(obj.get("score"), int) and item not in seen:
            seen.add(item)
            position_of[offset] = passed[item]
            rated.append(Rated(key=offset, id=str(obj.get("id")), score=obj["score"],
                               score_expected=obj.get("score_expected")))
    decisions = select(rated, settings.select)
    by_position = sorted(rated, key=lambda r: position_of[r.key])
    reasons: Counter[str] = Counter()
    histogram: Counter[int] = Counter(r.score for r in rated)

    def scored_lines(kept: bool) -> Iterator[str]:
        with (scoring / "data.jsonl").open("rb") as handle:
            for r in by_position:
                reason = decisions[r.key]
                if (reason is None) != kept:
                    continue
                handle.seek(r.key)
                obj = json.loads(handle.readline())
                if reason is not None:
                    obj["reject"] = reason
                    reasons[reason] += 1
                yield dumps(obj)

    def rejected_lines() -> Iterator[str]:
        for _, obj in _read_lines(settings.out / PREFILTERED):
            reasons[obj.get("reject", "?")] += 1
            yield dumps(obj)
        unparsed = [(passed[_item(o)], o) for _, o in _read_lines(scoring / "rejected.jsonl") if _item(o) in passed]
        for _, obj in sorted(unparsed, key=lambda pair: pair[0]):
            reasons[obj.get("reject", "?")] += 1
            yield dumps(obj)
        yield from scored_lines(kept=False)

    kept = _atomic_lines(settings.out / "data.jsonl", scored_lines(kept=True))
    rejected = _atomic_lines(settings.out / "rejected.jsonl", rejected_lines())
    errors = _atomic_lines(settings.out / "errors.jsonl",
                           (dumps(o) for _, o in _read_lines(scoring / "errors.jsonl") if _item(o) in passed))
    scores = [r.score for r in rated]
    expected = [r.score_expected for r in rated if r.score_expected is not None]
    return {"counts": {"kept": kept, "rejected": rejected, "errors": errors,
                       "rejected_by_reason": dict(reasons)},
            "scores": {"rated": len(rated), "histogram": {str(k): histogram.get(k, 0) for k in range(1, 6)},
                       "mean": round(sum(scores) / len(scores), 4) if scores else None,
                       "mean_expected": round(sum(expected) / len(expected), 4) if expected else None,
                       "with_expected": len(expected)}}


async def _run(settings: CurateSettings, opts: RunOptions) -> dict[str, Any]:
    started = time.time()
    kind = opts.resolved_backend()
    check_options(opts)
    if settings.adapter and kind == "openai":
        raise UsageError("--adapter loads a LoRA adapter locally (--backend hf or vllm); for a server, serve the "
                         "adapter under a name (vllm serve --lora-modules NAME=DIR) and pass --model NAME")
    if settings.retries_unparsed < 0:
        raise UsageError("--retries-unparsed must be 0 or more")
    if settings.out.exists() and not settings.out.is_dir():
        raise UsageError(f"--out {settings.out}: exists and is not a folder; choose another --out")
    source = resolve_input(Path(settings.input))
    prefilter = build_prefilter(settings)
    backend = make_backend(opts, adapter=settings.adapter)
    engine = build_engine(opts, backend)
    sampling = opts.sampling(**RATER_SAMPLING)
    sampling = Sampling(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                        seed=opts.seed, logprobs=settings.top_logprobs or None)
    rater = {**engine_settings(opts, backend), "adapter": settings.adapter,
             "template": template_id(settings.template), "sampling": sampling.as_dict(),
             "retries_unparsed": settings.retries_unparsed}
    _check_fingerprint(settings.out / "scoring", rater)  # before anything is written
    try:
        passed, total = prefilter_pass(settings, prefilter, source, opts.limit)
    except BaseException:
        await engine.aclose()
        raise
    store = RunStore(settings.out / "scoring", stage=SCORING_STAGE, settings=rater,
                     retry_errors=opts.retry_errors)
    prior = store.previous.get("usage") if store.previous else None
    if prior:
        engine.accounting.prior = prior
    previous = _previous(settings.out / "manifest.json")
    session_start = time.monotonic()

    def manifest(status: str, selection: dict[str, Any] | None) -> dict[str, Any]:
        body = {"stage": "curate", "status": status, "fingerprint": store.fingerprint,
                "settings": {"rater": rater, "select": settings.select.describe(), **prefilter.describe()},
                "input": {"path": str(source), "records": total, "limit": opts.limit},
                "prefilter": dict(prefilter.counts), "run": run_settings(opts),
                "usage": engine.accounting.summary(),
                "duration_s": round(float(previous.get("duration_s", 0.0)) + time.time() - started, 3),
                "sessions": int(previous.get("sessions", 0)) + 1, "versions": _versions()}
        if selection:
            body.update(selection)
        else:
            body["counts"] = {"kept": 0, "rejected": sum(v for k, v in prefilter.counts.items() if k != "passed"),
                              "errors": 0, "rejected_by_reason": {k: v for k, v in prefilter.counts.items()
                                                                  if k != "passed"}}
        _write_json(settings.out / "manifest.json", body)
        return body

    def items() -> Iterator[Item]:
        for position, record in _records(source, opts.limit):
            item = item_id(record)
            if passed.get(item) == position and item not in store.done:
                yield Item(id=item, source=str(record.get("source", "file")), input=instruction(record)[:500],
                           extra={"record": record, "position": position})

    async def work(item: Item) -> Kept | Rejected:
        record: Record = item.extra["record"]
        rating = await rate(engine, rubric_messages(record, settings.template), sampling,
                            retries_unparsed=settings.retries_unparsed)
        meta = record.setdefault("meta", {})
        curation = {"rater": engine.model, "backend": kind, "adapter": settings.adapter,
                    "template": rater["template"], "raw": rating.raw, "attempts": rating.attempts,
                    "problems": rating.problems, "usage": rating.usage, "position": item.extra["position"]}
        if "item" in meta:
            curation["input_item"] = meta["item"]
        meta["curation"] = curation
        record["score"] = rating.score
        record["score_expected"] = rating.score_expected
        record["reason"] = rating.reason
        if rating.score is None:
            return Rejected(record, "unparsed_score")
        return Kept([record])

    def extra() -> dict[str, Any]:
        return {"run": run_settings(opts), "usage": engine.accounting.summary(),
                "session_s": round(time.monotonic() - session_start, 3)}

    manifest("scoring", None)
    todo = sum(1 for item in passed if item not in store.done)
    try:
        await run_items(items(), work, store=store, engine=engine, concurrency=opts.concurrency,
                        manifest_extra=extra, total=todo, progress=not opts.no_progress)
    except BaleenError:
        manifest("stopped", None)
        raise
    finally:
        store.close()
        await engine.aclose()
    return manifest("complete", write_selection(settings, passed))


def _check_fingerprint(folder: Path, rater: dict[str, Any]) -> None:
    old = _previous(folder / "manifest.json").get("fingerprint")
    if old and old != stable_id(SCORING_STAGE, rater):
        raise UsageError(f"--out {folder.parent} holds ratings made with another rater or rater settings; "
                         "use a new --out folder (or delete this one)")


def _previous(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def run_curate(settings: CurateSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return asyncio.run(_run(settings, opts))
