"""The self-chat stage: seeds in, dialogs out (kept, rejected with a reason, or errors)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prompts
from ..engine import Engine
from ..options import RunOptions, build_engine, check_options, engine_settings, make_backend, run_settings
from ..records import make_record, stable_id
from ..runner import Item, Kept, Rejected, run_items
from ..seeds import Seed, load_seeds
from ..store import RunStore
from .dialog import agents_dialog, transcript_dialog
from .filters import DialogFilter, FilterConfig

# Baize's teacher ran at the API's default sampling; a local model needs its own settings.
API_SAMPLING = {"max_tokens": 1024}
LOCAL_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 512}


@dataclass
class SelfChatSettings:
    seeds: str
    out: Path
    text_field: str | None = None
    shard: tuple[int, int] | None = None
    mode: str = "transcript"
    max_turns: int = 4
    user_model: str | None = None
    opening: str = "seed"
    assistant_prompt: str = "selfchat_assistant"
    filters: FilterConfig = field(default_factory=FilterConfig)


def _record(seed: Seed, item_id: str, dialog: Any, settings: SelfChatSettings, engine: Engine,
            template: str) -> dict[str, Any]:
    meta = {"seed": seed.text, "model": engine.model, "mode": settings.mode, "template": template,
            "usage": dialog.usage, "finish": dialog.finish, "turns": len(dialog.messages) // 2}
    if settings.mode == "agents":
        meta["user_model"] = settings.user_model or engine.model
    if dialog.notes:
        meta["notes"] = dialog.notes
    return make_record(id=item_id, source=seed.source, messages=dialog.messages, meta=meta)


async def _run(settings: SelfChatSettings, opts: RunOptions) -> dict[str, Any]:
    check_options(opts)
    seeds = load_seeds(settings.seeds, field=settings.text_field, limit=opts.limit, shard=settings.shard,
                       seed=opts.seed)
    backend = make_backend(opts)
    engine = build_engine(opts, backend)
    user_engine = engine
    if settings.mode == "agents" and settings.user_model and opts.resolved_backend() == "hf":
        user_engine = build_engine(opts, make_backend(opts, model=settings.user_model),
                                   accounting=engine.accounting)
    sampling = opts.sampling(**(API_SAMPLING if opts.resolved_backend() == "openai" else LOCAL_SAMPLING))
    template = (prompts.template_id("selfchat_transcript") if settings.mode == "transcript"
                else f"{prompts.template_id('selfchat_user')},{prompts.template_id(settings.assistant_prompt)}")
    generation = {**engine_settings(opts, backend), "mode": settings.mode, "template": template,
                  "sampling": sampling.as_dict()}
    if settings.mode == "agents":
        generation.update(max_turns=settings.max_turns, user_model=settings.user_model, opening=settings.opening)
    fingerprint_settings = {**generation, "filters": settings.filters.describe()}
    store = RunStore(settings.out, stage="selfchat", settings=fingerprint_settings,
                     retry_errors=opts.retry_errors)
    dialog_filter = DialogFilter(settings.filters)
    for record in store.iter_kept():
        dialog_filter.remember(record["messages"])
    started = time.monotonic()

    def item_of(seed: Seed) -> Item:
        return Item(id=stable_id("selfchat", seed.source, seed.text, generation), source=seed.source,
                    input=seed.text, extra={"seed": seed})

    async def work(item: Item) -> Kept | Rejected:
        seed: Seed = item.extra["seed"]
        if settings.mode == "transcript":
            dialog = await transcript_dialog(engine, seed.text, sampling, item_id=item.id, base_seed=opts.seed,
                                             model=None)
        else:
            dialog = await agents_dialog(engine, user_engine, seed.text, sampling, item_id=item.id,
                                         base_seed=opts.seed, max_turns=settings.max_turns,
                                         opening=settings.opening, assistant_prompt=settings.assistant_prompt,
                                         user_model=settings.user_model if user_engine is engine else None)
        record = _record(seed, item.id, dialog, settings, engine, template)
        reason = dialog.reject or dialog_filter.check(dialog.messages)
        if reason:
            if dialog.raw is not None:
                record["meta"]["raw"] = dialog.raw
            return Rejected(record, reason)
        return Kept([record])

    def extra() -> dict[str, Any]:
        usage = engine.accounting.summary()
        elapsed = time.monotonic() - started
        return {"run": run_settings(opts), "seeds": {"spec": settings.seeds, "field": settings.text_field,
                                                     "shard": settings.shard, "count": len(seeds)},
                "usage": usage, "session_s": round(elapsed, 3),
                "items_per_s": round((store.counts["kept"] + store.counts["rejected"]) / max(elapsed, 1e-9), 3)}

    store_prior = store.previous.get("usage") if store.previous else None
    if store_prior:
        engine.accounting.prior = store_prior
    items = [item_of(s) for s in seeds]
    try:
        return await run_items(items, work, store=store, engine=engine,
                               concurrency=opts.concurrency, manifest_extra=extra,
                               total=sum(1 for item in items if item.id not in store.done),
                               progress=not opts.no_progress)
    finally:
        store.close()
        await engine.aclose()
        if user_engine is not engine:
            await user_engine.aclose()


def run_selfchat(settings: SelfChatSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return asyncio.run(_run(settings, opts))
