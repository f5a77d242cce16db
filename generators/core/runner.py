"""Drive a stage's items through a worker with bounded concurrency, into a RunStore.

Each item ends as kept, rejected (with a reason) or an error line: never dropped. Items
already done in the folder are skipped, so rerunning the same command resumes. Every line
carries the usage of its own requests (booked through accounting.ITEM_USAGE). A BaleenError
(refused key, budget, dead server, bad input met mid-stream) stops the run after in-flight
items settle, and is re-raised for the stage skeleton to write the manifest and report.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

from tqdm import tqdm

from generators.core.accounting import ITEM_USAGE, REPAIR_KEY, add_usage, empty_usage
from generators.backends.base import RequestFailed
from generators.core.engine import Engine
from generators.core.errors import BaleenError, FatalError
from generators.core.records import Record
from generators.core.store import RunStore

MANIFEST_EVERY_S = 5.0
TICK_S = 2.0  # progress-bar refresh while nothing settles


@dataclass
class Kept:
    records: list[Record]


@dataclass
class Rejected:
    record: Record
    reason: str


@dataclass
class Item:
    id: str
    source: str
    input: Any
    extra: dict[str, Any] = field(default_factory=dict)
    repaired_text: int = 0  # lone surrogates made U+FFFD in the input, booked on the item's line


class ItemFailed(Exception):
    """A worker's per-item failure that should carry what was produced so far."""

    def __init__(self, reason: str, *, status: int | None = None, last_response: str | None = None,
                 partial: Any = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.last_response, self.partial = reason, status, last_response, partial


Worker = Callable[[Item], Awaitable["Kept | Rejected"]]
ManifestWriter = Callable[[str], dict[str, Any]]  # status -> the manifest written (the skeleton's)


def pending_items(items: Iterable[Item], store: RunStore, fatal: list[BaleenError]) -> Iterator[Item]:
    """Items not done yet; bad input met while reading them stops the run like a fatal error."""
    try:
        for item in items:
            if item.id not in store.done:
                yield item
    except BaleenError as exc:
        fatal.append(exc)


class Settler:
    """Where every outcome lands, whichever executor produced it: the item's line (kept,
    rejected or error, with its usage), the progress bar, a manifest every few seconds, and the
    guard that stops a run failing with the same bug on every item."""

    def __init__(self, store: RunStore, engine: Engine, *, write_manifest: ManifestWriter,
                 total: int | None, progress: bool) -> None:
        self.store, self.engine, self.write_manifest = store, engine, write_manifest
        self.bar = tqdm(total=total, desc=store.stage, unit="item", disable=not progress or None, leave=False,
                        dynamic_ncols=True)
        self.unexpected = 0  # consecutive items that failed with a bug rather than a request error
        self.bug_limit = max(1, min(10, total or 10))
        self.started = time.monotonic()
        self.last_manifest = time.monotonic()
        self._ticker: asyncio.Future | None = None

    def show(self, refresh: bool = False) -> None:
        if self.bar.disable:
            return
        acc = self.engine.accounting
        elapsed = max(time.monotonic() - self.started, 1e-6)
        store = self.store
        self.bar.set_postfix(kept=store.counts["kept"], rejected=store.counts["rejected"],
                             errors=store.counts["error"], tok_s=f"{acc.completion_tokens / elapsed:.0f}",
                             **self.engine.backend.progress(), refresh=refresh)

    async def _tick(self) -> None:
        """Keep the bar live while no item settles (a batch in progress, a long pause)."""
        while True:
            await asyncio.sleep(TICK_S)
            self.show(refresh=True)

    def __enter__(self) -> "Settler":
        if not self.bar.disable:
            self._ticker = asyncio.ensure_future(self._tick())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self.bar.close()

    def priced(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The usage a line carries: its cost is null (unknown) when the run has no price, like
        the manifest's, and a number (0.0 when it cost nothing) when it has one."""
        if self.engine.accounting.price is None:
            usage["cost_usd"] = None
        return usage

    def settle(self, item: Item, outcome: Kept | Rejected | BaseException, usage: dict[str, Any]) -> BaleenError | None:
        """Write the item's one line; returns a FatalError when the same bug hit too many items."""
        store = self.store
        if item.repaired_text:
            add_usage(usage, {REPAIR_KEY: item.repaired_text})
        usage = self.priced(usage)
        if isinstance(outcome, Kept):
            for number, record in enumerate(outcome.records):  # the item's usage goes on its first line
                store.keep(item.id, record, usage if number == 0 else self.priced(empty_usage()))
        elif isinstance(outcome, Rejected):
            store.reject(item.id, outcome.record, outcome.reason, usage)
        elif isinstance(outcome, ItemFailed):
            store.error(item.id, source=item.source, input=item.input, reason=outcome.reason,
                        status=outcome.status, last_response=outcome.last_response, partial=outcome.partial,
                        usage=usage)
        elif isinstance(outcome, RequestFailed):
            store.error(item.id, source=item.source, input=item.input, reason=outcome.reason,
                        status=outcome.status, last_response=outcome.last_response, usage=usage)
        else:
            store.error(item.id, source=item.source, input=item.input,
                        reason=f"{type(outcome).__name__}: {outcome}", usage=usage)
        self.bar.update(1)
        self.show()
        if time.monotonic() - self.last_manifest > MANIFEST_EVERY_S:
            self.write_manifest("running")
            self.last_manifest = time.monotonic()
        is_bug = isinstance(outcome, Exception) and not isinstance(outcome, (RequestFailed, ItemFailed))
        self.unexpected = self.unexpected + 1 if is_bug else 0
        if self.unexpected >= self.bug_limit:  # the same bug on every item: stop instead of erroring them all
            return FatalError(f"internal error on {self.unexpected} items in a row: "
                              f"{type(outcome).__name__}: {outcome}; see errors.jsonl, and rerun with "
                              "--retry-errors once it is fixed")
        return None

    def finish(self) -> dict[str, Any]:
        return self.write_manifest("complete")


async def run_items(items: Iterable[Item], worker: Worker, *, store: RunStore, engine: Engine,
                    concurrency: int, write_manifest: ManifestWriter,
                    total: int | None = None, progress: bool = True,
                    unsettled: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every pending item in this process; returns the manifest written at the end.
    `unsettled` collects the usage of items that ended without a line (stopped by a fatal error)."""
    fatal: list[BaleenError] = []
    pending = pending_items(items, store, fatal)
    settler = Settler(store, engine, write_manifest=write_manifest, total=total, progress=progress)

    async def lane() -> None:
        for item in pending:  # one shared generator: lanes pull items one at a time
            if fatal:
                return
            usage = empty_usage()
            token = ITEM_USAGE.set(usage)
            try:
                outcome: Any = await worker(item)
            except BaleenError as exc:
                fatal.append(exc)
                if unsettled is not None:
                    add_usage(unsettled, usage)
                return
            except asyncio.CancelledError:
                if unsettled is not None:
                    add_usage(unsettled, usage)
                raise
            except (RequestFailed, ItemFailed) as exc:
                outcome = exc
            except Exception as exc:  # noqa: BLE001 - a bug on one item must not lose the others
                outcome = exc
            finally:
                ITEM_USAGE.reset(token)
            stop = settler.settle(item, outcome, usage)
            if stop is not None:
                fatal.append(stop)
                return

    with settler:
        await asyncio.gather(*(lane() for _ in range(max(1, concurrency))))
    if fatal:
        raise fatal[0]
    return settler.finish()
