"""One model replica: a Ray actor holding a copy of the stage and its own engine.

It runs `stage.work(item)` for many items at once (an async actor), so the backend batches them
as it does locally (transformers gathers waiting requests into a batch; vLLM schedules them
continuously). It returns the outcome and the item's usage, plain data only: the driver writes
the line and books the usage. Nothing here touches the run folder.
"""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from generators.core.accounting import ITEM_USAGE, empty_usage
from generators.backends.base import RequestFailed
from generators.core.errors import BaleenError
from generators.core.runner import Item, ItemFailed
from generators.executors.shipping import loads_stage


def failure(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data (exceptions with keyword fields do not survive pickling whole)."""
    if isinstance(exc, BaleenError):
        return {"fatal": exc.message, "exit_code": exc.exit_code}
    if isinstance(exc, (RequestFailed, ItemFailed)):
        return {"failed": exc.reason, "status": exc.status, "last_response": exc.last_response,
                "partial": getattr(exc, "partial", None)}
    return {"bug": f"{type(exc).__name__}: {exc}"}


class Replica:
    """The actor class (wrapped with ray.remote by the executor, which sets its resources)."""

    def __init__(self, stage_bytes: bytes, threads: int) -> None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is first imported
        torch = sys.modules.get("torch")
        if torch is not None:  # already imported (by unpickling below it is not yet)
            torch.set_num_threads(threads)
        self.threads = threads
        self.stage = loads_stage(stage_bytes)
        self.started = False

    async def start(self) -> dict[str, Any] | None:
        """Load the model now, so a broken one stops the run before any item; None when ready."""
        try:
            for engine in self.stage.engines:
                await engine.start()
            torch = sys.modules.get("torch")
            if torch is not None:
                torch.set_num_threads(self.threads)
        except BaseException as exc:  # noqa: BLE001 - reported to the driver as one line
            return failure(exc)
        self.started = True
        return None

    async def work(self, item: Item) -> tuple[Any, dict[str, Any]]:
        """(outcome, usage): a Kept or Rejected, or a failure dict; run in a task of its own so the
        item's usage is booked to it alone."""
        return await asyncio.ensure_future(self._work(item))

    async def _work(self, item: Item) -> tuple[Any, dict[str, Any]]:
        usage = empty_usage()
        ITEM_USAGE.set(usage)
        try:
            return await self.stage.work(item), usage
        except Exception as exc:  # noqa: BLE001 - every item ends with an outcome
            return failure(exc), usage

    def pid(self) -> int:
        return os.getpid()
