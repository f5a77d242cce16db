"""What the three `gen eval` stages share: the generation skeleton (lock, fingerprint, resume,
usage on every line, signals) with the per-item lines in items/ (its `sub_store`), and, once every item is done, a
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
from functools import cached_property
from typing import Any

from generators.core.io import atomic_lines, dumps, read_lines
from generators.core.runner import Item
from generators.core.stage import Stage
from generators.core.store import item_of


class EvalStage(Stage):
    sub_store = "items"
    results_name = "results.jsonl"

    @abc.abstractmethod
    def eval_items(self) -> list[Item]:
        """One Item per evaluated unit of this run's input, in input order."""

    @cached_property
    def work_items(self) -> list[Item]:
        """The items, built once: the skeleton runs them, and RESULTS follows their order."""
        return self.eval_items()

    def items(self) -> list[Item]:
        return self.work_items

    @abc.abstractmethod
    def result_row(self, line: dict[str, Any], rejected: str | None) -> dict[str, Any]:
        """One line of RESULTS from one stored line (`rejected`: its reason, or None)."""

    @abc.abstractmethod
    def metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The metrics of RESULTS."""

    def input_summary(self) -> dict[str, Any]:
        return {}

    def _rows(self) -> list[dict[str, Any]]:
        order = {item.id: position for position, item in enumerate(self.work_items)}
        found: dict[str, dict[str, Any]] = {}
        items = self.store_dir()
        for name, kind in (("data.jsonl", None), ("rejected.jsonl", "rejected")):
            for _, line in read_lines(items / name):
                item = item_of(line)
                if item in order and item not in found:
                    found[item] = self.result_row(line, line.get("reject") if kind else None)
        return [found[item] for item in sorted(found, key=order.__getitem__)]

    def derive(self, status: str) -> dict[str, Any]:
        """Once every item is done: RESULTS and errors.jsonl from items/, and the metrics."""
        fields: dict[str, Any] = {"input": self.input_summary()}
        if status == "complete":
            rows = self._rows()
            atomic_lines(self.out / self.results_name, (dumps(row) for row in rows))
            errors = [dumps(line) for _, line in read_lines(self.store_dir() / "errors.jsonl")]
            atomic_lines(self.out / "errors.jsonl", errors)
            fields["results"] = self.results_name
            fields["metrics"] = self.metrics(rows)
        return fields
