"""Send a ready stage to another process (a Ray worker), without what belongs to the driver.

A stage that has run `build_engines`, `settings` and `prime` in the driver knows everything its
`work` needs (sampling, templates, filters, a curate rating closure). It is pickled with
cloudpickle, except for three kinds of object that only make sense in the driver:
  - engines and backends: sent as the settings they were built from, and rebuilt in the worker
    (a loaded model, a thread or an SQLite connection cannot cross a process boundary, and a
    worker must load its own model anyway); each rebuilt engine has its own accounting without
    budgets, because budgets are kept by the driver, which sees every item's usage;
  - the run folder (RunStore) and anything marked `driver_only` (the corpus dedup index):
    the driver is the only writer and the only judge of duplicates;
  - iterators (a stream of documents, a generator of items): the driver owns the input.
Pickling's memo keeps shared objects shared: the stage's engine and the one a closure holds
become one rebuilt engine in the worker.
"""
from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generators.core.accounting import Accounting
from generators.core.prices import Price
from generators.backends.base import Backend, BackendSettings
from generators.backends.cache import ResponseCache
from generators.core.engine import Engine
from generators.core.store import RunStore


def _cloudpickle() -> Any:
    try:
        from ray import cloudpickle
    except ImportError:  # outside Ray (tests of this module alone), the standalone package
        import cloudpickle  # type: ignore[no-redef]
    return cloudpickle


def _absent() -> None:
    return None


def _rebuild_backend(kind: type[Backend], settings: BackendSettings) -> Backend:
    backend = kind.create(settings)
    backend.settings = settings
    return backend


def _rebuild_engine(backend: Backend, cache_path: str | None, max_failures: int, price: Price | None = None,
                    batch: bool = False) -> Engine:
    """A worker's engine: the driver's price (so each line's cost is the driver's), never its budgets."""
    cache = ResponseCache(cache_path) if cache_path else None
    return Engine(backend, cache=cache, accounting=Accounting(model=backend.model, price=price, batch=batch),
                  max_consecutive_failures=max_failures)


def _reducer(obj: Any) -> Any:
    """How a driver-side object travels, or NotImplemented for ordinary pickling."""
    if isinstance(obj, Engine):
        cache = str(obj.cache.path) if obj.cache is not None else None
        return _rebuild_engine, (obj.backend, cache, obj.max_consecutive_failures, obj.accounting.price,
                                 obj.accounting.batch)
    if isinstance(obj, Backend) and isinstance(obj.settings, BackendSettings):
        return _rebuild_backend, (type(obj), obj.settings)
    if isinstance(obj, RunStore) or getattr(type(obj), "driver_only", False):
        return _absent, ()
    if isinstance(obj, Iterator) and not isinstance(obj, (str, bytes, Path)):
        return _absent, ()
    return NotImplemented


def dumps_stage(stage: Any) -> bytes:
    """The stage as bytes a worker turns back into a working stage with `loads_stage`."""
    cloudpickle = _cloudpickle()

    class Pickler(cloudpickle.Pickler):  # type: ignore[name-defined,misc]
        def reducer_override(self, obj: Any) -> Any:
            how = _reducer(obj)
            return how if how is not NotImplemented else super().reducer_override(obj)

    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(stage)
    return buffer.getvalue()


def loads_stage(data: bytes) -> Any:
    return pickle.loads(data)
