"""The segments stage: a corpus in, its kept segments out, one Parquet file per work shard
(generators/inputs/corpus/prepared.py), with the count of each drop reason and a manifest.
Exact and near duplicates are removed over the whole corpus in bounded memory by the sharded
MinHash phases of generators/inputs/corpus/sharded.py, in the folder's `work/` (removed at the end).

It keeps the run-folder contract in the skeleton's order (generators/core/stage.py), without a
model: check the flags, read the first document (bad input: exit 2, no folder), lock --out, check
the fingerprint and write the manifest (status running) before any file, then work; on SIGINT or
SIGTERM the manifest says "interrupted" and the exit code is 130/143. Every file is renamed into
place whole, and a rerun after a kill (even SIGKILL) redoes only the shard or merge it was in, so
it keeps, drops and counts exactly what one uninterrupted run would.
"""
from __future__ import annotations

import itertools
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import click
import numpy as np

from generators.core.errors import BaleenError, Interrupted, UsageError
from generators.core.flags import flag, same_flag
from generators.core.manifest import Manifest, counts
from generators.core.options import RunOptions
from generators.core.records import stable_id
from generators.core.stage import rerun_command
from generators.core.store import check_fingerprint, lock_folder
from generators.executors.ray_cluster import import_ray
from generators.inputs.corpus import SEGMENT_REASONS, Document, SegmentFilterConfig
from generators.inputs.corpus.filters import DOC_TOO_LONG
from generators.inputs.corpus.prepared import STAGE, file_name, file_state, rows, write_kept
from generators.inputs.corpus.sharded import KEPT, ShardedDedup
from generators.inputs.corpus.source import CorpusSource, corpus_source
from generators.segments.dispatch import shard_workers


@dataclass
class SegmentsSettings(CorpusSource):
    """What one `gen segments` run is told: the corpus flags (shared with gen backtranslate), then its own."""

    shard_docs: int = flag("--shard-docs", type=click.IntRange(1), default=10_000, show_default=True,
                           help="Documents per work shard: the most any process holds at once (one output file each).")
    executor: str = same_flag(
        RunOptions, "executor",
        help="Where shards are prepared (segment, filter, MinHash): local: processes on this machine; ray: "
             "Ray tasks of one CPU (a local Ray, or --ray-address's cluster; --out on storage every node sees).")
    workers: int = same_flag(
        RunOptions, "workers",
        help="Shards prepared at once: local processes (--executor local) or Ray tasks (--executor ray).")
    ray_address: str | None = same_flag(RunOptions, "ray_address")
    out: Path = flag("--out", type=click.Path(path_type=Path), default=Path("runs/segments"), show_default=True,
                     help="Output folder (segments-NNNNN.parquet, manifest.json).")
    segments: SegmentFilterConfig = field(default_factory=SegmentFilterConfig)

    def fingerprinted(self) -> dict[str, Any]:
        """What decides the kept segments and the files: a rerun with other values is refused."""
        return {"corpus": self.describe(), "segments": self.segments.describe(), "shard_docs": self.shard_docs}


class _Signalled(BaseException):  # like KeyboardInterrupt: no library's `except Exception` (ray.init) takes it
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_on(signum: int, _frame: Any) -> None:
    raise _Signalled(signum)


