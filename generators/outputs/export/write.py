"""DEST, all or nothing: every file is written into a temp folder beside DEST, synced, and the
folder is renamed into place at the end. A kill or an error leaves DEST as it was (the temp folder
is removed, or at worst left as a hidden .DEST.export-PID). An existing non-empty DEST is only
replaced with --force, and only when it is an earlier export (it has provenance.json): never the
input, the current folder or a folder of something else.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from generators.core.errors import UsageError
from generators.core.io import dumps, os_error, write_json

MARK = "provenance.json"  # every export has one: what --force may replace
RUN_PARTS = frozenset({"scoring", "items", "batches", ".lock"})  # a run folder's own parts that are no data file
DATA_SUFFIXES = frozenset({".jsonl", ".json", ".parquet", ".csv", ".tsv", ".txt", ".arrow"})  # not a folder name


def _has_content(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() and (not path.is_file() or path.stat().st_size > 0)


def check_dest(dest: Path, *, force: bool, input_path: Path) -> None:
    """Refuse, before anything is read, a DEST that --force is missing for, or that replacing
    would eat the input, the current folder or a folder that is not an earlier export."""
    target, source, here = dest.resolve(), input_path.resolve(), Path.cwd().resolve()
    if dest.is_file() or (not dest.exists() and dest.suffix.lower() in DATA_SUFFIXES):
        # a file there would be replaced by a folder: a run's own data.jsonl or manifest.json, say
        raise UsageError(f"--out {dest}: --out is a folder (the export writes its data files, a card and "
                         "provenance.json into it), not a file; choose a folder, e.g. "
                         f"--out {dest.with_suffix('')}")
    if dest.name in RUN_PARTS and (dest.parent / "manifest.json").is_file():
        raise UsageError(f"--out {dest}: is part of the run folder {dest.parent}; choose a folder of its own")
    if target == source or target in source.parents:
        raise UsageError(f"--out {dest}: is, or holds, the input {input_path}; choose another --out")
    if target == here or target in here.parents:
        raise UsageError(f"--out {dest}: is, or holds, the current folder; choose another --out")
    if not _has_content(dest):
        return
    if not force:
        raise UsageError(f"--out {dest}: exists and is not empty; choose another --out, or add --force to replace it")
    if dest.is_dir() and not (dest / MARK).is_file():
        raise UsageError(f"--out {dest}: holds files that are no earlier export (no {MARK}); --force only "
                         "replaces an export; choose another --out")
    parent = dest.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--out {dest}: {parent} is a file, not a folder; choose another --out")


@contextmanager
def staged(dest: Path, *, force: bool) -> Iterator[Path]:
    """A temp folder to write the export into; renamed to `dest` when the block ends without error."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.export-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise os_error(exc, dest) from None
    try:
        yield tmp
        _publish(tmp, dest, force=force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _publish(tmp: Path, dest: Path, *, force: bool) -> None:
    try:
        if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
            dest.rmdir()
        if dest.exists() or dest.is_symlink():
            if not force:  # it filled up while we were writing
                raise UsageError(f"--out {dest}: exists and is not empty; choose another --out, or add --force")
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            dest.rename(old)
            tmp.rename(dest)
            _remove(old)
        else:
            tmp.rename(dest)
    except OSError as exc:
        raise os_error(exc, dest) from None


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlFile:
    """One JSON object per line, written as rows come, synced on close."""

    def __init__(self, path: Path) -> None:
        self.path, self.count = path, 0
        try:
            self._handle = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise os_error(exc, path) from None

    def add(self, row: dict[str, Any]) -> int:
        try:
            self._handle.write(dumps(row) + "\n")
        except OSError as exc:
            raise os_error(exc, self.path) from None
        self.count += 1
        return self.count

    def close(self) -> None:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        except OSError as exc:
            raise os_error(exc, self.path) from None


class ParquetFile:
    """A parquet file written in row groups of BATCH rows, so memory stays flat on big exports."""

    BATCH = 2048

    def __init__(self, path: Path, columns: list[str], reasoning: bool = False) -> None:
        import pyarrow.parquet as pq

        self.path, self.columns, self.count = path, columns, 0
        self.schema = parquet_schema(columns, reasoning)
        self._rows: list[dict[str, Any]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(path, self.schema)
        except OSError as exc:
            raise os_error(exc, path) from None

    def add(self, row: dict[str, Any]) -> int:
        self._rows.append({c: row.get(c) for c in self.columns})
        self.count += 1
        if len(self._rows) >= self.BATCH:
            self._flush()
        return self.count

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            table = pa.Table.from_pylist(self._rows, schema=self.schema)
            try:
                self._writer.write_table(table)
            except OSError as exc:
                raise os_error(exc, self.path) from None
            self._rows = []

    def close(self) -> None:
        self._flush()
        try:
            self._writer.close()
            _sync(self.path)
        except OSError as exc:
            raise os_error(exc, self.path) from None


class SplitFiles:
    """One file per split, opened when the split's first row comes: a split no record falls in
    gets no file (datasets refuses a declared split without data)."""

    def __init__(self, folder: Path, parquet_columns: list[str] | None, reasoning: bool = False) -> None:
        self.folder, self.columns, self.reasoning = folder, parquet_columns, reasoning
        self._open: dict[str, JsonlFile | ParquetFile] = {}

    def name(self, split: str) -> str:
        """The file of a split, relative to the export folder."""
        return f"data/{split}-00000-of-00001.parquet" if self.columns is not None else f"{split}.jsonl"

    def pattern(self, split: str) -> str:
        """How the card's configs point at a split's files."""
        return f"data/{split}-*" if self.columns is not None else f"{split}.jsonl"

    def add(self, split: str, row: dict[str, Any]) -> int:
        """Write one row; returns its 1-based position in its split."""
        sink = self._open.get(split)
        if sink is None:
            path = self.folder / self.name(split)
            sink = ParquetFile(path, self.columns, self.reasoning) if self.columns is not None else JsonlFile(path)
            self._open[split] = sink
        return sink.add(row)

    def close(self) -> dict[str, int]:
        """Close every file; rows per split that got any."""
        for sink in self._open.values():
            sink.close()
        return {split: sink.count for split, sink in self._open.items()}

    def checksums(self) -> dict[str, dict[str, Any]]:
        """Size and SHA-256 of each split's file (after close), for the card: `datasets` keys
        its cache of a local folder on the card's dataset_info, so content in it means a folder
        never loads another export's cached rows."""
        out = {}
        for split in self._open:
            path = self.folder / self.name(split)
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            out[self.name(split)] = {"num_bytes": path.stat().st_size, "checksum": digest.hexdigest()}
        return out


def json_file(path: Path, obj: Any) -> None:
    try:
        write_json(path, obj)
    except OSError as exc:
        raise os_error(exc, path) from None


def text(path: Path, content: str) -> None:
    try:
        path.write_text(content, "utf-8")
        _sync(path)
    except OSError as exc:
        raise os_error(exc, path) from None


def parquet_schema(columns: Iterable[str], reasoning: bool = False) -> Any:
    """Typed columns for the hf format, so a column that is null in every row still has a type
    and every split file has the same schema (datasets refuses splits whose features differ).
    `reasoning`: the messages carry `reasoning_content` (null on the turns without thinking)."""
    import pyarrow as pa

    message = [("role", pa.string()), ("content", pa.string())] + ([("reasoning_content", pa.string())]
                                                                    if reasoning else [])
    types = {"id": pa.string(), "source": pa.string(), "tag": pa.string(),
             "messages": pa.list_(pa.struct(message)),
             "score": pa.int64(), "score_expected": pa.float64(), "reason": pa.string(), "reject": pa.string()}
    return pa.schema([(name, types.get(name, pa.string())) for name in columns])
