"""Read what to export and keep what the filters let through, counting what each flag dropped.

Records are read strictly (a bad line is one UsageError naming file:line), as every stage reads
its input. Rejected records (--include rejected) come with their reason in `reject`; a rejected
line that is no usable record (a seed refused before any dialog, with no messages) is counted
and passed over rather than failing the export.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from generators.core.errors import UsageError
from generators.core.io import iter_jsonl
from generators.core.records import Record, check_record, stable_id
from generators.outputs.export.source import Source

PREFERENCE_KEYS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class Filters:
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    min_score: float | None = None

    def drops(self, obj: dict[str, Any]) -> str | None:
        """The flag that turns this record (or preference line) away, or None to keep it."""
        if self.tags and obj.get("tag") not in self.tags:
            return "--tag"
        if self.sources and obj.get("source") not in self.sources:
            return "--source"
        if self.min_score is not None:
            score = obj.get("score")
            if not _number(score) or score < self.min_score:
                return "--min-score"
        return None

    def describe(self) -> dict[str, Any]:
        return {"tag": list(self.tags) or None, "source": list(self.sources) or None, "min_score": self.min_score}


@dataclass
class Selection:
    """What passes, as a stream (an export never holds the whole run in memory); the counters
    are complete once `items` has been read to its end."""
    items: Iterator[dict[str, Any]] = field(default_factory=lambda: iter(()))  # records, or dpo lines
    read: int = 0
    dropped: Counter = field(default_factory=Counter)   # by the flag that dropped them
    rejected_included: int = 0
    unusable: int = 0                         # rejected lines with no dialog in them

    def offer(self, item: dict[str, Any], filters: Filters) -> bool:
        self.read += 1
        flag = filters.drops(item)
        if flag:
            self.dropped[flag] += 1
        return flag is None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


THINKING_FIELD = b'"reasoning_content"'


def carries_reasoning(source: Source, include_rejected: bool) -> bool:
    """Whether any record may carry an assistant's thinking (made with --keep-reasoning): a scan of
    the bytes, read in blocks, for the hf format, whose columns are typed before the first row."""
    paths = [source.data] + ([source.rejected] if include_rejected and source.rejected is not None else [])
    for path in paths:
        if not path.is_file():
            continue
        tail = b""
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                if THINKING_FIELD in tail + block:
                    return True
                tail = block[-len(THINKING_FIELD):]
    return False


def records(source: Source, filters: Filters, include_rejected: bool) -> Selection:
    """Kept records (and rejected ones on request) that pass the filters, in file order. Missing
    files are refused here, before the stream starts."""
    if not source.data.is_file():
        raise UsageError(f"--input {source.input}: no {source.data.name} in {source.data.parent}; "
                         "this run has no records to export (did it finish?)")
    if include_rejected and source.rejected is None:
        raise UsageError(f"--include rejected: no rejected.jsonl beside {source.data}; "
                         "give the run folder, or drop --include")
    selection = Selection()

    def stream() -> Iterator[dict[str, Any]]:
        for number, obj in iter_jsonl(source.data):
            record = check_record(obj, f"{source.data}:{number}")
            record.pop("reject", None)
            if selection.offer(record, filters):
                yield record
        if include_rejected and source.rejected is not None:
            for number, obj in iter_jsonl(source.rejected):
                try:
                    record = check_record(obj, f"{source.rejected}:{number}")
                except UsageError:
                    selection.read += 1
                    selection.unusable += 1
                    continue
                record["reject"] = str(record.get("reject") or "?")
                if selection.offer(record, filters):
                    selection.rejected_included += 1
                    yield record

    selection.items = stream()
    return selection


def preferences(source: Source, filters: Filters) -> Selection:
    """Preference lines {prompt, chosen, rejected} for --format dpo, or one line saying there are none."""
    path = source.preferences
    where = source.data.parent if source.kind != "file" else source.data
    if path is None or not path.is_file():
        raise UsageError(f"--format dpo needs preference data and {where} has none: no preferences.jsonl "
                         "(one {prompt, chosen, rejected} object per line); choose another --format")
    selection = Selection()

    def stream() -> Iterator[dict[str, Any]]:
        for number, obj in iter_jsonl(path):
            line = check_preference(obj, f"{path}:{number}", first=selection.read == 0)
            if selection.offer(line, filters):
                yield line

    selection.items = stream()
    return selection


def check_preference(obj: Any, where: str, *, first: bool) -> dict[str, Any]:
    """One preference line: prompt, chosen and rejected, each text or a list of {role, content}.
    `where` is 'file:line'; a first line without them means the file holds no preference data."""
    if not isinstance(obj, dict) or not all(k in obj for k in PREFERENCE_KEYS):
        if first:  # not preference data at all: the same one line as a missing file
            raise UsageError(f"--format dpo needs preference data and {where.rsplit(':', 1)[0]} has none: "
                             "its lines have no prompt, chosen and rejected; choose another --format")
        raise UsageError(f"{where}: a preference line needs prompt, chosen and rejected")
    for key in PREFERENCE_KEYS:
        value = obj[key]
        ok = (isinstance(value, str) and value.strip()) or (
            isinstance(value, list) and value and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in value))
        if not ok:
            raise UsageError(f"{where}: {key} must be text or a list of {{role, content}} messages")
    line: Record = dict(obj)
    line.setdefault("id", stable_id("preference", obj["prompt"], obj["chosen"], obj["rejected"]))
    return line
