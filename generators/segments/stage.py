"""The segments stage: a corpus in, its kept segments out, in numbered Parquet files
(generators/inputs/corpus/prepared.py), with the count of each drop reason and a manifest.

It keeps the run-folder contract in the skeleton's order (generators/core/stage.py), without a
model: check the flags, read the first document (bad input: exit 2, no folder), lock --out, check
the fingerprint and write the manifest (status running) before any file, then work; on SIGINT or
SIGTERM the manifest says "interrupted" and the exit code is 130/143. A file is closed only at a
document's end and renamed into place whole, with the state after that document in its footer:
a rerun after a kill primes the dedup memory from the files written, skips the documents they
cover and goes on, so it keeps, drops and counts exactly what one uninterrupted run would.
"""
from __future__ import annotations

import itertools
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import click

from generators.core.errors import BaleenError, Interrupted, UsageError
from generators.core.flags import flag
from generators.core.manifest import Manifest, counts
from generators.core.records import stable_id
from generators.core.stage import rerun_command
from generators.core.store import check_fingerprint, lock_folder
from generators.inputs.corpus import Document, Segment, SegmentFilterConfig, SegmentPipeline
from generators.inputs.corpus.prepared import STAGE, file_state, file_texts, segment_files, write_file
from generators.inputs.corpus.source import CorpusSource, corpus_source


@dataclass
class SegmentsSettings(CorpusSource):
    """What one `gen segments` run is told: the corpus flags (shared with gen backtranslate), then its own."""

    rows_per_file: int = flag("--rows-per-file", type=click.IntRange(1), default=50_000, show_default=True,
                              help="Kept segments per Parquet file (a file ends at the first document end past it).")
    out: Path = flag("--out", type=click.Path(path_type=Path), default=Path("runs/segments"), show_default=True,
                     help="Output folder (segments-NNNNN.parquet, manifest.json).")
    segments: SegmentFilterConfig = field(default_factory=SegmentFilterConfig)

    def fingerprinted(self) -> dict[str, Any]:
        """What decides the kept segments: a rerun with other values is refused."""
        return {"corpus": self.describe(), "segments": self.segments.describe()}


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_on(signum: int, _frame: Any) -> None:
    raise _Signalled(signum)


class SegmentsRun:
    """One session over a segments folder (the caller holds its lock)."""

    def __init__(self, settings: SegmentsSettings) -> None:
        self.settings = settings
        self.out = settings.out
        self.fingerprint = stable_id(STAGE, settings.fingerprinted())
        self.manifest = Manifest(self.out, STAGE)
        check_fingerprint(self.out, self.manifest.previous, self.fingerprint)
        self.pipeline = SegmentPipeline(settings.segments)
        self.files = len(segment_files(self.out))
        self.resumed_documents = 0

    def resume(self) -> None:
        """Learn what earlier sessions wrote: the dedup memory sees every kept text again, the
        counters come back from the last file's footer; a half-written file is removed."""
        for partial in self.out.glob("*.parquet.tmp"):
            partial.unlink()
        files = segment_files(self.out)
        if not files:
            return
        for path in files:
            for text in file_texts(path):
                self.pipeline.remember(text)
        state = file_state(files[-1])
        pipeline = self.pipeline
        pipeline.documents, pipeline.segments, pipeline.kept = state["documents"], state["segments"], state["kept"]
        pipeline.counts.update(state["counts"])
        self.resumed_documents = state["documents"]

    def state(self) -> dict[str, Any]:
        pipeline = self.pipeline
        return {"documents": pipeline.documents, "segments": pipeline.segments, "kept": pipeline.kept,
                "counts": dict(pipeline.counts)}

    def write(self, status: str) -> dict[str, Any]:
        summary = self.pipeline.summary()
        rejected = {reason: n for reason, n in summary["rejected"].items() if n}
        return self.manifest.write(status, {
            "fingerprint": self.fingerprint, "settings": self.settings.fingerprinted(),
            "counts": counts(summary["kept"], sum(rejected.values()), 0, rejected),
            "source": corpus_source(self.settings.corpus or ""), "corpus": self.settings.describe(),
            "segments": summary, "files": self.files, "rows_per_file": self.settings.rows_per_file,
            "resumed_documents": self.resumed_documents})

    def run(self, documents: Iterator[Document]) -> None:
        """Every document not yet covered by a file, segmented and judged; a file at every
        `rows_per_file` kept segments (at a document's end), and one for the rest."""
        pending: list[Segment] = []
        for document in itertools.islice(documents, self.resumed_documents, None):
            pending.extend(self.pipeline.run([document]))
            if len(pending) >= self.settings.rows_per_file:
                self._flush(pending)
                pending = []
        if pending:
            self._flush(pending)

    def _flush(self, segments: list[Segment]) -> None:
        write_file(self.out, self.files, segments, self.state())
        self.files += 1
        self.write("running")


def run_segments(settings: SegmentsSettings) -> dict[str, Any]:
    """Prepare the corpus into --out (or finish an earlier, stopped run there); returns the manifest."""
    if not settings.corpus:
        raise UsageError("gen segments needs --corpus SOURCE (a file or folder, clueweb, or hf:NAME)")
    documents = settings.documents()
    lock = lock_folder(settings.out)
    handlers = {signum: signal.signal(signum, _raise_on) for signum in (signal.SIGINT, signal.SIGTERM)}
    session: SegmentsRun | None = None
    try:
        session = SegmentsRun(settings)
        if session.manifest.previous.get("status") == "complete":
            return session.manifest.previous
        session.resume()
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
