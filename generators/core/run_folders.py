"""What every reader of finished run folders (export, report, view) agrees on: which folder is a
run, the order of rounds and of the runs inside a round, and what a manifest says about its run.

A run folder holds manifest.json (any stage). A rounds folder holds rounds in natural order
(round2 < round10), each a run folder or a folder of run folders (round0/aug, round0/cur, ...).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def natural_key(name: str) -> list[Any]:
    """Sort key that orders the numbers inside names by value: round2 before round10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def is_run_folder(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def child_folders(path: Path) -> list[Path]:
    """The visible subfolders of `path`, in natural order."""
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


class ManifestFacts:
    """What any reader of run folders asks a manifest (report, view, export)."""

    manifest: dict[str, Any]

    @property
    def stage(self) -> str:
        return str(self.manifest.get("stage", "?"))

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "?"))

    @property
    def is_train(self) -> bool:
        """A `gen train` run: a model, no records to keep or reject."""
        return self.stage == "train"

    @property
    def is_eval(self) -> bool:
        """A `gen eval` run: metrics in its manifest, no records of its own."""
        return self.stage.startswith("eval-")

    @property
    def has_records(self) -> bool:
        """A run whose data.jsonl / rejected.jsonl hold records made or curated (not train, not eval)."""
        return not self.is_train and not self.is_eval

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics") or {}

    @property
    def usage(self) -> dict[str, Any]:
        return self.manifest.get("usage") or {}
