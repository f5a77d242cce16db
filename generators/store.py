"""A run's output folder: append-only JSONL files and a manifest, safe to kill at any moment.

  data.jsonl      kept records
  rejected.jsonl  records a filter turned down, with "reject": reason
  errors.jsonl    items that failed, with the reason and the last response
  manifest.json   settings (no secrets), counts, usage, cost, durations, versions

Every line carries meta.item (the input item's id). Reopening the folder reads those ids
back, so a restarted run skips what is done. A line cut short by a kill is removed on
reopen. A folder made with other generation settings is refused rather than mixed.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from .errors import UsageError
from .records import Record, dumps, stable_id

FILES = {"kept": "data.jsonl", "rejected": "rejected.jsonl", "error": "errors.jsonl"}


def _repair_tail(path: Path) -> None:
    """Drop a final line that a kill cut short (no trailing newline or not JSON)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        handle.truncate(cut)


def _item_of(line: dict[str, Any]) -> str | None:
    return (line.get("meta") or {}).get("item") or line.get("item")


class RunStore:
    def __init__(self, out_dir: str | Path, *, stage: str, settings: dict[str, Any],
                 retry_errors: bool = False) -> None:
        self.dir = Path(out_dir)
        self.stage = stage
        self.settings = settings
        self.fingerprint = stable_id(stage, settings)
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.done: set[str] = set()
        self.previous: dict[str, Any] = {}
        self.started = time.time()
        self._open(retry_errors)

    # -- opening ---------------------------------------------------------------------------
    def _open(self, retry_errors: bool) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"--out {self.dir}: exists and is not a folder; choose another --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            try:
                self.previous = json.loads(manifest.read_text("utf-8"))
            except (OSError, ValueError):
                self.previous = {}
            old = self.previous.get("fingerprint")
            if old and old != self.fingerprint:
                raise UsageError(f"--out {self.dir} holds a {self.previous.get('stage', '?')} run made with "
                                 "other settings; use a new --out folder (or delete this one)")
        for kind, name in FILES.items():
            path = self.dir / name
            _repair_tail(path)
            if kind == "error" and retry_errors and path.exists():
                path.unlink()  # failed items go back to the queue
                continue
            for obj in self.iter_lines(kind):
                item = _item_of(obj)
                if item:
                    self.done.add(item)
                self.counts[kind] += 1
                if kind == "rejected":
                    self.reasons[obj.get("reject", "?")] += 1
        self._handles = {kind: (self.dir / name).open("a", encoding="utf-8") for kind, name in FILES.items()}

    def iter_lines(self, kind: str) -> Iterator[dict[str, Any]]:
        """The lines of one file ("kept", "rejected" or "error") written so far, decoded."""
        path = self.dir / FILES[kind]
        if not path.exists():
            return
        with path.open("r", encoding="utf-8") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def iter_kept(self) -> Iterator[Record]:
        """Records already kept by an earlier session (to prime dedup state)."""
        return self.iter_lines("kept")

    # -- writing ---------------------------------------------------------------------------
    def _append(self, kind: str, obj: dict[str, Any]) -> None:
        handle = self._handles[kind]
        handle.write(dumps(obj) + "\n")
        handle.flush()  # a killed process loses nothing already written
        self.counts[kind] += 1

    def keep(self, item: str, record: Record) -> None:
        record.setdefault("meta", {})["item"] = item
        self._append("kept", record)
        self.done.add(item)

    def reject(self, item: str, record: Record, reason: str) -> None:
        record.setdefault("meta", {})["item"] = item
        record["reject"] = reason
        self._append("rejected", record)
        self.reasons[reason] += 1
        self.done.add(item)

    def error(self, item: str, *, source: str, input: Any, reason: str, status: int | None = None,
              last_response: str | None = None, partial: Any = None) -> None:
        line = {"item": item, "source": source, "input": input, "error": reason, "status": status,
                "last_response": last_response, "time": round(time.time(), 3)}
        if partial is not None:
            line["partial"] = partial
        self._append("error", line)
        self.done.add(item)

    # -- closing ---------------------------------------------------------------------------
    def write_manifest(self, *, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        """Atomically (re)write manifest.json with settings, counts and whatever the stage adds."""
        prior_duration = float(self.previous.get("duration_s", 0.0)) if self.previous else 0.0
        manifest = {
            "stage": self.stage, "status": status, "fingerprint": self.fingerprint,
            "settings": self.settings,
            "counts": {"kept": self.counts["kept"], "rejected": self.counts["rejected"],
                       "errors": self.counts["error"], "rejected_by_reason": dict(self.reasons)},
            "duration_s": round(prior_duration + time.time() - self.started, 3),
            "sessions": int(self.previous.get("sessions", 0)) + 1 if self.previous else 1,
            "versions": versions(),
            **extra,
        }
        tmp = self.dir / f".manifest.json.{os.getpid()}"
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
        tmp.replace(self.dir / "manifest.json")
        return manifest

    def close(self) -> None:
        for handle in self._handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()


def versions(*extra: str) -> dict[str, str]:
    """Python and the versions of the packages that shape the data (plus `extra` ones), for manifests."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("baleen", "openai", "transformers", "torch", "peft", "vllm", *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
