"""--executor ray on a local Ray on the CPU, with the tiny model on the hf backend: the same ids and
records as the local executor, a replica killed mid-run, an item that kills its replica every
time, and the driver killed with SIGKILL and started again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import psutil
import pytest

from generators.backends.base import Backend, ChatRequest, ChatResult
from generators.core.options import RunOptions
from generators.core.records import make_record
from generators.core.runner import Item, Kept
from generators.core.stage import Stage, run_stage
from tests.backtranslate_fixtures import page, plain_pages, write_corpus
from tests.helpers import REPO, gen_cmd, gen_env, local_ray, read_jsonl, wait_for

pytestmark = pytest.mark.slow  # a local Ray and a real (tiny) model


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the in-process tests (a run joins a Ray that is already up)."""
    with local_ray(num_cpus=4, store_mib=100) as ray:
        yield ray


def corpus_with_duplicates(path: Path, count: int = 6) -> Path:
    pages = plain_pages(count)
    first = "<h2>" + pages[0].split("<h2>")[1].split("<footer>")[0]
    pages[3] = pages[3].replace("<footer>", first + "<footer>")  # an exact copy of a section
    pages[count - 1] = pages[count - 1].replace(  # a near copy
        "<footer>", first.replace("</p>", " And one more sentence at the very end.</p>", 1) + "<footer>")
    pages.append(page(50, ["ADVERTISEMENT AND MORE", "Fine topic"], seed=3))
    return write_corpus(path, pages)


def backtranslate_args(model: Path, corpus: Path, out: Path, *extra: Any) -> list[str]:
    return ["backtranslate", "--corpus", str(corpus), "--backend", "hf", "--model", str(model),
            "--temperature", "0", "--max-tokens", "6", "--allow-non-requests", "--concurrency", "2",
            "--no-cache", "--no-progress", "--out", str(out), *map(str, extra)]


def gen_in_process(*args: str) -> None:
    from generators.cli import gen

    gen.main(args=list(args), prog_name="gen", standalone_mode=False)


def lines(out: Path) -> dict[str, dict]:
    """Item id -> its line (usage set aside: it differs by batch), failing on any duplicate."""
    found: dict[str, dict] = {}
    for name in ("data.jsonl", "rejected.jsonl", "errors.jsonl"):
        for line in read_jsonl(out / name):
            item = line.get("item") or line["meta"]["item"]
            assert item not in found, f"item {item} written twice"
            line.get("meta", {}).pop("usage", None)
            found[item] = line
    return found


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_ray_gives_the_ids_records_and_segment_counts_of_the_local_executor(tmp_path, tiny_model_dir, ray_session):
    corpus = corpus_with_duplicates(tmp_path / "c.jsonl")
    gen_in_process(*backtranslate_args(tiny_model_dir, corpus, tmp_path / "local"))
    gen_in_process(*backtranslate_args(tiny_model_dir, corpus, tmp_path / "ray", "--executor", "ray",
                                       "--workers", "2", "--prep-workers", "2"))
    local, ray = lines(tmp_path / "local"), lines(tmp_path / "ray")
    assert len(local) >= 10 and ray == local  # same ids, same records (greedy decoding)
    segments = manifest(tmp_path / "local")["segments"]
    assert manifest(tmp_path / "ray")["segments"] == segments
    assert segments["rejected"]["duplicate"] and segments["rejected"]["near_duplicate"]
    run = manifest(tmp_path / "ray")["run"]
    assert run["executor"] == "ray" and run["workers"] == 2 and manifest(tmp_path / "ray")["status"] == "complete"


