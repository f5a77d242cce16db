"""`gen train` as a user runs it: bad input is one line and exit 2, a SIGKILLed run resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generators.cli import main

from tests import tiny_model
from tests.helpers import assert_one_line_error, run_gen, start_gen, wait_for

pytestmark = pytest.mark.slow  # runs a real (tiny) model

GEN = str(Path(sys.executable).with_name("gen"))


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return str(tiny_model_dir)


def write(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def run_inprocess(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return info.value.code, err


@pytest.mark.parametrize("row, expected", [
    ({"messages": [{"role": "user", "content": "only a question"}]}, "bad.jsonl:2: record has no assistant turn"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tag": "gold"},
     "bad.jsonl:2: unknown tag 'gold'"),
    ("not json", "bad.jsonl:2: bad JSON"),
])
def test_bad_data_is_one_line_exit_2(tmp_path, base, capsys, row, expected):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tag": "seed"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + (row if isinstance(row, str) else json.dumps(row)) + "\n")
    code, err = run_inprocess(["train", "--data", str(path), "--base", base, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "o" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("flags, expected", [
    (["--lora-r", "32"], "--lora-r 32 is above --max-lora-rank 16"),
    (["--dora"], "DoRA"),
    (["--weight", "gold=1"], "unknown tag 'gold'"),
    (["--weight", "seed=heavy"], "not a valid float"),
    (["--eval-frac", "1.5"], "--eval-frac"),
])
def test_bad_flags_are_one_line_exit_2(tmp_path, base, capsys, flags, expected):
    data = write(tmp_path / "d.jsonl", tiny_model.records(2))
    code, err = run_inprocess(["train", "--data", data, "--base", base, "--out", str(tmp_path / "o"), *flags], capsys)
    assert code == 2 and len(err) == 1 and expected in err[0], err


def test_missing_file_exits_2_without_traceback(tmp_path, base):
    proc = subprocess.run([GEN, "train", "--data", str(tmp_path / "nope.jsonl"), "--base", base,
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.jsonl: no such file" in lines[0] and "Traceback" not in proc.stderr


def test_sigkill_then_rerun_continues_from_the_checkpoint(tmp_path, base):
    data = write(tmp_path / "d.jsonl", tiny_model.records(16))
    out = tmp_path / "run"
    cmd = [GEN, "train", "--data", data, "--base", base, "--out", str(out), "--max-steps", "200",
           "--save-every", "5", "--batch-size", "2", "--no-grad-checkpointing", "--eval-frac", "0",
           "--log-every", "50"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    try:
        while not list((out / "checkpoints").glob("step-*")):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "adapter_model.safetensors").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["progress"]["step"] == 200
    assert manifest["progress"]["resumed_from"][0] >= 5
    assert (out / "adapter_model.safetensors").exists()


def test_a_second_trainer_on_the_same_out_is_refused(tmp_path, base):
    data = write(tmp_path / "d.jsonl", tiny_model.records(24))
    out = tmp_path / "o"
    argv = ["train", "--data", data, "--base", base, "--out", str(out), "--max-steps", "400",
            "--batch-size", "2", "--save-every", "1000", "--eval-frac", "0"]
    first = start_gen(*argv)
    try:
        wait_for(lambda: (out / ".lock").exists() and (out / ".lock").read_text().strip() == str(first.pid))
        second = run_gen(*argv)
        assert_one_line_error(second, 2, "in use", f"PID {first.pid}")
    finally:
        first.kill()
        first.wait()
