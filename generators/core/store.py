"""A run's output folder: append-only JSONL files and a manifest, safe to kill at any moment.

  data.jsonl      kept records
  rejected.jsonl  records a filter turned down, with "reject": reason
  errors.jsonl    items that failed, with the reason and the last response
  retried.jsonl   error lines set aside by --retry-errors (kept for their usage)
  manifest.json   settings (no secrets), counts, usage, cost, durations, versions
  .lock           held (flock) by the one process writing the folder

The folder keeps four promises:
  - one writer: the lock is taken before anything else; a second process is refused at once,
    and the OS drops the lock of a killed holder (no stale-file guessing);
  - settings first: the fingerprint of the generation settings is on disk before the first
    request, so a rerun with other settings is refused even after a kill in the first second,
    and a manifest that cannot be read is an error, never "no previous run";
  - every line carries meta.item (the input item's id) and its own usage, so a restarted run
    skips what is done and knows exactly what earlier sessions spent;
  - a line cut short by a kill is removed on reopen.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from generators.core.accounting import add_usage, empty_usage
from generators.core.errors import UsageError
from generators.core.io import dumps, os_error, read_lines
from generators.core.manifest import Manifest, counts
from generators.core.records import Record, stable_id

FILES = {"kept": "data.jsonl", "rejected": "rejected.jsonl", "error": "errors.jsonl"}
RETRIED = "retried.jsonl"
LOCK = ".lock"


def make_folder(path: Path) -> None:
    """Create `path` (and its parents), with one clear line when the system refuses."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, path) from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"--out {path}: the folder is not writable; choose another --out")


class FolderLock:
    """An exclusive flock on DIR/.lock for the life of the process that holds it (or of a
    `with` block). Every command that writes a run folder takes it first: the stages (through
    the skeleton) and `gen train`."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise os_error(exc, self.path) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(self._fd)
            raise UsageError(f"--out {folder} is in use by another run (PID {holder}); wait for it to "
                             "end, or choose another --out") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_folder(path: Path) -> FolderLock:
    """Create --out if needed and take its lock: a second writer is refused with one line (exit 2)."""
    make_folder(path)
    return FolderLock(path)


def check_fingerprint(folder: Path, previous: dict[str, Any], fingerprint: str) -> None:
    old = previous.get("fingerprint")
    if old and old != fingerprint:
        raise UsageError(f"--out {folder} holds a {previous.get('stage', '?')} run made with "
                         "other settings; rerun with the same settings, or use a new --out folder")


def _repair_tail(path: Path) -> None:
    """Drop a final line that a kill cut short (no trailing newline), reading the file backwards
    in small pieces rather than whole."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(end - 1)
        if handle.read(1) == b"\n":
            return
        cut = 0
        while end > 0:
            start = max(0, end - (1 << 16))
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                cut = start + found + 1
                break
            end = start
        handle.truncate(cut)


def item_of(line: dict[str, Any]) -> str | None:
    """The input item a stored line belongs to (meta.item on records, item on error lines)."""
    return (line.get("meta") or {}).get("item") or line.get("item")


def usage_of(line: dict[str, Any], at: tuple[str, ...] = ("meta", "usage")) -> dict[str, Any] | None:
    """The usage a stored line carries: at `at` on records (meta.usage, or meta.curation.usage
    where a record keeps the usage of the stage that made it), `usage` on error lines."""
    if "item" in line and "messages" not in line:
        return line.get("usage")
    node: Any = line
    for key in at:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _put(record: Record, at: tuple[str, ...], value: dict[str, Any]) -> None:
    node = record
    for key in at[:-1]:
        node = node.setdefault(key, {})
    node[at[-1]] = value


