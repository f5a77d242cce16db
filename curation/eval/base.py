"""What the three `gen eval` stages share: the generation skeleton (lock, fingerprint, resume,
usage on every line, signals) with the per-item lines in ITEMS/, and, once every item is done, a
derived results file and a manifest with the metrics at the top of --out.

Folder (--out DIR):
  items/          the skeleton's RunStore: data.jsonl (one line per evaluated item), rejected.jsonl
                  (items without a usable answer, e.g. unparsed_score), errors.jsonl (failed
                  requests), manifest.json. Append-only: this is what a rerun resumes from.
  RESULTS         the stage's results (predictions.jsonl, scores.jsonl or judgements.jsonl), one
                  line per item of this run's input, in input order, rewritten whole at the end
  errors.jsonl    copy of items/errors.jsonl (rerun with --retry-errors)
  manifest.json   settings, input, counts, metrics, usage and cost
The metrics are computed from RESULTS alone, so anyone can recompute them from that file.
"""
from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any

from generators.core.io import atomic_lines, dumps, read_json, read_lines, write_json
from generators.core.stage import Stage
from generators.core.store import item_of, versions

ITEMS = "items"


class EvalStage(Stage):
    results_name = "results.jsonl"

    def __init__(self, opts: Any, out: Path, *, adapter: str | None = None) -> None:
        super().__init__(opts, out, adapter=adapter)
        self.wall_start = time.time()
        self.order: dict[str, int] = {}  # item id -> input position, for this run's input

    def store_dir(self) -> Path:
        return self.out / ITEMS

    def settings(self) -> dict[str, Any]:
        self.previous = read_json(self.out / "manifest.json", what="run manifest") or {}
        return self.eval_settings()

    @abc.abstractmethod
    def eval_settings(self) -> dict[str, Any]:
        """The fingerprint: everything that changes an item's line."""

    @abc.abstractmethod
    def result_row(self, line: dict[str, Any], rejected: str | None) -> dict[str, Any]:
        """One line of RESULTS from one stored line (`rejected`: its reason, or None)."""

    @abc.abstractmethod
    def metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The metrics of RESULTS."""

    def input_summary(self) -> dict[str, Any]:
        return {}

    def _rows(self) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        items = self.store_dir()
        for name, kind in (("data.jsonl", None), ("rejected.jsonl", "rejected")):
            for _, line in read_lines(items / name):
                item = item_of(line)
                if item in self.order and item not in found:
                    found[item] = self.result_row(line, line.get("reject") if kind else None)
        return [found[item] for item in sorted(found, key=self.order.__getitem__)]

    def on_end(self, status: str, manifest: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "stage": self.name, "status": status, "fingerprint": manifest["fingerprint"],
            "settings": manifest.get("settings"), "input": self.input_summary(),
            "counts": manifest.get("counts"), "run": manifest.get("run"), "usage": manifest.get("usage"),
            **({"backend": manifest["backend"]} if manifest.get("backend") else {}),
            "duration_s": round(float(self.previous.get("duration_s", 0.0)) + time.time() - self.wall_start, 3),
            "sessions": int(self.previous.get("sessions", 0)) + 1, "versions": versions()}
        if status == "complete":
            rows = self._rows()
            atomic_lines(self.out / self.results_name, (dumps(row) for row in rows))
            errors = [dumps(line) for _, line in read_lines(self.store_dir() / "errors.jsonl")]
            atomic_lines(self.out / "errors.jsonl", errors)
            body["results"] = self.results_name
            body["metrics"] = self.metrics(rows)
        write_json(self.out / "manifest.json", body)
        return body
