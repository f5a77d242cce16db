"""Judging stored lines again: lines move between data.jsonl and rejected.jsonl in input order,
and a kill at any point of the rewrite loses and doubles nothing."""
from __future__ import annotations

import json
from pathlib import Path

from generators.core.io import write_json
from generators.core.records import stable_id
from generators.core.rejudge import REJUDGE, SUFFIX, Rejudge, finish_pending, rejudge_folder

SETTINGS = {"model": "m"}


def write(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def folder_with_lines(tmp_path: Path, filters: dict) -> Path:
    write(tmp_path / "data.jsonl", [{"id": "b", "text": "same"}, {"id": "c", "text": "long text"}])
    write(tmp_path / "rejected.jsonl", [{"id": "a", "text": "same", "reject": "blocked"}])
    write_json(tmp_path / "manifest.json", {"fingerprint": stable_id("toy", SETTINGS), "filters": filters})
    return tmp_path


def dedup_judge(block: bool) -> Rejudge:
    """A toy stage: 'blocked' when block is on, then 'duplicate' for a text seen before."""
    def judge():
        seen: set[str] = set()

        def verdict(record):
            if block and record["id"] == "a":
                return record, "blocked"
            if record["text"] in seen:
                return record, "duplicate"
            seen.add(record["text"])
            return record, None
        return verdict
    return Rejudge(filters={"block": block}, judge=judge, order=lambda record: record["id"])


def test_other_filters_move_lines_and_dedup_follows_input_order(tmp_path):
    folder = folder_with_lines(tmp_path, {"block": True})
    assert rejudge_folder(folder, "toy", SETTINGS, dedup_judge(block=False)) == 2
    assert [r["id"] for r in read(folder / "data.jsonl")] == ["a", "c"]  # "a" comes first in input order
    assert [(r["id"], r["reject"]) for r in read(folder / "rejected.jsonl")] == [("b", "duplicate")]
    assert not any("reject" in r for r in read(folder / "data.jsonl"))


def test_the_same_filters_or_other_generation_settings_leave_the_folder_alone(tmp_path):
    folder = folder_with_lines(tmp_path, {"block": True})
    before = (folder / "data.jsonl").read_bytes()
    assert rejudge_folder(folder, "toy", SETTINGS, dedup_judge(block=True)) is None
    assert rejudge_folder(folder, "toy", {"model": "other"}, dedup_judge(block=False)) is None
    assert (folder / "data.jsonl").read_bytes() == before


def test_a_kill_before_the_commit_record_keeps_the_old_lines(tmp_path):
    folder = folder_with_lines(tmp_path, {"block": True})
    before = {name: (folder / name).read_bytes() for name in ("data.jsonl", "rejected.jsonl")}
    (folder / ("data.jsonl" + SUFFIX)).write_text('{"id": "half"}\n')  # written, not yet committed
    finish_pending(folder)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert not list(folder.glob("*" + SUFFIX))


def test_a_kill_after_the_commit_record_is_finished_on_the_next_open(tmp_path):
    folder = folder_with_lines(tmp_path, {"block": True})
    write(folder / ("data.jsonl" + SUFFIX), [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    write(folder / ("rejected.jsonl" + SUFFIX), [])
    write_json(folder / REJUDGE, {"files": ["data.jsonl", "rejected.jsonl"]})
    (folder / ("data.jsonl" + SUFFIX)).replace(folder / "data.jsonl")  # killed after the first rename
    finish_pending(folder)
    assert [r["id"] for r in read(folder / "data.jsonl")] == ["a", "b", "c"]
    assert read(folder / "rejected.jsonl") == []
    assert not (folder / REJUDGE).exists() and not list(folder.glob("*" + SUFFIX))