class RunStore:
    """The lines and manifest of one stage. The caller holds the folder's FolderLock (the stage
    skeleton takes it first); `usage_at` is where records keep their usage."""

    def __init__(self, out_dir: str | Path, *, stage: str, settings: dict[str, Any],
                 retry_errors: bool = False, usage_at: tuple[str, ...] = ("meta", "usage")) -> None:
        self.dir = Path(out_dir)
        self.usage_at = usage_at
        self.stage = stage
        self.settings = settings
        self.fingerprint = stable_id(stage, settings)
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.done: set[str] = set()
        self.unreadable = 0  # lines of our own files passed over on resume (nested too deeply, too long)
        self.usage = empty_usage()  # what every line written so far records
        make_folder(self.dir)
        self.manifest = Manifest(self.dir, stage)
        check_fingerprint(self.dir, self.manifest.previous, self.fingerprint)
        self._scan(retry_errors)
        try:
            self._handles = {kind: (self.dir / name).open("a", encoding="utf-8") for kind, name in FILES.items()}
        except OSError as exc:
            raise os_error(exc, self.dir) from None

    # -- opening ---------------------------------------------------------------------------
    def _scan(self, retry_errors: bool) -> None:
        for kind, name in FILES.items():
            path = self.dir / name
            _repair_tail(path)
            if kind == "error" and retry_errors and path.exists():
                self._retire_errors(path)
                continue
            for _, obj in read_lines(path, on_bad=self._bad_line):
                item = item_of(obj)
                if item:
                    self.done.add(item)
                self.counts[kind] += 1
                add_usage(self.usage, usage_of(obj, self.usage_at))
                if kind == "rejected":
                    self.reasons[obj.get("reject", "?")] += 1
        _repair_tail(self.dir / RETRIED)
        for _, obj in read_lines(self.dir / RETRIED):
            add_usage(self.usage, usage_of(obj, self.usage_at))

    def _retire_errors(self, path: Path) -> None:
        """--retry-errors: failed items go back to the queue; their lines move to retried.jsonl,
        where their usage still counts."""
        with (self.dir / RETRIED).open("a", encoding="utf-8") as retired:
            for _, obj in read_lines(path):
                retired.write(dumps(obj) + "\n")
            retired.flush()
            os.fsync(retired.fileno())
        path.unlink()

    def iter_lines(self, kind: str) -> Iterator[dict[str, Any]]:
        """The lines of one file ("kept", "rejected" or "error") written so far, decoded; a line
        that cannot be read is passed over (the scan at opening counts it)."""
        for _, obj in read_lines(self.dir / FILES[kind]):
            yield obj

    def _bad_line(self) -> None:
        """A line of our own files that cannot be read (nested too deeply, over --max-line-bytes):
        passed over and counted (the manifest's counts.unreadable_lines), so it never stops a resume."""
        self.unreadable += 1

    # -- writing ---------------------------------------------------------------------------
    def _append(self, kind: str, obj: dict[str, Any]) -> None:
        handle = self._handles[kind]
        try:
            handle.write(dumps(obj) + "\n")
            handle.flush()  # a killed process loses nothing already written
        except OSError as exc:
            raise os_error(exc, self.dir / FILES[kind]) from None
        self.counts[kind] += 1
        add_usage(self.usage, usage_of(obj, self.usage_at))

    def keep(self, item: str, record: Record, usage: dict[str, Any] | None = None) -> None:
        record.setdefault("meta", {})["item"] = item
        if usage is not None:
            _put(record, self.usage_at, usage)
        self._append("kept", record)
        self.done.add(item)

    def reject(self, item: str, record: Record, reason: str, usage: dict[str, Any] | None = None) -> None:
        record.setdefault("meta", {})["item"] = item
        if usage is not None:
            _put(record, self.usage_at, usage)
        record["reject"] = reason
        self._append("rejected", record)
        self.reasons[reason] += 1
        self.done.add(item)

    def error(self, item: str, *, source: str, input: Any, reason: str, status: int | None = None,
              last_response: str | None = None, partial: Any = None,
              usage: dict[str, Any] | None = None) -> None:
        line = {"item": item, "source": source, "input": input, "error": reason, "status": status,
                "last_response": last_response, "time": round(time.time(), 3)}
        if partial is not None:
            line["partial"] = partial
        if usage is not None:
            line["usage"] = usage
        self._append("error", line)
        self.done.add(item)

    # -- manifest and closing --------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """What the store knows for the manifest: fingerprint, settings and counts."""
        tally = counts(self.counts["kept"], self.counts["rejected"], self.counts["error"], self.reasons)
        if self.unreadable:
            tally["unreadable_lines"] = self.unreadable
        return {"fingerprint": self.fingerprint, "settings": self.settings, "counts": tally}

    def write_manifest(self, *, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        """Atomically (re)write manifest.json with settings, counts and whatever the stage adds."""
        return self.manifest.write(status, {**self.fields(), **extra})

    def close(self) -> None:
        for handle in self._handles.values():
            try:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
            except OSError:
                pass

