"""Find the runs under a folder and gather what the report shows, streaming the JSONL files.

Layouts:
  run folder      DIR/manifest.json (any stage)
  rounds folder   DIR/<round>/ where each round is a run folder, or a folder of run folders
                  (round0/aug, round0/cur, ...). Rounds are ordered naturally (round2 < round10).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from generators.core.io import read_json, read_lines
from generators.core.run_folders import ManifestFacts, find_runs


@dataclass
class RunData(ManifestFacts):
    name: str                       # label in the report ("round1/cur" or "cur")
    path: Path
    manifest: dict[str, Any]
    scores: list[int] = field(default_factory=list)           # every record with an integer score
    kept_scores: list[int] = field(default_factory=list)
    expected: list[float] = field(default_factory=list)
    instruction_words: list[int] = field(default_factory=list)  # kept records
    output_words: list[int] = field(default_factory=list)       # kept records
    kept_ids: set[str] = field(default_factory=set)
    kept: int = 0
    rejected: int = 0
    errors: int = 0
    reasons: Counter = field(default_factory=Counter)
    bad_lines: int = 0

    @property
    def duration(self) -> float | None:
        """Seconds from the manifest: duration_s (generation stages), else durations.this_session_s (train)."""
        value = self.manifest.get("duration_s")
        if value is None:
            value = (self.manifest.get("durations") or {}).get("this_session_s")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def mean_score(self, kept_only: bool = False) -> float | None:
        values = self.kept_scores if kept_only else self.scores
        return sum(values) / len(values) if values else None


@dataclass
class Layout:
    kind: str                                # "run" or "rounds"
    rounds: list[tuple[str, list[RunData]]]  # one entry for a run folder


def discover(path: Path) -> Layout:
    kind, rounds = find_runs(path)
    return Layout(kind, [(label, [load_run(folder, name) for name, folder in runs]) for label, runs in rounds])


def _lines(path: Path, run: RunData) -> Iterator[dict[str, Any]]:
    for _, obj in read_lines(path, on_bad=lambda: setattr(run, "bad_lines", run.bad_lines + 1)):
        yield obj


def _words(record: dict[str, Any], role: str, first_only: bool) -> int | None:
    texts = [m.get("content") or "" for m in record.get("messages") or []
             if isinstance(m, dict) and m.get("role") == role]
    if not texts:
        return None
    return len((texts[0] if first_only else " ".join(texts)).split())


def load_run(path: Path, name: str) -> RunData:
    manifest = read_json(path / "manifest.json", what="run manifest") or {}
    run = RunData(name=name, path=path, manifest=manifest)
    for record in _lines(path / "data.jsonl", run):
        run.kept += 1
        run.kept_ids.add(str(record.get("id")))
        _score(run, record, kept=True)
        for words, target in ((_words(record, "user", True), run.instruction_words),
                              (_words(record, "assistant", False), run.output_words)):
            if words is not None:
                target.append(words)
    for record in _lines(path / "rejected.jsonl", run):
        run.rejected += 1
        run.reasons[str(record.get("reject", "?"))] += 1
        _score(run, record, kept=False)
    run.errors = sum(1 for _ in _lines(path / "errors.jsonl", run))
    if not run.reasons:  # a stage that does not keep rejected.jsonl: the manifest's counts
        run.reasons.update((manifest.get("counts") or {}).get("rejected_by_reason") or {})
    return run


def _score(run: RunData, record: dict[str, Any], kept: bool) -> None:
    score = record.get("score")
    if isinstance(score, int) and not isinstance(score, bool):
        run.scores.append(score)
        if kept:
            run.kept_scores.append(score)
    expected = record.get("score_expected")
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        run.expected.append(float(expected))