def replica_pids() -> list[int]:
    """Model replicas among this process's descendants (Ray names their processes ray::Replica)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("ray::Replica" in part for part in child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def test_a_replica_killed_mid_run_is_restarted_and_its_items_retried(tmp_path, tiny_model_dir, ray_session):
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(12))
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one_replica() -> None:
        wait_for(lambda: len(read_jsonl(out / "data.jsonl")) + len(read_jsonl(out / "rejected.jsonl")) >= 2
                 and len(replica_pids()) == 2, timeout=240)
        pid = replica_pids()[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_one_replica, daemon=True)
    killer.start()
    gen_in_process(*backtranslate_args(tiny_model_dir, corpus, out, "--executor", "ray", "--workers", "2"))
    killer.join(timeout=5)
    assert killed and not psutil.pid_exists(killed[0])
    done = lines(out)
    assert len(done) == 24 and not read_jsonl(out / "errors.jsonl")  # every item once, none lost to the kill
    assert manifest(out)["status"] == "complete"


class Shout(Backend):
    """Answers with the prompt in capitals: enough model for a stage that tests the executor."""

    name = "shout-test"
    model = "shout"

    async def complete(self, request: ChatRequest) -> ChatResult:
        text = request.messages[-1][1].upper()
        return ChatResult(text=text, finish="stop", prompt_tokens=len(text), completion_tokens=len(text))


class PoisonStage(Stage):
    """Items whose text is "poison" end the replica's process, on every try."""

    name = "poison-test"

    def __init__(self, opts: RunOptions, out: Path, texts: Iterable[str]) -> None:
        super().__init__(opts, out)
        self.texts = list(texts)

    def load_inputs(self) -> None:
        pass

    def build_engines(self) -> None:
        self.engine = self.add_engine(Shout())

    def settings(self) -> dict[str, Any]:
        return {"texts": self.texts}

    def items(self) -> Iterable[Item]:
        return (Item(id=f"item-{n}", source="test", input=text) for n, text in enumerate(self.texts))

    async def work(self, item: Item) -> Kept:
        if item.input == "poison":
            os._exit(1)
        result = await self.engine.complete(ChatRequest.of([{"role": "user", "content": item.input}]))
        return Kept([make_record(id=item.id, source="test", messages=[
            {"role": "user", "content": item.input}, {"role": "assistant", "content": result.text}])])


def test_an_item_that_kills_its_replica_every_time_ends_as_an_error_line(tmp_path, tiny_model_dir, ray_session):
    opts = RunOptions(backend="hf", model=str(tiny_model_dir), concurrency=2, max_concurrency=8, batch_max_lines=10,
                      batch_poll_interval=1.0, cache_dir=tmp_path, no_cache=True, timeout=1.0, retries=0,
                      max_retry_after=1.0, no_progress=True, executor="ray", workers=2)
    texts = ["alpha", "beta", "poison", "gamma", "delta", "epsilon"]
    result = run_stage(PoisonStage(opts, tmp_path / "out", texts))
    assert result["status"] == "complete"
    assert result["counts"]["kept"] == 5 and result["counts"]["errors"] == 1
    error = read_jsonl(tmp_path / "out" / "errors.jsonl")[0]
    assert error["item"] == "item-2" and "worker failed 3 times" in error["error"]
    kept = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")}
    assert kept == {t: t.upper() for t in texts if t != "poison"}
    assert result["usage"]["completion_tokens"] == sum(len(t) for t in kept)  # usage booked by the driver


def test_driver_killed_mid_run_and_rerun_loses_and_duplicates_nothing(tmp_path, tiny_model_dir):
    corpus = corpus_with_duplicates(tmp_path / "c.jsonl", count=10)
    out = tmp_path / "out"
    args = backtranslate_args(tiny_model_dir, corpus, out, "--executor", "ray", "--workers", "2")
    env = gen_env()
    proc = subprocess.Popen(gen_cmd(*args), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own group: Ray's processes go with it
    try:
        wait_for(lambda: len(read_jsonl(out / "data.jsonl")) + len(read_jsonl(out / "rejected.jsonl")) >= 3,
                 timeout=240)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    first = lines(out)
    assert 3 <= len(first) and manifest(out)["status"] == "running"
    time.sleep(0.5)
    rerun = subprocess.run(gen_cmd(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
                           start_new_session=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    done = lines(out)  # fails on a duplicate
    finished = manifest(out)
    assert finished["status"] == "complete" and finished["sessions"] == 2
    assert len(done) == finished["segments"]["kept"] and finished["segments"]["resumed"] >= 3
    assert all(done[item] == line for item, line in first.items())  # the first session's lines stand
    assert finished["segments"]["rejected"]["duplicate"] == 1 and finished["segments"]["rejected"]["near_duplicate"] == 1
