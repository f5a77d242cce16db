"""What `--input` names: a run folder, a .jsonl file, or a rounds folder (round0/, round1/, ...
as rounds.sh writes them), resolved to the files to read and the run folders whose manifests
tell how the records were made.

Only manifests are read here (never the records), so a wrong --input or --round is refused
before any record is read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generators.core.errors import UsageError
from generators.core.io import read_json
from generators.core.run_folders import round_runs

ROUND = re.compile(r"round(\d+)")
MAX_UPSTREAM = 8  # curate of curate of ...: a chain longer than this is a loop or a mistake


@dataclass
class Run:
    """One run folder that took part in making the exported records."""
    label: str                 # as the card names it: "round1/curate", or the folder name
    path: Path
    manifest: dict[str, Any]
    round: str | None = None

    @property
    def stage(self) -> str:
        return str(self.manifest.get("stage") or "?")


@dataclass
class Source:
    """The files to read and the runs behind them."""
    input: Path
    kind: str                            # "run", "file" or "rounds"
    data: Path                           # kept records: data.jsonl or the file given
    rejected: Path | None                # rejected.jsonl beside it, when there is one
    preferences: Path | None             # prompt/chosen/rejected lines, for --format dpo
    stage: str | None                    # the stage of the run the records come from
    round: str | None = None             # the round they come from (rounds folders)
    runs: list[Run] = field(default_factory=list)          # oldest first
    lineage: list[dict[str, Any]] = field(default_factory=list)  # lineage.json of each round, in order


def manifest_of(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when it is no run folder; unreadable is a UsageError."""
    return read_json(folder / "manifest.json", what="run manifest")


def locate(path: Path, round_number: int | None) -> Source:
    """Resolve --input (and --round) or say in one line why it cannot be exported."""
    if not path.exists():
        raise UsageError(f"--input {path}: no such file or folder; give a run folder, a rounds folder "
                         "or a .jsonl file of records")
    if path.is_file():
        _no_round(path, round_number)
        return _from_file(path)
    manifest = manifest_of(path)
    if manifest is not None:
        _no_round(path, round_number)
        return _from_run(path, manifest)
    return _from_rounds(path, round_number)


def _no_round(path: Path, round_number: int | None) -> None:
    if round_number is not None:
        raise UsageError(f"--round {round_number}: {path} is not a rounds folder (round0/, round1/, ...); "
                         "drop --round or give the rounds folder")


def _beside(folder: Path, name: str) -> Path | None:
    candidate = folder / name
    return candidate if candidate.is_file() else None


def _from_file(path: Path) -> Source:
    folder = path.parent
    manifest = manifest_of(folder) if path.name == "data.jsonl" else None
    runs = upstream(Run(folder.resolve().name, folder, manifest)) if manifest is not None else []
    return Source(input=path, kind="file", data=path,
                  rejected=_beside(folder, "rejected.jsonl") if path.name == "data.jsonl" else None,
                  preferences=path, stage=manifest.get("stage") if manifest else None, runs=runs)


def _from_run(folder: Path, manifest: dict[str, Any]) -> Source:
    run = Run(folder.resolve().name, folder, manifest)
    return Source(input=folder, kind="run", data=folder / "data.jsonl",
                  rejected=_beside(folder, "rejected.jsonl"), preferences=_beside(folder, "preferences.jsonl"),
                  stage=run.stage, runs=upstream(run))


def upstream(run: Run) -> list[Run]:
    """The run and the runs its input came from (curate's input.path), oldest first, so a curate
    folder's card also names the model and prompt that wrote the candidates."""
    chain, seen = [run], {run.path.resolve()}
    current = run
    for _ in range(MAX_UPSTREAM):
        described = current.manifest.get("input")
        given = described.get("path") if isinstance(described, dict) else None
        if not isinstance(given, str) or not given:
            break
        folder = Path(given).parent
        if folder.resolve() in seen:
            break
        manifest = manifest_of(folder) if folder.is_dir() else None
        if manifest is None:
            break
        seen.add(folder.resolve())
        current = Run(folder.resolve().name, folder, manifest)
        chain.append(current)
    return list(reversed(chain))


# ---------------------------------------------------------------- rounds folders

def _round_runs(folder: Path, name: str) -> list[Run]:
    """The run folders of one round: the round itself, or its subfolders, in natural order."""
    return [Run(run_name, path, manifest_of(path) or {}, round=name) for run_name, path in round_runs(folder, name)]


def _curate_run(runs: list[Run]) -> Run | None:
    curated = [r for r in runs if r.stage == "curate" and (r.path / "data.jsonl").is_file()]
    return curated[-1] if curated else None


def _from_rounds(root: Path, round_number: int | None) -> Source:
    rounds = sorted((p for p in root.iterdir() if p.is_dir() and ROUND.fullmatch(p.name)),
                    key=lambda p: int(ROUND.fullmatch(p.name).group(1)))  # type: ignore[union-attr]
    if not rounds:
        raise UsageError(f"--input {root}: not a run folder (no manifest.json) nor a rounds folder "
                         "(round0/, round1/, ...); give the folder gen or rounds.sh wrote")
    runs_of = {p.name: _round_runs(p, p.name) for p in rounds}
    with_data = [p for p in rounds if _curate_run(runs_of[p.name])]
    if round_number is not None:
        chosen = next((p for p in rounds if p.name == f"round{round_number}"), None)
        if chosen is None or chosen not in with_data:
            have = ", ".join(ROUND.fullmatch(p.name).group(1) for p in with_data) or "none"  # type: ignore[union-attr]
            what = "no such round" if chosen is None else "no curate run with data.jsonl in it"
            raise UsageError(f"--round {round_number}: {what} under {root}; rounds with curated data: {have}")
    elif with_data:
        chosen = with_data[-1]
    else:
        raise UsageError(f"--input {root}: no round has a curate run with data.jsonl yet; "
                         "run the rounds (./run.sh rounds) or give a run folder")
    last = rounds.index(chosen)
    curated = _curate_run(runs_of[chosen.name])
    assert curated is not None
    runs: list[Run] = []
    for p in rounds[:last + 1]:
        for run in runs_of[p.name]:
            if p is chosen and run.stage == "train":
                continue  # trained on the exported data, not part of making it
            runs.append(run)
    lineage = [dict(read_json(p / "lineage.json", what="lineage file") or {}, folder=p.name)
               for p in rounds[:last + 1] if (p / "lineage.json").is_file()]
    return Source(input=root, kind="rounds", data=curated.path / "data.jsonl",
                  rejected=_beside(curated.path, "rejected.jsonl"),
                  preferences=_beside(curated.path, "preferences.jsonl"),
                  stage="curate", round=chosen.name, runs=runs, lineage=lineage)
