"""Phase 1 of curate: run the Prefilter over the input once, write what it drops to
prefiltered.jsonl, and remember its decisions in prefilter.json so a rerun on the same input
(resume, reselection) skips the pass."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from generators.core.embeddings import Embeddings, SemanticDedup
from generators.core.errors import UsageError
from generators.core.io import atomic_lines, dumps, read_json, write_json
from generators.core.records import Record, stable_id

from curation.decontaminate import Decontaminator, load_eval_prompts
from curation.dedup import InstructionDedup
from curation.files import input_records
from curation.prefilter import Decision, Prefilter
from curation.settings import CurateSettings

PREFILTERED = "prefiltered.jsonl"
PREFILTER_STATE = "prefilter.json"


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
    dedup = None
    if settings.dedup:
        dedup = InstructionDedup(threshold=settings.near_dup_threshold, semantic=semantic_dedup(settings))
    elif settings.embed.dedup:
        raise UsageError("--semantic-dedup with --no-dedup: drop one of them")
    return Prefilter(filters=settings.filters, decontaminator=decontaminator, dedup=dedup)


def semantic_dedup(settings: CurateSettings) -> SemanticDedup | None:
    """Dedup by meaning when asked for (--semantic-dedup or --semantic-threshold); the embeddings
    are cached in --out (embeddings.sqlite). Without the extra: one line naming it."""
    if not settings.embed.dedup:
        return None
    embeddings = Embeddings(settings.embed, settings.out)
    embeddings.check_installed("--semantic-dedup")
    return SemanticDedup(embeddings, settings.embed.threshold)


def item_id(record: Record) -> str:
    """Content-addressed: a stored rating is reused only for the very same dialog."""
    return stable_id("curate", record.get("id"), record["messages"])


def decisions(prefilter: Prefilter, source: Path, limit: int | None) -> Iterator[tuple[int, Record, Decision]]:
    """Every input record with its position and the prefilter's decision, in input order."""
    for position, record in input_records(source, limit):
        yield position, record, prefilter.decide(record)


def passed_items(prefilter: Prefilter, source: Path, limit: int | None) -> dict[str, int]:
    """The items the prefilter passes (item id -> input position), decided in memory alone
    (--dry-run: nothing is written)."""
    return {item_id(record): position for position, record, decision in decisions(prefilter, source, limit)
            if decision.reason is None}


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
        try:
            state = read_json(state_path, what="prefilter state") or {}
        except UsageError:  # a cache of decisions, not a promise: recompute it
            state = {}
        if state.get("key") == key and (settings.out / PREFILTERED).is_file():
            prefilter.counts.update(state["counts"])
            return {k: int(v) for k, v in state["passed"].items()}, int(state["total"])
    passed: dict[str, int] = {}
    total = [0]
    if prefilter.dedup is not None and prefilter.dedup.semantic is not None:
        prefilter.dedup.warm(record for _, record in input_records(source, limit))

    def rejected_lines() -> Iterator[str]:
        for position, record, decision in decisions(prefilter, source, limit):
            total[0] += 1
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
    atomic_lines(settings.out / PREFILTERED, rejected_lines())
    if key is not None:
        write_json(state_path, {"key": key, "total": total[0], "counts": dict(prefilter.counts),
                                "passed": passed})
    return passed, total[0]
