"""Find the runs under a folder without reading their records.

The layouts are those of generators/core/run_folders.py: a run folder (DIR/manifest.json)
or a folder of rounds, each round a run folder or a folder of run folders, in natural order.
report.load.discover reads every record while it looks; the viewer indexes records itself (with
byte offsets), so it only needs the folders and manifests, found here the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generators.core.errors import UsageError
from generators.core.io import read_json
from generators.core.run_folders import ManifestFacts, find_runs


@dataclass
class Run(ManifestFacts):
    name: str            # "round1/curate", or the folder's name for a single run
    round: str           # the round label ("round1"); the folder's name for a single run
    path: Path
    manifest: dict[str, Any]


@dataclass
class Layout:
    kind: str                                  # "run" or "rounds"
    root: Path
    runs: list[Run]
    rounds: list[str]                          # round labels, in order
    lineage: dict[str, dict[str, Any]] = field(default_factory=dict)  # round -> lineage.json

    def runs_of(self, label: str) -> list[Run]:
        return [run for run in self.runs if run.round == label]


def _run(path: Path, name: str, label: str) -> Run:
    return Run(name=name, round=label, path=path,
               manifest=read_json(path / "manifest.json", what="run manifest") or {})


def _lineage(path: Path) -> dict[str, Any] | None:
    """A round's lineage.json (written by rounds.sh); a broken one is only left out, since it
    is a note about the round and no record depends on it."""
    try:
        return read_json(path / "lineage.json", what="lineage file")
    except UsageError:
        return None


def discover(path: Path) -> Layout:
    """The runs under `path`; a UsageError (one line, exit 2) when there are none."""
    kind, found = find_runs(path)
    runs = [_run(folder, name, label) for label, named in found for name, folder in named]
    lineage: dict[str, dict[str, Any]] = {}
    if kind == "rounds":
        for label, _ in found:
            info = _lineage(path / label)
            if info is not None:
                lineage[label] = info
    return Layout(kind, path, runs, [label for label, _ in found], lineage)
