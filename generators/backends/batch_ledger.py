"""What the Batch API lifecycle (http_batch.py) keeps in the run folder, so that no request is paid for twice.

`batches.jsonl` is appended (flushed and synced) at each step, before the next one starts:

    {"event": "uploaded",  "file": ID, "custom_ids": [...], "at": ...}   the input file exists
    {"event": "submitted", "batch": ID, "file": ID, "lines": N, "at": ...}  a batch runs it
    {"event": "ended", "batch": ID, "status": ..., "counts": {...}, "output_file": ID,
     "error_file": ID, "reason": ..., "at": ...}                         its files are downloaded
    {"event": "abandoned", "file": ID, "at": ...}                       an upload no batch ran

`batches/BATCH.output.jsonl` and `batches/BATCH.errors.jsonl` are the downloaded files, kept so a
rerun reads answers from disk instead of the server. A rerun reads both to learn, per request
key, the latest attempt and the batch that holds it.
"""
from __future__ import annotations

import calendar
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from generators.core.io import dumps, os_error, read_lines
from generators.backends.batch_lines import split_custom_id

LEDGER = "batches.jsonl"
FOLDER = "batches"
KINDS = ("output", "errors")


@dataclass
class BatchRecord:
    id: str
    file: str
    lines: int
    status: str = "submitted"
    counts: dict[str, int] = field(default_factory=dict)
    output_file: str | None = None
    error_file: str | None = None
    reason: str | None = None
    ended: bool = False


class BatchLedger:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LEDGER
        self.folder = Path(run_dir) / FOLDER
        self.files: dict[str, list[str]] = {}  # uploaded file id -> its custom_ids
        self.uploaded_at: dict[str, float] = {}  # uploaded file id -> when (seconds since the epoch)
        self.batches: dict[str, BatchRecord] = {}  # in submission order
        self._file_batch: dict[str, str] = {}
        self._abandoned: set[str] = set()
        self._latest: dict[str, tuple[int, str]] = {}  # key -> (attempt, batch) of its newest submitted line
        self._attempts: dict[str, int] = {}  # key -> highest attempt uploaded (submitted or not)
        self._handle: IO[str] | None = None

    # -- reading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Read what earlier sessions recorded (a line cut by a kill is passed over)."""
        for _, obj in read_lines(self.path):
            event = obj.get("event")
            if event == "uploaded" and isinstance(obj.get("custom_ids"), list):
                self._note_upload(str(obj.get("file")), [str(c) for c in obj["custom_ids"]])
                self.uploaded_at[str(obj.get("file"))] = _epoch(obj.get("at"))
            elif event == "submitted" and obj.get("file") in self.files:
                self._note_batch(str(obj.get("batch")), str(obj["file"]))
            elif event == "ended" and obj.get("batch") in self.batches:
                self._note_end(str(obj["batch"]), obj)
            elif event == "abandoned":
                self._abandoned.add(str(obj.get("file")))

    def latest(self, key: str) -> tuple[int, str] | None:
        """(attempt, batch id) of the newest submitted line for this request key."""
        return self._latest.get(key)

    def next_attempt(self, key: str) -> int:
        """An attempt number no line for this key has used yet."""
        return self._attempts.get(key, -1) + 1

    def orphans(self) -> list[str]:
        """Uploaded files with no recorded batch (a kill between upload and the batch's record)."""
        return [f for f in self.files if f not in self._file_batch and f not in self._abandoned]

    def local(self, batch_id: str, kind: str) -> Path:
        return self.folder / f"{batch_id}.{kind}.jsonl"

    def index(self, batch_id: str) -> dict[str, tuple[Path, int]]:
        """custom_id -> (downloaded file, byte offset) of its line, over both of a batch's files."""
        found: dict[str, tuple[Path, int]] = {}
        for kind in KINDS:
            path = self.local(batch_id, kind)
            for offset, obj in read_lines(path):
                cid = obj.get("custom_id")
                if isinstance(cid, str) and (cid not in found or kind == "output"):
                    found[cid] = (path, offset)
        return found

    @staticmethod
    def read_at(path: Path, offset: int) -> dict[str, Any]:
        with path.open("rb") as handle:
            handle.seek(offset)
            return json.loads(handle.readline())

    # -- writing -------------------------------------------------------------------------------
    def uploaded(self, file_id: str, custom_ids: list[str]) -> None:
        self._append({"event": "uploaded", "file": file_id, "custom_ids": custom_ids})
        self._note_upload(file_id, custom_ids)

    def submitted(self, batch_id: str, file_id: str) -> None:
        self._append({"event": "submitted", "batch": batch_id, "file": file_id,
                      "lines": len(self.files.get(file_id, []))})
        self._note_batch(batch_id, file_id)

    def ended(self, batch_id: str, *, status: str, counts: dict[str, int], output_file: str | None,
              error_file: str | None, reason: str | None) -> None:
        obj = {"event": "ended", "batch": batch_id, "status": status, "counts": counts,
               "output_file": output_file, "error_file": error_file, "reason": reason}
        self._append(obj)
        self._note_end(batch_id, obj)

    def abandoned(self, file_id: str) -> None:
        self._append({"event": "abandoned", "file": file_id})
        self._abandoned.add(file_id)

    @contextmanager
    def download(self, batch_id: str, kind: str) -> Iterator[IO[bytes]]:
        """A file to write a downloaded batch file into; it appears under its name only whole."""
        path = self.local(batch_id, kind)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise os_error(exc, path) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    # -- inside --------------------------------------------------------------------------------
    def _append(self, obj: dict[str, Any]) -> None:
        obj["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a", encoding="utf-8")
            self._handle.write(dumps(obj) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise os_error(exc, self.path) from None

    def _note_upload(self, file_id: str, custom_ids: list[str]) -> None:
        self.files[file_id] = custom_ids
        for cid in custom_ids:
            parts = split_custom_id(cid)
            if parts is not None and parts[1] > self._attempts.get(parts[0], -1):
                self._attempts[parts[0]] = parts[1]

    def _note_batch(self, batch_id: str, file_id: str) -> None:
        custom_ids = self.files[file_id]
        self.batches[batch_id] = BatchRecord(batch_id, file_id, len(custom_ids))
        self._file_batch[file_id] = batch_id
        for cid in custom_ids:
            parts = split_custom_id(cid)
            if parts is None:
                continue
            seen = self._latest.get(parts[0])
            if seen is None or parts[1] >= seen[0]:
                self._latest[parts[0]] = (parts[1], batch_id)

    def _note_end(self, batch_id: str, obj: dict[str, Any]) -> None:
        record = self.batches[batch_id]
        record.status = str(obj.get("status") or "ended")
        record.counts = dict(obj.get("counts") or {})
        record.output_file, record.error_file = obj.get("output_file"), obj.get("error_file")
        record.reason = obj.get("reason")
        record.ended = True


def _epoch(stamp: Any) -> float:
    """Seconds since the epoch of a ledger time stamp; 0 for an unreadable one."""
    try:
        return float(calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0
