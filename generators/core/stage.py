"""The one skeleton every generation stage runs in.

A stage (selfchat, backtranslate, curate, or a new one) supplies only what is its own: checks
of its flags, its inputs, its settings, its items and its worker (prompt, request, parse,
filter). `run_stage` does the rest, in an order that keeps the run folder's promises:

  1. check flags and the backend's settings      nothing written, no model loaded
  2. read the inputs                             bad input: exit 2, no folder left behind
  3. build the backend(s), name the settings     the fingerprint is known
  4. lock --out, check the fingerprint, write    a second writer or other settings: exit 2;
     the manifest (status running)                the fingerprint is on disk before any request;
                                                 other filter settings: the lines are judged again
  5. start the backend (load the model)          a model that cannot load: exit 1, before any item
  6. prime (learn from earlier lines), build the items (once), run them (in this process, or
     with --executor ray on model replicas that each load the model in step 5's place), write
     the manifest
  7. on a fatal error: manifest "stopped"; on SIGINT/SIGTERM: manifest "interrupted", the
     rerun command, exit 130/143; always: close files, backends and the lock.

Every hook has one job and no hidden order: `settings()` only returns the settings; what a stage
derives from them (sampling, template, the identity its item ids hash) is a cached property,
computed once from the flags and the engines; `items()` is called once. The manifest is built
here alone (generators.core.manifest): a stage adds its fields (`manifest_extra`, `derive`) and
never writes one itself.
"""
from __future__ import annotations

import abc
import asyncio
import shlex
import signal
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable

from generators.backends.base import Sampling
from generators.backends.urls import redact_url
from generators.core.accounting import cache_read_share, empty_usage, sum_usage
from generators.core.dry_run import DryRun, print_estimate
from generators.core.engine import Engine
from generators.core.errors import BaleenError, Interrupted, UsageError
from generators.core.manifest import Manifest
from generators.core.options import RunOptions, build_engine, check_options, engine_settings, make_backend, run_settings
from generators.core.runner import Item, Kept, Rejected, run_items
from generators.core.rejudge import Rejudge, rejudge_folder
from generators.core.store import FolderLock, RunStore, lock_folder


@dataclass(frozen=True)
class Generation:
    """What a stage derives from its settings and engines, once: the sampling and the prompt
    template its requests use, and `identity`, the settings every item id hashes (so changing
    any of them makes new items instead of reusing old lines)."""
    sampling: Sampling
    template: str
    identity: dict[str, Any]


