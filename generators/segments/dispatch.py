"""Where phase 1 of `gen segments` (prepare: segment, filter, MinHash one work shard) runs.

The driver reads the corpus and hands out one shard of documents at a time, to one of `workers`:

  local, 1 worker    this process, shard after shard
  local, N workers   N local processes (a process pool)
  ray                Ray tasks of one CPU each, on a local Ray or the cluster --ray-address joins

At most workers + 1 shards are in flight, so the driver (and, with Ray, the object store that
carries them to the tasks) never holds more shards of documents than that, however fast it reads.
A worker writes its shard's files into the work folder itself, each renamed into place whole, so
the work folder must be one every worker sees: on a Ray cluster, --out on shared storage. The
merges and decisions (phases 2-4) read those files in the driver, whatever the executor.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from generators.core.errors import BaleenError, FatalError, first_line
from generators.inputs.corpus import Document, SegmentFilterConfig
from generators.inputs.corpus.sharded import ShardedDedup

VISIBLE_WAIT_S = 30.0  # how long a shard file written on another node may take to show here
POLL_S = 1.0  # a wait for the next finished shard wakes this often, so a signal is handled promptly


def prepare_shard(work: Path, config: SegmentFilterConfig, shard: int, documents: list[Document]) -> int:
    """Phase 1 of one shard, in whichever process or task runs it."""
    ShardedDedup(work, config, clean=False).prepare(shard, documents)
    return shard


class ShardWorkers:
    """The executor's workers for phase 1 (a context manager): `submit` a shard, `drain` at the end."""

    def __init__(self, dedup: ShardedDedup, workers: int) -> None:
        self.dedup = dedup
        self.workers = workers

    def __enter__(self) -> "ShardWorkers":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, shard: int, documents: list[Document]) -> None:
        """Prepare `shard`; returns once fewer than workers + 1 shards are in flight."""
        self.dedup.prepare(shard, documents)

    def drain(self) -> None:
        """Wait for every shard handed out (re-raising a worker's failure)."""


class LocalProcesses(ShardWorkers):
    """--executor local --workers N (N > 1): a pool of N local processes."""

    def __enter__(self) -> "LocalProcesses":
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(self.workers)
        self.running: set[Any] = set()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, shard: int, documents: list[Document]) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait

        if len(self.running) > self.workers:  # workers + 1 in flight: each worker's, and one waiting
            finished, self.running = wait(self.running, return_when=FIRST_COMPLETED)
            for future in finished:
                future.result()
        self.running.add(self.pool.submit(prepare_shard, self.dedup.work, self.dedup.config, shard, documents))

    def drain(self) -> None:
        for future in self.running:
            future.result()
        self.running = set()


class RayTasks(ShardWorkers):
    """--executor ray: one Ray task (one CPU) per shard. Ray starts (or is joined) at the first
    shard to prepare, so a rerun past phase 1 never waits for it."""

    def __init__(self, dedup: ShardedDedup, workers: int, ray_address: str | None) -> None:
        super().__init__(dedup, workers)
        self.ray_address = ray_address
        self.cluster: Any = None
        self.running: dict[Any, int] = {}  # task -> its shard

    def _start(self) -> None:
        from generators.core.options import RunOptions
        from generators.executors.ray_cluster import RayCluster

        keep = signal.getsignal(signal.SIGTERM)  # ray.init sets its own; the run's handler stays
        self.cluster = RayCluster(RunOptions(executor="ray", workers=self.workers, ray_address=self.ray_address))
        try:
            self.cluster.__enter__()
        except SystemExit as stop:  # SIGTERM while Ray started: ray.init's handler exits; the run's says so
            if stop.code == signal.SIGTERM and callable(keep):
                keep(signal.SIGTERM, None)
            raise
        finally:
            signal.signal(signal.SIGTERM, keep)
        self.ray = self.cluster.ray
        self.task = self.ray.remote(num_cpus=1)(prepare_shard)

    def __exit__(self, *exc: Any) -> None:
        if self.cluster is not None:
            for ref in self.running:  # stopped early: a killed task leaves a .tmp, removed on the rerun
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished, or Ray already gone
                    pass
            self.cluster.__exit__(*exc)

    def submit(self, shard: int, documents: list[Document]) -> None:
        if self.cluster is None:
            self._start()
        while len(self.running) > self.workers:  # workers + 1 in flight: each worker's, and one waiting
            self._collect(self._wait())
        self.running[self.task.remote(self.dedup.work, self.dedup.config, shard, documents)] = shard

    def drain(self) -> None:
        while self.running:
            self._collect(self._wait())

    def _wait(self) -> list[Any]:
        ready: list[Any] = []
        while not ready:
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL_S)
        return ready

    def _collect(self, ready: list[Any]) -> None:
        for ref in ready:
            shard = self.running.pop(ref)
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BaleenError):
                    raise type(cause)(cause.message) from None
                raise FatalError(f"shard {shard} failed in its Ray task: {first_line(cause or exc)}; "
                                 "rerun to continue") from None
            except self.ray.exceptions.RayError as exc:  # a worker or node lost, after Ray's retries
                raise FatalError(f"shard {shard} failed on Ray: {first_line(exc)}; rerun to continue") from None
            self._check_visible(shard)

    def _check_visible(self, shard: int) -> None:
        """The shard's files are where the driver reads them: a task on a node that has its own
        copy of --out's path would have written them there instead."""
        deadline = time.monotonic() + VISIBLE_WAIT_S
        while not self.dedup.candidates(shard).exists():
            if time.monotonic() > deadline:
                raise FatalError(f"shard {shard} was prepared on a Ray node whose {self.dedup.work} is not this "
                                 "machine's: with --executor ray on a cluster, --out must be on storage every "
                                 "node sees (NFS, a shared volume)")
            time.sleep(0.5)


def shard_workers(dedup: ShardedDedup, executor: str, workers: int, ray_address: str | None) -> ShardWorkers:
    """The workers `--executor` and `--workers` ask for."""
    if executor == "ray":
        return RayTasks(dedup, workers, ray_address)
    return LocalProcesses(dedup, workers) if workers > 1 else ShardWorkers(dedup, workers)
