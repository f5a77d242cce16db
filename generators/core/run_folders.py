"""What every reader of finished run folders (export, report, view) agrees on: which folder is a
run, the order of rounds and of the runs inside a round, and what a manifest says about its run.

A run folder holds manifest.json (any stage). A rounds folder holds rounds in natural order
(round2 < round10), each a run folder or a folder of run folders (round0/aug, round0/cur, ...).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from generators.core.errors import UsageError


def natural_key(name: str) -> list[Any]:
    """Sort key that orders the numbers inside names by value: round2 before round10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def is_run_folder(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def child_folders(path: Path) -> list[Path]:
    """The visible subfolders of `path`, in natural order."""
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


def round_runs(folder: Path, label: str) -> list[tuple[str, Path]]:
    """(name, folder) of each run of one round: the round itself when it is a run folder, else
    its subfolders that are ("round1/curate"), in natural order."""
    if is_run_folder(folder):
        return [(label, folder)]
    return [(f"{label}/{child.name}", child) for child in child_folders(folder) if is_run_folder(child)]


def find_runs(root: Path) -> tuple[str, list[tuple[str, list[tuple[str, Path]]]]]:
    """("run", [(name, [(name, root)])]) for a run folder, else ("rounds", [(round label,
    round_runs), ...]) for a folder of rounds; a UsageError (one line, exit 2) when there is no
    run at all."""
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder; give a run folder or a folder of rounds")
    if is_run_folder(root):
        return "run", [(root.name, [(root.name, root)])]
    rounds = [(child.name, runs) for child in child_folders(root) if (runs := round_runs(child, child.name))]
    if not rounds:
        raise UsageError(f"{root}: no manifest.json here or in its subfolders; give a run folder "
                         "(from gen selfchat/backtranslate/curate/train) or a folder of them")
    return "rounds", rounds


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