def _chunks(documents: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while chunk := list(itertools.islice(documents, size)):
        yield chunk


class SegmentsRun:
    """One session over a segments folder (the caller holds its lock)."""

    def __init__(self, settings: SegmentsSettings) -> None:
        self.settings = settings
        self.out = settings.out
        self.fingerprint = stable_id(STAGE, settings.fingerprinted())
        self.manifest = Manifest(self.out, STAGE)
        check_fingerprint(self.out, self.manifest.previous, self.fingerprint)
        self.phase = "prepare"
        self.phase_s: dict[str, float] = {}  # this session's wall time of each phase
        self.phase_cpu_s: dict[str, float] = {}  # and this process's CPU time in it (not its workers')
        self.totals: dict[str, Any] = {"documents": 0, "segments": 0, "kept": 0, "counts": Counter()}
        self.files = 0

    def write(self, status: str) -> dict[str, Any]:
        summary = self.summary()
        rejected = {reason: n for reason, n in summary["rejected"].items() if n}
        return self.manifest.write(status, {
            "fingerprint": self.fingerprint, "settings": self.settings.fingerprinted(),
            "counts": counts(summary["kept"], sum(rejected.values()), 0, rejected),
            "source": corpus_source(self.settings.corpus or ""), "corpus": self.settings.describe(),
            "segments": summary, "files": self.files, "phase": self.phase, "phase_s": self.phase_s,
            "phase_cpu_s": self.phase_cpu_s,
            "executor": self.settings.executor, "workers": self.settings.workers})

    def summary(self) -> dict[str, Any]:
        found = self.totals["counts"]
        return {"documents": self.totals["documents"], "segments": self.totals["segments"], "kept": self.totals["kept"],
                "rejected": {reason: found.get(reason, 0) for reason in SEGMENT_REASONS},
                DOC_TOO_LONG: found.get(DOC_TOO_LONG, 0)}

    def run(self, documents: Iterator[Document]) -> None:
        """The phases of generators/inputs/corpus/sharded.py, then one output file per shard."""
        dedup = ShardedDedup(self.out / "work", self.settings.segments)
        shards = self._timed("prepare", lambda: self._prepare(dedup, documents))
        self._timed("exact", lambda: dedup.merge_exact(shards))
        self._timed("buckets", lambda: dedup.merge_buckets(shards))
        self._timed("decide", lambda: [self._decide(dedup, shard) for shard in shards])
        shutil.rmtree(dedup.work)

    def _timed(self, phase: str, work: Callable[[], Any]) -> Any:
        """Run one phase; its wall time in this session goes to the manifest (phase_s)."""
        self.phase = phase
        self.write("running")
        start, cpu = time.monotonic(), time.process_time()
        result = work()
        self.phase_s[phase] = round(time.monotonic() - start, 3)
        self.phase_cpu_s[phase] = round(time.process_time() - cpu, 3)
        return result

    def _prepare(self, dedup: ShardedDedup, documents: Iterator[Document]) -> list[int]:
        """Phase 1 over every shard not yet prepared; the shard numbers."""
        marker = dedup.work / "prepare.done"
        if marker.exists():
            return list(range(int(marker.read_text())))
        done = set(dedup.prepared())
        count = 0
        settings = self.settings
        with shard_workers(dedup, settings.executor, settings.workers, settings.ray_address) as workers:
            for shard, chunk in enumerate(_chunks(documents, settings.shard_docs)):
                count = shard + 1
                if shard not in done:
                    workers.submit(shard, chunk)
            workers.drain()
        marker.write_text(f"{count}\n")
        return list(range(count))

    def _decide(self, dedup: ShardedDedup, shard: int) -> None:
        """Phase 4 of one shard, and its output file: the candidates it keeps, in corpus order."""
        state = file_state(dedup.candidates(shard))
        verdicts = dedup.decide(shard, rows(dedup.candidates(shard)))
        keep = verdicts == KEPT
        own = {"documents": state["documents"], "segments": state["segments"], "kept": int(np.count_nonzero(keep)),
               "counts": {**state["counts"], **{k: v for k, v in dedup.verdict_counts(verdicts).items() if v}}}
        path = self.out / file_name(shard)
        if not path.exists():
            write_kept(dedup.candidates(shard), self.out, shard, keep, own)
        self.files = shard + 1
        for name in ("documents", "segments", "kept"):
            self.totals[name] += own[name]
        self.totals["counts"].update(own["counts"])


def run_segments(settings: SegmentsSettings) -> dict[str, Any]:
    """Prepare the corpus into --out (or finish an earlier, stopped run there); returns the manifest."""
    if not settings.corpus:
        raise UsageError("gen segments needs --corpus SOURCE (a file or folder, clueweb, or hf:NAME)")
    if settings.ray_address and settings.executor != "ray":
        raise UsageError("--ray-address joins a Ray cluster to prepare the shards on; add --executor ray, "
                         "or leave out --ray-address")
    if settings.executor == "ray":
        import_ray()  # not installed: one line, before any folder (Ray itself starts at the first shard)
    documents = settings.documents()
    lock = lock_folder(settings.out)
    handlers = {signum: signal.signal(signum, _raise_on) for signum in (signal.SIGINT, signal.SIGTERM)}
    session: SegmentsRun | None = None
    try:
        session = SegmentsRun(settings)
        if session.manifest.previous.get("status") == "complete":
            return session.manifest.previous
        session.write("running")
        session.run(documents)
        return session.write("complete")
    except _Signalled as stop:
        if session is not None:
            session.write("interrupted")
        raise Interrupted(f"interrupted; rerun to continue where it stopped: {rerun_command()}", stop.signum) from None
    except BaleenError:
        if session is not None:
            session.write("stopped")
        raise
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        lock.release()
