"""`--executor ray`: the stage's items through N model replicas (Ray actors), one writer.

The driver keeps every promise of the local runner, because it still does all the writing:
  - it pulls items from the stage (skipping the ones the folder already has) and hands each to
    the least busy replica, keeping `--concurrency` items in flight per replica so each one's
    backend can batch; Ray places the replicas on CPUs/GPUs and restarts a dead one;
  - each outcome comes back as plain data with the item's usage, and the driver settles it
    through the same `Settler` the local runner uses: one line per item, the usage on it;
  - budgets are checked in the driver before each item is handed out (every item's usage is
    booked there), so --max-cost and --max-total-tokens hold across replicas;
  - a replica that dies mid-item is restarted by Ray (`max_restarts`) and each of its items
    retried, alone on a replica, so an item that crashes its process cannot take others down
    with it again; after `RETRIES` retries the item ends as an error line naming the failure;
  - a fatal error from a replica (a model that cannot load, a budget) stops handing out items,
    lets the ones in flight settle, and is raised like a local fatal error.
A killed driver loses only the items in flight, which are not in the folder and so run again.
"""
from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Any, Callable, Iterable

from generators.core.accounting import add_usage, empty_usage
from generators.core.engine import Engine
from generators.core.errors import BaleenError, FatalError, UsageError, first_line
from generators.core.runner import Item, ItemFailed, ManifestWriter, Settler, pending_items
from generators.core.store import RunStore
from generators.executors.ray_cluster import RayCluster
from generators.executors.replica import Replica
from generators.executors.shipping import dumps_stage

RETRIES = 2  # retries of an item whose replica died (Ray restarts the replica; the retry runs alone on one)


class WorkerFailed(Exception):
    """A replica died on this item (and on every retry) or raised past the stage's own handling."""


def outcome_of(result: Any) -> Any:
    """A replica's plain-data outcome back into what the Settler writes."""
    if not isinstance(result, dict):
        return result  # Kept or Rejected
    if "failed" in result:
        return ItemFailed(result["failed"], status=result.get("status"), last_response=result.get("last_response"),
                          partial=result.get("partial"))
    return WorkerFailed(result.get("bug") or str(result))


def fatal_of(result: dict[str, Any]) -> BaleenError:
    cls = UsageError if result.get("exit_code") == 2 else FatalError
    return cls(result["fatal"])


def book(engine: Engine, usage: dict[str, Any]) -> None:
    """An item's usage into the driver's accounting: budgets and the progress bar see it."""
    acc = engine.accounting
    acc.requests += int(usage.get("requests") or 0)
    acc.cached += int(usage.get("cached") or 0)
    acc.failed += int(usage.get("failed_requests") or 0)
    acc.attempts += int(usage.get("attempts") or 0)
    acc.prompt_tokens += int(usage.get("prompt_tokens") or 0)
    acc.completion_tokens += int(usage.get("completion_tokens") or 0)
    acc.cache_read_tokens += int(usage.get("cache_read_tokens") or 0)  # priced at the cached rate
    acc.cache_write_tokens += int(usage.get("cache_write_tokens") or 0)


async def run_items_ray(stage: Any, items: Iterable[Item], *, store: RunStore, engine: Engine,
                        write_manifest: ManifestWriter, total: int | None = None,
                        progress: bool = True, unsettled: dict[str, Any] | None = None,
                        review: Callable[[Item, Any], Any] | None = None) -> dict[str, Any]:
    """Run every pending item on Ray replicas; returns the manifest written at the end."""
    opts = stage.opts
    with RayCluster(opts, spare_cpus=stage.ray_spare_cpus()) as cluster:
        ray = cluster.ray
        shape = cluster.replicas()
        opts.gpus_per_worker = shape.gpus  # the manifest shows what each replica got
        payload = dumps_stage(stage)  # by value: a restarted replica gets it again from Ray
        actor_class = ray.remote(Replica)
        window = max(1, opts.concurrency)
        actors = [actor_class.options(num_cpus=shape.cpus, num_gpus=shape.gpus, max_restarts=-1,
                                      max_task_retries=0, max_concurrency=window + 4).remote(payload, shape.threads)
                  for _ in range(shape.count)]
        try:
            try:
                started = await asyncio.gather(*(actor.start.remote() for actor in actors))
            except ray.exceptions.RayError as exc:  # the replica could not even be built
                raise FatalError(f"a worker could not start: {first_line(exc, 300)}; is baleen (and the model) installed "
                                 "at the same path on every Ray node?") from None
            for result in started:
                if result is not None:
                    raise fatal_of(result) if "fatal" in result else FatalError(
                        f"a worker could not start: {result.get('bug') or result}")
            return await _drive(ray, actors, window, items, store=store, engine=engine,
                                write_manifest=write_manifest, total=total, progress=progress,
                                unsettled=unsettled, review=review)
        finally:
            for actor in actors:
                ray.kill(actor)


