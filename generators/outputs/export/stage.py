"""One export from start to end: locate, read and filter, split, shape, write DEST, push.

Records stream from the input to the split files (memory stays flat however big the run);
the card and provenance.json come last, when the counts are known. Every way it can fail on the
user's input (no such input, nothing selected, no preference data, a DEST in the way) is a
UsageError that leaves DEST as it was: it appears whole or not at all (write.staged).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generators.core.errors import UsageError
from generators.outputs.export import card, formats, hub, provenance, select, split, write
from generators.outputs.export.formats import Format
from generators.outputs.export.source import Source, locate


@dataclass(frozen=True)
class ExportSettings:
    input: Path
    format: Format
    out: Path
    filters: select.Filters = field(default_factory=select.Filters)
    include_rejected: bool = False
    splits: tuple[tuple[str, float], ...] = split.DEFAULT
    seed: int = 0
    round: int | None = None
    tag_texts: dict[str, str] | None = None     # --with-tags: tag → system sentence
    force: bool = False
    repo: str | None = None                     # --push-to-hub
    private: bool = False

    def describe(self) -> dict[str, Any]:
        """The export's own settings, for provenance.json and the card."""
        return {"format": self.format.name, "filters": self.filters.describe(),
                "include_rejected": self.include_rejected, "split": dict(self.splits), "seed": self.seed,
                "round": self.round, "tag_texts": self.tag_texts, "push_to_hub": self.repo}


@dataclass
class Result:
    out: Path
    format: str
    splits: dict[str, int]
    dropped: Counter = field(default_factory=Counter)
    skipped_no_answer: int = 0
    url: str | None = None

    def summary(self) -> str:
        """The one line the command prints: records per split, where, and what was left out."""
        per_split = ", ".join(f"{n:,} {name}" for name, n in self.splits.items())
        parts = [f"export: {per_split} records ({self.format}) in {self.out}"]
        if self.dropped:
            parts.append("dropped " + ", ".join(f"{n:,} by {flag}" for flag, n in self.dropped.items()))
        if self.skipped_no_answer:
            parts.append(f"skipped {self.skipped_no_answer:,} without an answer")
        if self.url:
            parts.append(f"pushed to {self.url}")
        return "; ".join(parts)


def _provenance_line(item: dict[str, Any], source: Source, split_name: str, line: int) -> dict[str, Any]:
    keep = {k: item.get(k) for k in ("id", "source", "tag", "score", "score_expected", "reject") if k in item}
    return {"split": split_name, "line": line, **keep, **provenance.record_columns(item, source)}


def hf_columns(include_rejected: bool) -> list[str]:
    return ["id", "source", "tag", "messages", "score", "score_expected", "reason",
            *(["reject"] if include_rejected else []), *provenance.RECORD_COLUMNS]


def export(settings: ExportSettings, token: str | None = None) -> Result:
    """Run the export; `token` is the one hub.check() found when --push-to-hub is given."""
    write.check_dest(settings.out, force=settings.force, input_path=settings.input)
    source = locate(settings.input, settings.round)
    fmt = settings.format
    selection = (select.preferences(source, settings.filters) if fmt.preferences
                 else select.records(source, settings.filters, settings.include_rejected))
    options = formats.Options(tag_texts=settings.tag_texts, include_rejected=settings.include_rejected)
    skipped = thinking = 0
    reasoning = fmt.parquet and select.carries_reasoning(source, settings.include_rejected)
    with write.staged(settings.out, force=settings.force) as tmp:
        files = write.SplitFiles(tmp, hf_columns(settings.include_rejected) if fmt.parquet else None, reasoning)
        sidecar = None if fmt.parquet else write.JsonlFile(tmp / "provenance.jsonl")
        try:
            for item in selection.items:
                row = fmt.row(item, options)
                if row is None:
                    skipped += 1
                    continue
                name = split.assign(str(item["id"]), settings.splits, settings.seed)
                thinking += any(formats.with_thinking(m) for m in item.get("messages") or [])
                if fmt.parquet:
                    files.add(name, {**row, **provenance.record_columns(item, source)})
                else:
                    line = files.add(name, row)
                    sidecar.add(_provenance_line(item, source, name, line))  # type: ignore[union-attr]
        finally:
            written = files.close()
            if sidecar is not None:
                sidecar.close()
        skipped += selection.unusable
        exported = sum(written.values())
        if exported == 0:  # DEST is untouched: the temp folder goes with this error
            dropped = ", ".join(f"{n} by {flag}" for flag, n in selection.dropped.items())
            raise UsageError(f"nothing to export from {source.data}: {selection.read} read"
                             + (f", dropped {dropped}" if dropped else "")
                             + (f", {skipped} without an answer" if skipped else "")
                             + "; loosen --tag/--source/--min-score or check the input")
        counts = {"read": selection.read, "exported": exported,
                  "splits": {name: written.get(name, 0) for name, _ in settings.splits},
                  "dropped": dict(selection.dropped), "skipped_no_answer": skipped,
                  "rejected_included": selection.rejected_included}
        if thinking:  # only then, so exports without thinking keep the shape they had
            counts["with_reasoning"] = thinking
        doc = provenance.document(source, export=settings.describe(), counts=counts)
        write.json_file(tmp / "provenance.json", doc)
        write.text(tmp / "README.md", card.render(
            doc, fmt=fmt.name, files={name: files.pattern(name) for name, _ in settings.splits if written.get(name)},
            load_from=settings.repo or str(settings.out), checksums=files.checksums()))
    result = Result(out=settings.out, format=fmt.name, splits=counts["splits"],
                    dropped=selection.dropped, skipped_no_answer=skipped)
    if settings.repo:
        assert token is not None
        result.url = hub.push(settings.out, settings.repo, token, private=settings.private)
    return result
