"""The item runner: every item ends kept, rejected or as an error line; a bug on every item stops."""
from __future__ import annotations

import asyncio

import pytest

from generators.backends.base import Backend, RequestFailed
from generators.core.engine import Engine
from generators.core.errors import FatalError
from generators.core.runner import Item, Kept, Rejected, run_items
from generators.core.store import RunStore
from tests.helpers import read_jsonl


class NoModel(Backend):
    async def complete(self, request):  # pragma: no cover - the workers here never ask
        raise AssertionError


def run(tmp_path, worker, n=6):
    store = RunStore(tmp_path, stage="t", settings={})
    items = [Item(id=f"i{k}", source="s", input=k) for k in range(n)]
    try:
        return asyncio.run(run_items(items, worker, store=store, engine=Engine(NoModel()), concurrency=2,
                                     write_manifest=lambda status: store.write_manifest(status=status, extra={}),
                                     total=n, progress=False))
    finally:
        store.close()


def test_every_item_ends_somewhere(tmp_path):
    async def worker(item):
        if item.input == 1:
            raise RequestFailed("HTTP 400: bad", status=400, last_response="{}")
        if item.input == 2:
            return Rejected({"id": item.id, "source": "s", "messages": []}, "short_answer")
        if item.input == 3:
            raise KeyError("a bug on one item")
        return Kept([{"id": item.id, "source": "s", "messages": []}])

    manifest = run(tmp_path, worker)
    assert manifest["counts"] == {"kept": 3, "rejected": 1, "errors": 2, "rejected_by_reason": {"short_answer": 1}}
    errors = {e["input"]: e["error"] for e in read_jsonl(tmp_path / "errors.jsonl")}
    assert errors[1].startswith("HTTP 400") and "KeyError" in errors[3]


def test_the_same_bug_on_every_item_stops_the_run(tmp_path):
    async def worker(item):
        raise NameError("name 'x' is not defined")

    with pytest.raises(FatalError, match="internal error on 6 items in a row"):
        run(tmp_path, worker)
    manifest = read_jsonl(tmp_path / "errors.jsonl")
    assert len(manifest) == 6