async def _drive(ray: Any, actors: list[Any], window: int, items: Iterable[Item], *, store: RunStore,
                 engine: Engine, write_manifest: ManifestWriter, total: int | None, progress: bool,
                 unsettled: dict[str, Any] | None, review: Callable[[Item, Any], Any] | None) -> dict[str, Any]:
    fatal: list[BaleenError] = []
    pending = iter(pending_items(items, store, fatal))
    lanes = range(len(actors))
    loads = [0] * len(actors)
    alone = [False] * len(actors)  # a lane running a retried item by itself
    in_flight: dict[asyncio.Future, tuple[Item, int, Any]] = {}
    retry: deque[Item] = deque()
    deaths: Counter[str] = Counter()
    exhausted = False
    settler = Settler(store, engine, write_manifest=write_manifest, total=total, progress=progress)

    async def next_item() -> Item | None:
        # read in a thread: a corpus stream may wait on preparation tasks while outcomes settle here
        return await asyncio.to_thread(next, pending, None)

    def submit(item: Item, lane: int) -> None:
        ref = actors[lane].work.remote(item)
        in_flight[asyncio.wrap_future(ref.future())] = (item, lane, ref)
        loads[lane] += 1

    with settler:
        try:
            while True:
                while not fatal and len(in_flight) < window * len(actors):
                    if retry:  # an item whose replica died runs alone, so it cannot take others down with it
                        idle = [lane for lane in lanes if loads[lane] == 0]
                        if not idle:
                            break  # wait for a lane to drain
                        alone[idle[0]] = True
                        submit(retry.popleft(), idle[0])
                        continue
                    open_lanes = [lane for lane in lanes if not alone[lane]]
                    if exhausted or not open_lanes:
                        break
                    try:
                        engine.accounting.check_budget()
                    except BaleenError as exc:
                        fatal.append(exc)
                        break
                    item = await next_item()
                    if item is None:
                        exhausted = True
                        break
                    submit(item, min(open_lanes, key=loads.__getitem__))
                if not in_flight:
                    break
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    item, lane, _ = in_flight.pop(future)
                    loads[lane] -= 1
                    alone[lane] = False
                    try:
                        result, usage = future.result()
                    except ray.exceptions.RayActorError as exc:  # the replica died (Ray restarts it)
                        deaths[item.id] += 1
                        if deaths[item.id] <= RETRIES:
                            retry.append(item)
                            continue
                        result, usage = {"bug": f"worker failed {deaths[item.id]} times: {first_line(exc, 300)}"}, empty_usage()
                    except ray.exceptions.RayError as exc:
                        result, usage = {"bug": f"worker failed: {first_line(exc, 300)}"}, empty_usage()
                    book(engine, usage)
                    if isinstance(result, dict) and "fatal" in result:
                        fatal.append(fatal_of(result))
                        if unsettled is not None:
                            add_usage(unsettled, usage)
                        continue
                    outcome = outcome_of(result)
                    if review is not None and not isinstance(outcome, Exception):
                        outcome = review(item, outcome)
                    stop = settler.settle(item, outcome, usage)
                    if stop is not None:
                        fatal.append(stop)
        except asyncio.CancelledError:  # a signal: the items in flight have no line and will run again
            for future, (_, _, ref) in in_flight.items():
                future.cancel()
                ray.cancel(ref)
            raise
    if fatal:
        raise fatal[0]
    return settler.finish()

