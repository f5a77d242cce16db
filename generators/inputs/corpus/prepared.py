"""A prepared-segments folder (what `gen segments` writes, what `gen backtranslate --segments`
reads): kept segments in numbered Parquet files, and a manifest.

  segments-00000.parquet ...  one file per work shard, its kept segments in corpus order: id,
                              doc_id, segment (its index in the document), url, header, text,
                              kind, level, repaired_text; the shard's counts in its footer
  manifest.json               stage "segments", status, fingerprint, the corpus and filter
                              settings, the counts of each drop reason, the files

Each file is written whole to a temporary name and renamed, so a file that exists is complete
(the work shard's candidates, cand-S.parquet in work/, use the same format).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from generators.core.errors import UsageError
from generators.core.manifest import read_manifest
from generators.inputs.corpus.segment import Segment

STAGE = "segments"
PATTERN = "segments-*.parquet"
STATE_KEY = b"baleen.state"
ROW_GROUP = 4096  # rows a row group: what a reader decodes at once
KEPT_BATCH = 4096  # candidates a decision step copies at once
COLUMNS = ("id", "doc_id", "segment", "url", "header", "text", "kind", "level", "repaired_text")


def _schema(state: dict[str, Any]):
    """The columns of a segments file, with the file's state (its counts) in the footer."""
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("doc_id", pa.string()), ("segment", pa.int32()), ("url", pa.string()),
                      ("header", pa.string()), ("text", pa.string()), ("kind", pa.string()), ("level", pa.int8()),
                      ("repaired_text", pa.int32())]).with_metadata({STATE_KEY: json.dumps(state).encode("utf-8")})


def file_name(number: int) -> str:
    return f"segments-{number:05d}.parquet"


def segment_files(folder: Path) -> list[Path]:
    """The complete files of a folder, in order."""
    return sorted(Path(folder).glob(PATTERN))


def write_file(folder: Path, number: int, segments: list[Segment], state: dict[str, Any],
               path: Path | None = None) -> Path:
    """Write one file atomically (temporary name, fsync, rename): `segments` and the state in its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"id": [f"{s.doc_id}#{s.index}" for s in segments], "doc_id": [s.doc_id for s in segments],
               "segment": [s.index for s in segments], "url": [s.url for s in segments],
               "header": [s.header for s in segments], "text": [s.text for s in segments],
               "kind": [s.kind for s in segments], "level": [s.level for s in segments],
               "repaired_text": [s.repaired_text for s in segments]}
    schema = _schema(state)
    return _write_table(pa.Table.from_pydict(columns, schema=schema), path or Path(folder) / file_name(number))


def write_kept(source: Path, folder: Path, number: int, keep: Any, state: dict[str, Any]) -> Path:
    """Write file `number` of `folder` from the rows of file `source` where `keep` (a boolean
    array, one per row) is true: the rows write_file would write, streamed through Arrow a batch
    at a time (no Python object per segment, no whole shard in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(state)
    path = Path(folder) / file_name(number)
    partial = path.with_name(path.name + ".tmp")
    done = 0
    with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
        # one thread and no read-ahead: Arrow's reader threads and buffers would hold several
        # batches (twice the resident memory here) for a copy bound by the disk anyway
        reader = pq.ParquetFile(source, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=KEPT_BATCH, columns=list(COLUMNS), use_threads=False):
            mask = pa.array(keep[done:done + batch.num_rows], type=pa.bool_())
            done += batch.num_rows
            writer.write_table(pa.Table.from_batches([batch.filter(mask)]).cast(schema))
    _sync_rename(partial, path)
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed pages: give them back
    return path


def rows(path: Path) -> int:
    """How many segments a file holds (from its footer)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _write_table(table: Any, path: Path) -> Path:
    """Write a table atomically: a temporary name, fsync, rename."""
    import pyarrow.parquet as pq

    partial = path.with_name(path.name + ".tmp")
    pq.write_table(table, partial, compression="zstd", row_group_size=ROW_GROUP)
    _sync_rename(partial, path)
    return path


def _sync_rename(partial: Path, path: Path) -> None:
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)


def file_state(path: Path) -> dict[str, Any]:
    """The preparation's state stored in a file's footer."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[STATE_KEY].decode("utf-8"))


def _segment(row: dict[str, Any]) -> Segment:
    return Segment(row["doc_id"], row["segment"], row["header"], row["text"], row["url"], row["kind"], row["level"],
                   row["repaired_text"])


def iter_segments(folder: Path) -> Iterator[Segment]:
    """Every kept segment of a prepared folder, in order, streamed a row group at a time."""
    import pyarrow.parquet as pq

    for path in segment_files(folder):
        handle = pq.ParquetFile(path)
        for group in range(handle.num_row_groups):
            for row in handle.read_row_group(group, columns=list(COLUMNS[1:])).to_pylist():
                yield _segment(row)


def open_prepared(folder: Path) -> dict[str, Any]:
    """The manifest of a finished `gen segments` folder; anything else is one line, exit 2."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--segments {folder}: no such folder; make it with gen segments --corpus SRC --out {folder}")
    manifest = read_manifest(folder)
    if manifest.get("stage") != STAGE:
        raise UsageError(f"--segments {folder}: not a gen segments folder (no segments manifest)")
    if manifest.get("status") != "complete":
        raise UsageError(f"--segments {folder}: gen segments has not finished there (status "
                         f"{manifest.get('status')}); rerun that gen segments command to complete it")
    return manifest
