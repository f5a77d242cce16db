"""Phase 2 of curate: rate every record the prefilter passed. Ratings go to scoring/, a RunStore
(append-only, one line per item, its usage in meta.curation.usage), whose fingerprint covers only
the rater settings: that is what lets a killed run resume, and a rerun with other selection flags
reuse every rating."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from generators.backends.base import Backend, Sampling
from generators.core.dry_run import DryRun, Planned
from generators.core.engine import Engine
from generators.core.guides import pick, reasoned_regex, score_schema, with_guide
from generators.core.options import RunOptions, engine_settings
from generators.core.runner import Item, Kept, Rejected, Worker
from generators.core.records import Record, instruction
from generators.core.stage import Generation

from curation.files import input_records
from curation.prefilter_pass import item_id
from curation.rate import first_request, rate, rate_direct
from curation.rubric import rubric_messages, template_id
from curation.settings import CurateSettings

SCORING_STAGE = "curate-scoring"
RATER_SAMPLING = {"temperature": 0.0, "max_tokens": 512}


def rater_sampling(settings: CurateSettings, opts: RunOptions) -> Sampling:
    """Greedy, short, seeded, and with logprobs so the expected score can be computed."""
    sampling = opts.sampling(**RATER_SAMPLING)
    return Sampling(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                    seed=opts.seed, logprobs=settings.top_logprobs or None,
                    reasoning_effort=sampling.reasoning_effort)


DIRECT_REGEX = " ?[1-5]"  # after the prefilled "Score:", the digit alone


def rating_guide(settings: CurateSettings, opts: RunOptions, backend: Backend,
                 sampling: Sampling) -> tuple[str, str] | None:
    """--constrained auto: the score digit after "Score:" (direct), or reasoning then a last
    "Score: N" line as a regex, or {"reason", "score"} as a JSON schema: what the backend honours."""
    if settings.score_mode == "direct":
        return pick(backend.capabilities, opts.constrained, regex=DIRECT_REGEX)
    return pick(backend.capabilities, opts.constrained, regex=reasoned_regex(sampling.max_tokens),
                json_schema=score_schema())


def rater_settings(settings: CurateSettings, opts: RunOptions, backend: Backend, sampling: Sampling) -> dict[str, Any]:
    """Everything that changes a rating: the scoring store's fingerprint is made from this."""
    rater = {**engine_settings(opts, backend), "adapter": settings.adapter,
             "template": template_id(settings.template), "sampling": sampling.describe(),
             "retries_unparsed": settings.retries_unparsed, "score_mode": settings.score_mode}
    if opts.constrained != "off":  # only when on, so folders rated before --constrained still resume with off
        rater["constrained"] = opts.constrained
    if settings.rate != "pair":  # only when set, so folders rated before --rate existed still resume
        rater["rate"] = settings.rate
    return rater


def rater_generation(settings: CurateSettings, opts: RunOptions, backend: Backend) -> Generation:
    """The rater, derived once from the flags and its backend: the sampling, the template id, and
    `identity`, the settings every rating depends on (the scoring store's fingerprint)."""
    sampling = rater_sampling(settings, opts)
    sampling = with_guide(sampling, rating_guide(settings, opts, backend, sampling))
    identity = rater_settings(settings, opts, backend, sampling)
    return Generation(sampling=sampling, template=identity["template"], identity=identity)


def pending_items(source: Path, limit: int | None, passed: dict[str, int]) -> Iterator[Item]:
    """Items the prefilter passed (at that very position), in input order; the runner skips
    those the scoring store has rated already."""
    for position, record in input_records(source, limit):
        item = item_id(record)
        if passed.get(item) == position:
            yield Item(id=item, source=str(record.get("source", "file")), input=instruction(record)[:500],
                       extra={"record": record, "position": position})


def rating_messages(record: Record, settings: CurateSettings) -> list[dict[str, str]]:
    """The rubric as the rater is sent it, for --score-mode and --rate."""
    return rubric_messages(record, settings.template, direct=settings.score_mode == "direct", rate=settings.rate)


def rating_plan(engine: Engine, settings: CurateSettings, rater: Generation, items: Iterable[Item]) -> DryRun:
    """--dry-run: the first rating request of every item, and the most one rating may send."""
    direct = settings.score_mode == "direct"
    requests = (Planned(item.id, engine, first_request(rating_messages(item.extra["record"], settings),
                                                       rater.sampling, direct=direct)) for item in items)
    retries = 0 if direct else settings.retries_unparsed
    how = f"per record one rating request and at most {retries} resamples of an unreadable score " \
          f"(--retries-unparsed)" if retries else "one rating request per record"
    return DryRun(requests, unit="record", most_per_item=1 + retries, how=how)


def rating_worker(engine: Engine, settings: CurateSettings, rater: Generation) -> Worker:
    """The runner's worker: rate one record, keep it with its score, or reject it as unparsed."""
    sampling, template, backend_kind = rater.sampling, rater.template, engine.backend.name
    tell = rater.identity.get("constrained") == "auto"

    async def work(item: Item) -> Kept | Rejected:
        record: Record = item.extra["record"]
        if settings.score_mode == "direct":
            rating = await rate_direct(engine, rating_messages(record, settings), sampling)
        else:
            rating = await rate(engine, rating_messages(record, settings), sampling,
                                retries_unparsed=settings.retries_unparsed, cache_hint=settings.template,
                                tell=tell)
        meta = record.setdefault("meta", {})
        curation = {"rater": engine.model, "backend": backend_kind, "adapter": settings.adapter,
                    "template": template, "rate": settings.rate, "raw": rating.raw, "attempts": rating.attempts,
                    "problems": rating.problems, "position": item.extra["position"]}
        if sampling.guide is not None:
            curation["guide"] = sampling.guide[0]
        if rating.told:
            curation["told"] = True
        if "item" in meta:
            curation["input_item"] = meta["item"]
        if rating.reasoning:
            curation["reasoning"] = rating.reasoning
        meta["curation"] = curation
        record["score"] = rating.score
        record["score_expected"] = rating.score_expected
        record["reason"] = rating.reason
        if rating.score is None:
            return Rejected(record, "unparsed_score")
        return Kept([record])

    return work
