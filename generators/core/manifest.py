"""manifest.json: built here alone, for every stage, for a stage's sub-store, and for `gen train`.

A folder's manifest carries over its history: `duration_s` adds this session's wall time to what
earlier sessions recorded, `sessions` counts them, and `versions` names the packages that shaped
the data. `counts` (kept, rejected, errors, rejected_by_reason) always comes with `reasons`, the
meaning of every reason it names. Whatever else a manifest holds (settings, usage, a stage's own
counters) is passed in by its writer, which never computes these fields itself.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from generators.core.filtering import meanings
from generators.core.io import os_error, read_json, write_json

NAME = "manifest.json"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, {} when there is none; unreadable is a UsageError (never "no run")."""
    return read_json(Path(folder) / NAME, what="run manifest") or {}


def versions(*extra: str) -> dict[str, str]:
    """Python and the versions of the packages that shape the data (plus `extra` ones)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("baleen", "openai", "transformers", "torch", "peft", "vllm", *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def counts(kept: int, rejected: int, errors: int, by_reason: Mapping[str, int]) -> dict[str, Any]:
    """The `counts` block every manifest shares."""
    return {"kept": kept, "rejected": rejected, "errors": errors, "rejected_by_reason": dict(by_reason)}


class Manifest:
    """The manifest.json of one folder, for one session: read once when the session opens the
    folder (the caller holds its lock), then rewritten whole, atomically, at every write."""

    def __init__(self, folder: Path, stage: str, *, extra_versions: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder)
        self.stage = stage
        self.extra_versions = extra_versions
        self.previous = read_manifest(self.folder)
        self.started = time.time()

    def build(self, status: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest: stage and status, the writer's `fields`, and the fields every manifest has."""
        manifest: dict[str, Any] = {"stage": self.stage, "status": status, **fields}
        if isinstance(manifest.get("counts"), dict):
            manifest["reasons"] = meanings(Counter(manifest["counts"].get("rejected_by_reason") or {}))
        manifest["duration_s"] = round(float(self.previous.get("duration_s", 0.0)) + time.time() - self.started, 3)
        manifest["sessions"] = int(self.previous.get("sessions", 0)) + 1
        manifest["versions"] = versions(*self.extra_versions)
        return manifest

    def write(self, status: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Build and write the manifest; returns what was written."""
        manifest = json.loads(json.dumps(self.build(status, fields), default=str))  # paths and the like as text
        try:
            write_json(self.folder / NAME, manifest)
        except OSError as exc:
            raise os_error(exc, self.folder / NAME) from None
        return manifest
