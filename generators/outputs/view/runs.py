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
from generators.core.run_folders import ManifestFacts, child_folders, is_run_folder


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
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder; give a run folder or a folder of rounds")
    if is_run_folder(path):
        return Layout("run", path, [_run(path, path.name, path.name)], [path.name])
    runs: list[Run] = []
    rounds: list[str] = []
    lineage: dict[str, dict[str, Any]] = {}
    for child in child_folders(path):
        if is_run_folder(child):
            found = [_run(child, child.name, child.name)]
        else:
            found = [_run(grand, f"{child.name}/{grand.name}", child.name)
                     for grand in child_folders(child) if is_run_folder(grand)]
        if found:
            runs += found
            rounds.append(child.name)
            info = _lineage(child)
            if info is not None:
                lineage[child.name] = info
    if not runs:
        raise UsageError(f"{path}: no manifest.json here or in its subfolders; give a run folder "
                         "(from gen selfchat/backtranslate/curate/train) or a folder of them")
    return Layout("rounds", path, runs, rounds, lineage)
