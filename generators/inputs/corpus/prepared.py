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
COLUMNS = ("id", "doc_id", "segment", "url", "header", "text", "kind", "level", "repaired_text")


def _schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("doc_id", pa.string()), ("segment", pa.int32()), ("url", pa.string()),
                      ("header", pa.string()), ("text", pa.string()), ("kind", pa.string()), ("level", pa.int8()),
                      ("repaired_text", pa.int32())])


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
    schema = _schema().with_metadata({STATE_KEY: json.dumps(state).encode("utf-8")})
    table = pa.Table.from_pydict(columns, schema=schema)
    path = path or Path(folder) / file_name(number)
    partial = path.with_name(path.name + ".tmp")
    pq.write_table(table, partial, compression="zstd")
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def file_state(path: Path) -> dict[str, Any]:
    """The preparation's state stored in a file's footer."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[STATE_KEY].decode("utf-8"))


def read_file(path: Path) -> list[Segment]:
    """Every segment of one file (a work shard's worth: the caller bounds its size)."""
    import pyarrow.parquet as pq

    return [_segment(row) for row in pq.read_table(path, columns=list(COLUMNS[1:])).to_pylist()]


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