class Stage(abc.ABC):
    """What one stage is; subclasses fill in the abstract parts and may override the hooks."""

    name: ClassVar[str]
    usage_at: ClassVar[tuple[str, ...]] = ("meta", "usage")
    # A stage whose lines go to a sub-folder (curate: "scoring", gen eval: "items") derives the
    # top-level files from them: `derive` writes those files and returns the top-level manifest's
    # own fields; the skeleton writes both manifests.
    sub_store: ClassVar[str | None] = None
    # The stage name the store's lines and fingerprint carry, where it differs from `name`.
    store_name: ClassVar[str | None] = None

    def __init__(self, opts: RunOptions, out: Path, *, adapter: str | None = None) -> None:
        self.opts = opts
        self.out = Path(out)
        self.adapter = adapter
        self.engine: Engine | None = None
        self.engines: list[Engine] = []
        self.started = time.monotonic()

    # -- what a stage supplies -------------------------------------------------------------
    def check(self) -> None:
        """Refuse flags this stage cannot work with (nothing read, nothing written yet)."""

    @abc.abstractmethod
    def load_inputs(self) -> None:
        """Read and validate the inputs; bad input raises UsageError before --out exists."""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes the data: the run's fingerprint is made from this. Pure: it
        returns the settings and sets nothing (it may be called more than once)."""

    @abc.abstractmethod
    def items(self) -> Iterable[Item]:
        """The work, one Item per input unit, with stable ids. Called once, by the skeleton,
        after `prime`: a list (its pending part sizes the progress bar) or a stream."""

    @abc.abstractmethod
    async def work(self, item: Item) -> Kept | Rejected:
        """One item: prompt, request(s), parse, filter."""

    def manifest_extra(self) -> dict[str, Any]:
        """What the stage adds to its manifest (input description, its own counters)."""
        return {}

    def derive(self, status: str) -> dict[str, Any]:
        """Rewrite the files derived from the lines (self-chat's preferences, curate's selection,
        an eval's results) and return the fields they add to the top-level manifest. Called at
        every session boundary: when the run starts (status running) and at every end
        (complete, stopped, interrupted)."""
        return {}

    def backend_extra(self) -> dict[str, Any]:
        """Backend-specific knobs this stage passes through (e.g. gpu_memory_utilization)."""
        return {}

    def build_engines(self) -> None:
        """One engine on --backend/--model (with --adapter); stages with a second model add theirs."""
        self.engine = self.add_engine(make_backend(self.opts, adapter=self.adapter, run_dir=str(self.out),
                                                   **self.backend_extra()))

    def store_dir(self) -> Path:
        """Where the append-only lines go: --out, or its `sub_store` folder."""
        return self.out / self.sub_store if self.sub_store else self.out

    def rejudge(self) -> Rejudge | None:
        """How to judge stored lines again when only the filter settings changed (filters are not
        in the fingerprint); None: the stage keeps no filters apart from its settings."""
        return None

    def prime(self, store: RunStore) -> None:
        """Learn from what the folder already holds (dedup memory, curate's prefilter decisions)
        before the items are built."""

    def total(self, items: Iterable[Item], done: set[str]) -> int | None:
        """Items still to do, for the progress bar (None: unknown, a stream)."""
        if isinstance(items, Collection):
            return sum(1 for item in items if item.id not in done)
        return None

    def review(self, item: Item, outcome: Kept | Rejected) -> Kept | Rejected:
        """A last look at an item's outcome in the driver, before its line is written: the place
        for a check that needs every item seen so far (with --executor ray, `work` runs in
        replicas that each see only their own items)."""
        return outcome

    def ray_spare_cpus(self) -> float:
        """CPUs to leave free beside the model replicas for Ray tasks the stage runs itself."""
        return 0.0

    def dry_run(self) -> DryRun:
        """--dry-run: the first request of every item, made by the stage's own prompt builders
        from the inputs and the engines (nothing loaded, nothing sent), and how many requests one
        item may send in all (generators/core/dry_run.py)."""
        raise UsageError(f"--dry-run: gen {self.name} cannot estimate its requests yet; leave out --dry-run")

    # -- helpers for stages ----------------------------------------------------------------
    def add_engine(self, backend: Any, *, share_with: Engine | None = None) -> Engine:
        engine = build_engine(self.opts, backend, accounting=share_with.accounting if share_with else None)
        self.engines.append(engine)
        return engine

    def engine_settings(self) -> dict[str, Any]:
        assert self.engine is not None
        return engine_settings(self.opts, self.engine.backend)

    @property
    def capabilities(self) -> Any:
        assert self.engine is not None
        return self.engine.backend.capabilities


def usage_summary(ledger: dict[str, Any], unsettled: dict[str, Any], priced: bool) -> dict[str, Any]:
    """Manifest usage: every line's usage plus what items cut short by a stop spent."""
    total = sum_usage([ledger, unsettled])
    total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    total["cost_usd"] = round(total["cost_usd"] or 0.0, 6) if priced else None
    share = cache_read_share(total)
    if share is not None:  # only where the provider reported cache reads: other usages keep their shape
        total["cache_read_share"] = share
    return total


def rerun_command() -> str:
    """The command line that resumes this run (URLs redacted: no secret is printed)."""
    args = [redact_url(a) if "://" in a else a for a in sys.argv[1:]]
    return shlex.join(["gen", *args])


def run_stage(stage: Stage) -> dict[str, Any]:
    """Run a stage to completion (or a clean stop) and return its manifest."""
    return asyncio.run(_main(stage))


async def _main(stage: Stage) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received and task is not None:
            received.append(signum)
            task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
            pass
    try:
        return await _run(stage, received)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _execute(stage: Stage, store: RunStore, manifests: "Manifests", unsettled: dict[str, Any]) -> dict[str, Any]:
    """The items through the chosen executor: this process, or model replicas on Ray."""
    opts = stage.opts
    items = stage.items()
    common = dict(store=store, engine=stage.engine, write_manifest=manifests.write,
                  total=stage.total(items, store.done), progress=not opts.no_progress, unsettled=unsettled)
    if opts.executor == "ray":
        from generators.executors.ray_executor import run_items_ray

        return await run_items_ray(stage, items, review=stage.review, **common)

    async def worker(item: Item) -> Kept | Rejected:
        return stage.review(item, await stage.work(item))

    return await run_items(items, worker, concurrency=opts.concurrency, **common)


class Manifests:
    """The one place a stage's manifests are written: the store's (every few seconds while items
    settle, and at each session boundary) and, for a stage with a sub-store, the top-level one,
    made of the store's fields and what `Stage.derive` returns."""

    def __init__(self, stage: Stage, store: RunStore, unsettled: dict[str, Any]) -> None:
        self.stage, self.store, self.unsettled = stage, store, unsettled
        self.top = Manifest(stage.out, stage.name) if stage.sub_store else None
        self.priced = bool(stage.engine and stage.engine.accounting.price is not None)
        self.derived: dict[str, Any] = {}

    def run_fields(self) -> dict[str, Any]:
        """What every manifest of the run shows: the run's flags, usage (every line's plus what
        items cut short by a stop spent), this session's time and the backends' reports."""
        stage = self.stage
        reports = {e.backend.name: e.backend.report() for e in stage.engines}
        backends = {name: report for name, report in reports.items() if report}
        return {"run": run_settings(stage.opts), "usage": usage_summary(self.store.usage, self.unsettled, self.priced),
                "session_s": round(time.monotonic() - stage.started, 3),
                **({"backend": backends} if backends else {})}

    def write(self, status: str, *, boundary: bool | None = None) -> dict[str, Any]:
        """Write the manifest(s) for `status`; at a session boundary (the start, every end) the
        stage's derived files are rewritten first. Returns the top-level manifest."""
        if boundary is None:
            boundary = status != "running"
        if boundary:
            self.derived = self.stage.derive(status)
        run = self.run_fields()
        if self.top is None:
            return self.store.write_manifest(status=status, extra={**run, **self.stage.manifest_extra(),
                                                                   **self.derived})
        stored = self.store.write_manifest(status=status, extra={**run, **self.stage.manifest_extra()})
        if not boundary:
            return stored
        return self.top.write(status, {**self.store.fields(), **run, **self.derived})


async def _run(stage: Stage, received: list[int]) -> dict[str, Any]:
    opts = stage.opts
    stage.check()
    check_options(opts, adapter=stage.adapter)
    stage.load_inputs()
    if opts.dry_run:  # the estimate: prints, sends nothing, writes nothing, exits 0
        await print_estimate(stage)
    lock: FolderLock | None = None
    store: RunStore | None = None
    unsettled = empty_usage()
    try:
        stage.build_engines()
        settings = stage.settings()
        lock = lock_folder(stage.out)
        rejudge_folder(stage.store_dir(), stage.store_name or stage.name, settings, stage.rejudge())
        store = RunStore(stage.store_dir(), stage=stage.store_name or stage.name, settings=settings,
                         retry_errors=opts.retry_errors, usage_at=stage.usage_at)
        for engine in stage.engines:
            engine.accounting.prior = dict(store.usage)
        manifests = Manifests(stage, store, unsettled)
        manifests.write("running", boundary=True)
        try:
            if opts.executor != "ray":  # with Ray, each replica loads its own model
                for engine in stage.engines:
                    await engine.start()
            stage.prime(store)
            return await _execute(stage, store, manifests, unsettled)
        except BaleenError:
            manifests.write("stopped")
            raise
        except asyncio.CancelledError:
            if not received:
                raise
            manifests.write("interrupted")
            raise Interrupted(f"interrupted; rerun to continue where it stopped: {rerun_command()}",
                              received[0]) from None
    except asyncio.CancelledError:
        if not received:
            raise
        raise Interrupted(f"interrupted before any item ran; rerun: {rerun_command()}", received[0]) from None
    finally:
        if store is not None:
            store.close()
        if lock is not None:
            lock.release()
        for engine in stage.engines:
            await engine.aclose()
