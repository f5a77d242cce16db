"""`gen segments --executor ray` on a real local Ray on the CPU: the same kept segments and counts
as the local executor with one and two workers, a run begun on one executor resumed on the other
after a SIGKILL, and the flag combinations that cannot work refused in one line.

Ray starts once for the module (the in-process runs join it); one run in a subprocess starts its
own, as a user's does."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.backtranslate_fixtures import plain_pages, write_corpus
from tests.helpers import (REPO, assert_one_line_error, gen_cmd, gen_env, kill_when, local_ray, run_gen,
                           start_gen)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the in-process runs (a run joins a Ray that is already up)."""
    with local_ray(num_cpus=2, store_mib=80) as ray:
        yield ray


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Pages with exact copies and near copies of earlier ones, in later shards (4 pages a shard)."""
    pages = plain_pages(40)
    pages += pages[5:11]
    near = [p.replace("</p>", " and one more word.</p>") for p in pages[20:24]]
    return write_corpus(tmp_path_factory.mktemp("corpus") / "c.jsonl", pages + near)


def segments_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["segments", "--corpus", str(corpus), "--out", str(out), "--shard-docs", "4", *extra]


def gen_in_process(*args: str) -> None:
    from generators.cli import gen

    gen.main(args=list(args), prog_name="gen", standalone_mode=False)


def rows(out: Path) -> list[dict]:
    return [row for path in sorted(out.glob("segments-*.parquet")) for row in pq.read_table(path).to_pylist()]


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def local_one(corpus, tmp_path_factory) -> Path:
    """The reference: --executor local --workers 1."""
    out = tmp_path_factory.mktemp("ref") / "local1"
    done = run_gen(*segments_args(corpus, out))
    assert done.returncode == 0, done.stderr
    return out


def test_ray_keeps_the_segments_and_counts_of_local_with_one_and_two_workers(corpus, local_one, tmp_path,
                                                                              ray_session):
    two = run_gen(*segments_args(corpus, tmp_path / "local2", "--workers", "2"))
    assert two.returncode == 0, two.stderr
    gen_in_process(*segments_args(corpus, tmp_path / "ray2", "--executor", "ray", "--workers", "2"))
    want, counts = rows(local_one), manifest_of(local_one)["segments"]
    assert len(want) == counts["kept"] == 80
    assert counts["rejected"]["duplicate"] == 12 and counts["rejected"]["near_duplicate"] == 8
    for out in (tmp_path / "local2", tmp_path / "ray2"):
        assert rows(out) == want, out.name
        assert manifest_of(out)["segments"] == counts, out.name
        assert sorted(p.name for p in out.glob("segments-*.parquet")) == \
            sorted(p.name for p in local_one.glob("segments-*.parquet"))
    ray_run = manifest_of(tmp_path / "ray2")
    assert ray_run["status"] == "complete" and ray_run["executor"] == "ray" and ray_run["workers"] == 2
    assert ray_run["fingerprint"] == manifest_of(local_one)["fingerprint"]  # the executor is not in it


def test_a_run_begun_on_ray_and_killed_resumes_on_local(corpus, local_one, tmp_path):
    out = tmp_path / "out"
    args = segments_args(corpus, out, "--executor", "ray", "--workers", "2")
    proc = subprocess.Popen(gen_cmd(*args), env=gen_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # its own group: its Ray goes with it
    try:
        kill_when(proc, lambda: len(list((out / "work").glob("cand-*.parquet"))) >= 2, timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert manifest_of(out)["status"] == "running" and manifest_of(out)["executor"] == "ray"
    assert not (out / "work" / "prepare.done").exists()  # killed in phase 1: the rest of it runs on local
    rerun = run_gen(*segments_args(corpus, out))
    assert rerun.returncode == 0, rerun.stderr
    resumed = manifest_of(out)
    assert resumed["status"] == "complete" and resumed["sessions"] == 2 and resumed["executor"] == "local"
    assert rows(out) == rows(local_one)
    assert resumed["segments"] == manifest_of(local_one)["segments"]
    assert not (out / "work").exists()


def test_a_run_begun_on_local_and_killed_resumes_on_ray(corpus, local_one, tmp_path, ray_session):
    out = tmp_path / "out"
    kill_when(start_gen(*segments_args(corpus, out)), lambda: len(list((out / "work").glob("cand-*.parquet"))) >= 2)
    assert manifest_of(out)["status"] == "running" and not (out / "work" / "prepare.done").exists()
    (out / "work" / "cand-99999.parquet.tmp").write_bytes(b"half a file")  # what a kill mid-write leaves
    gen_in_process(*segments_args(corpus, out, "--executor", "ray", "--workers", "2"))
    resumed = manifest_of(out)
    assert resumed["status"] == "complete" and resumed["sessions"] == 2 and resumed["executor"] == "ray"
    assert rows(out) == rows(local_one)
    assert resumed["segments"] == manifest_of(local_one)["segments"]


def test_flag_combinations_that_cannot_work_exit_2_in_one_line(corpus, tmp_path):
    out = tmp_path / "segs"
    assert_one_line_error(run_gen(*segments_args(corpus, out, "--ray-address", "127.0.0.1:1")), 2,
                          "--ray-address", "--executor ray")
    assert_one_line_error(run_gen(*segments_args(corpus, out, "--workers", "0")), 2, "--workers")
    assert_one_line_error(run_gen(*segments_args(corpus, out, "--executor", "slurm")), 2, "--executor")
    assert_one_line_error(run_gen(*segments_args(corpus, out, "--processes", "2")), 2, "--processes")
    hook = tmp_path / "no-ray"  # a Python where `import ray` fails, as without baleen[ray]
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Gone:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, _Gone())\n", "utf-8")
    no_ray = {**gen_env(), "PYTHONPATH": f"{hook}{os.pathsep}{REPO}"}
    assert_one_line_error(run_gen(*segments_args(corpus, out, "--executor", "ray"), env=no_ray), 2,
                          "pip install", "--executor ray")
    assert not out.exists()
    # $RAY_ADDRESS is for runs on Ray: a local run leaves it alone
    local = run_gen(*segments_args(corpus, out), env=gen_env(RAY_ADDRESS="127.0.0.1:1"))
    assert local.returncode == 0, local.stderr
    assert manifest_of(out)["executor"] == "local"
