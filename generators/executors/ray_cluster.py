"""Joining (or starting) a Ray cluster for one run, and the resources each model replica asks for.

`--ray-address` (or $RAY_ADDRESS) joins a running cluster (`ray start --head` on one machine,
`ray start --address HEAD:6379` on the others); without it a private local Ray starts with this
machine's CPUs, a small object store (items and outcomes are small) and no dashboard, and stops
with the run. Every node of a cluster needs baleen installed (`pip install baleen[ray]`) and the
model files at the same path.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generators.core.errors import FatalError, UsageError
from generators.core.options import RunOptions

LOCAL_OBJECT_STORE = 512 * 1024**2  # bytes; a local Ray's shared memory for items and outcomes
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds `generators`


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed: pip install 'baleen[ray]' "
                         "(or pip install 'ray>=2.60'); or leave out --executor ray") from None
    return ray


@dataclass
class Replicas:
    """What the run asks of the cluster: `count` replicas of `cpus` CPUs and `gpus` GPUs each,
    plus `spare_cpus` left free for corpus preparation tasks."""

    count: int
    cpus: float
    gpus: float
    spare_cpus: float = 0.0

    @property
    def threads(self) -> int:
        """torch threads per replica: its CPUs, at least one."""
        return max(1, int(self.cpus))


class RayCluster:
    """A connection to Ray for the length of one run (a context manager)."""

    def __init__(self, opts: RunOptions, *, spare_cpus: float = 0.0) -> None:
        self.opts = opts
        self.spare_cpus = spare_cpus
        self.ray = import_ray()
        self.started_here = False

    def __enter__(self) -> "RayCluster":
        ray = self.ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if ray.is_initialized():  # a caller (a notebook, a test) already holds a Ray session
            return self
        env = {"PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p),
               "TOKENIZERS_PARALLELISM": "false"}
        kwargs: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False,
                                      runtime_env={"env_vars": env})
        address = self.opts.ray_address
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                need = self.opts.workers * self.opts.cpus_per_worker + self.spare_cpus
                ray.init(num_cpus=max(os.cpu_count() or 1, math.ceil(need)), include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to join is one line for a person
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise FatalError(f"cannot start {where}: {type(exc).__name__}: {first}; check `ray status`, "
                             "or run without --ray-address for a local Ray") from None
        self.started_here = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started_here:
            self.ray.shutdown()

    def replicas(self) -> Replicas:
        """The replicas asked for, checked against what the cluster has (a replica that can never
        be placed would wait forever)."""
        opts = self.opts
        resources = self.ray.cluster_resources()
        have_cpus, have_gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        per_model = opts.tensor_parallel_size * opts.data_parallel_size  # GPUs one vLLM replica spans
        gpus = opts.gpus_per_worker if opts.gpus_per_worker is not None else (float(per_model) if have_gpus >= 1 else 0.0)
        if have_gpus >= 1 and per_model > 1 and gpus < per_model:
            raise UsageError(f"--tensor-parallel-size x --data-parallel-size = {per_model} GPUs per model, but "
                             f"--gpus-per-worker {gpus:g}: give each replica {per_model} GPUs (or leave "
                             "--gpus-per-worker out)")
        wanted = Replicas(count=opts.workers, cpus=opts.cpus_per_worker, gpus=gpus, spare_cpus=self.spare_cpus)
        need_cpus = wanted.count * wanted.cpus + wanted.spare_cpus
        if need_cpus > have_cpus + 1e-9:
            spare = f" plus {wanted.spare_cpus:g} for corpus preparation" if wanted.spare_cpus else ""
            raise UsageError(f"--workers {wanted.count} x --cpus-per-worker {wanted.cpus:g}{spare} needs "
                             f"{need_cpus:g} CPUs; the Ray cluster has {have_cpus:g}; ask for fewer, or add nodes")
        if wanted.count * gpus > have_gpus + 1e-9:
            raise UsageError(f"--workers {wanted.count} x --gpus-per-worker {gpus:g} needs {wanted.count * gpus:g} "
                             f"GPUs; the Ray cluster has {have_gpus:g}; ask for fewer, or add GPU nodes")
        return wanted
