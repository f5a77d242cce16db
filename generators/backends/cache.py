"""A response cache shared across runs, so a rerun of the same command sends no new requests.

SQLite in WAL mode: one file, safe for several processes, no server. The key is a hash of
backend, model, messages and sampling settings (seed included), plus the endpoint (the
redacted server URL) for a server backend; a temperature > 0 answer is cached too, because
the point is to never pay twice for the same request. Writes are committed in small batches
(every 0.2 s or 64 answers) to keep the hot path cheap; a crash loses at most those few
answers, never a record.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from generators.backends.base import ChatRequest, ChatResult

COMMIT_EVERY_S = 0.2
COMMIT_EVERY_N = 64


def cache_key(backend: str, model: str, request: ChatRequest, endpoint: str | None = None) -> str:
    """The request's key; `endpoint` goes in only when given, so local backends keep their keys."""
    parts: list[object] = [backend, request.model or model, request.messages, request.sampling.describe()]
    if endpoint is not None:
        parts.append(endpoint)
    blob = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                         "created REAL NOT NULL)")
        self._pending: list[tuple[str, str, float]] = []
        self._last_commit = time.monotonic()

    def get(self, key: str) -> ChatResult | None:
        row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            for pending_key, value, _ in self._pending:
                if pending_key == key:
                    row = (value,)
                    break
        if row is None:
            return None
        return ChatResult.from_json(json.loads(row[0]))

    def put(self, key: str, result: ChatResult) -> None:
        self._pending.append((key, json.dumps(result.to_json(), ensure_ascii=False), time.time()))
        if len(self._pending) >= COMMIT_EVERY_N or time.monotonic() - self._last_commit > COMMIT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", pending)
            except BaseException:
                self._db.execute("ROLLBACK")  # else every later flush fails inside this transaction
                raise
            self._db.execute("COMMIT")
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._db.close()
