"""The line readers of generators.core.io within --max-line-bytes (issue 19, items 4 and 5)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from generators.core import io as core_io
from generators.core.errors import UsageError
from generators.outputs.view.index import Index
from generators.outputs.view.runs import discover
from tests.helpers import gen_env

NESTED = "[" * 100_000


@pytest.fixture
def limit_10():
    before = core_io.MAX_LINE_BYTES
    core_io.set_max_line_bytes(10)
    yield
    core_io.set_max_line_bytes(before)


def test_lines_up_to_the_limit_pass_and_a_longer_one_is_none(limit_10):
    data = b"0123456789\n" + b"0123456789" + b"\n" + b"x" * 25 + b"\n" + b"last-line!"
    assert list(core_io.bounded_lines(io.BytesIO(data))) == [b"0123456789\n", b"0123456789\n", None, b"last-line!"]
    assert list(core_io.bounded_lines(io.BytesIO(b"y" * 11))) == [None]  # no newline at the end, one over


def test_an_input_file_with_a_long_line_names_file_and_line(tmp_path, limit_10):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'{"b": "' + b"z" * 100)
    with pytest.raises(UsageError, match=r"in\.jsonl:2: line longer than --max-line-bytes \(10 bytes\)"):
        list(core_io.iter_jsonl(path))


def test_our_own_files_pass_over_long_and_nested_lines_and_count_them(tmp_path, limit_10):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"a":1}\n' + b"[" * 40 + b"\n" + b'{"b":2}\n')
    bad = []
    assert [obj for _, obj in core_io.read_lines(path, on_bad=lambda: bad.append(1))] == [{"a": 1}, {"b": 2}]
    assert len(bad) == 1
    offsets = [offset for offset, _ in core_io.read_lines(path)]
    assert offsets == [0, 8 + 41]  # the offsets stay true after a skipped line


def test_a_nested_line_in_an_input_file_is_a_usage_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n' + NESTED + "\n", "utf-8")
    with pytest.raises(UsageError, match=r"in\.jsonl:2: JSON nested too deeply"):
        list(core_io.iter_jsonl(path))


def test_the_viewer_passes_over_a_nested_line(tmp_path):
    folder = tmp_path / "chat"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"stage": "selfchat", "status": "complete"}))
    good = {"id": "a", "source": "t", "messages": [{"role": "user", "content": "q"},
                                                    {"role": "assistant", "content": "a"}], "meta": {"item": "i-a"}}
    (folder / "data.jsonl").write_text(NESTED + "\n" + json.dumps(good) + "\n", "utf-8")
    index = Index(discover(folder).runs)
    assert index.ids == ["a"] and index.stats[0].bad_lines == 1
    assert index.read([0])[0]["id"] == "a"


def test_a_line_without_newline_is_never_held_whole(tmp_path):
    """Peak memory while refusing a 64 MB line under a 1 MB limit grows far less than the line."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        for _ in range(64):
            handle.write(b"x" * (1 << 20))
    script = (
        "import resource, sys\n"
        "from generators.core import io\n"
        "from generators.core.errors import UsageError\n"
        "io.set_max_line_bytes(1 << 20)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    list(io.iter_jsonl(sys.argv[1]))\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], env=gen_env(), capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    message, grown_kib = proc.stdout.strip().splitlines()
    assert "huge.jsonl:1: line longer than --max-line-bytes" in message
    assert int(grown_kib) < 16 * 1024, grown_kib  # KiB: well under the 64 MB line


def test_a_cut_last_line_is_dropped_without_reading_the_file_whole(tmp_path):
    from generators.core.store import _repair_tail

    path = tmp_path / "data.jsonl"
    whole = b'{"a":1}\n' + b"y" * 200_000 + b"\n"
    path.write_bytes(whole + b'{"cut')
    _repair_tail(path)
    assert path.read_bytes() == whole
    path.write_bytes(b'{"only": "cut')
    _repair_tail(path)
    assert path.read_bytes() == b""
    path.write_bytes(whole)
    _repair_tail(path)
    assert path.read_bytes() == whole
