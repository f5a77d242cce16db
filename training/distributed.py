"""Several training processes (torchrun): who we are, what is refused, and the collectives.

torchrun starts one process per device and tells each its place through RANK, WORLD_SIZE,
LOCAL_RANK (and MASTER_ADDR/PORT). Without those variables this is one process and every
collective here is a no-op, so the trainer has a single code path. Refusals happen before the
process group exists, from flags and environment alone, so every rank refuses alike and none is
left waiting for another. After that, a failure seen by one rank (rank 0 holding the folder lock,
for instance) is shared with `agree`, so all ranks stop with the same error and exit code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from generators.core.errors import BaleenError, FatalError, UsageError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: str | None = None        # gloo | nccl once started; None for one process

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.backend is not None

    def start(self, device: torch.device) -> None:
        """Join the process group: nccl between GPUs, gloo on the CPU."""
        if self.world == 1:
            return
        import torch.distributed as dist

        self.backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": self.backend, "timeout": timedelta(minutes=30)}
        if device.type == "cuda":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)

    def stop(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.backend = None

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled; for small decisions, not tensors)."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, error: BaleenError | None) -> None:
        """Raise on every rank if any rank met an error (the lowest rank's error wins)."""
        if not self.active:
            if error is not None:
                raise error
            return
        import torch.distributed as dist

        found: list[Any] = [None] * self.world
        dist.all_gather_object(found, None if error is None else (type(error).__name__, error.message))
        first = next((f for f in found if f is not None), None)
        if first is None:
            return
        raise shared(error or (UsageError if first[0] == "UsageError" else FatalError)(first[1]))

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks, in float64 so the totals do not depend on the rank count."""
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        import torch.distributed as dist

        found: list[Any] = [None] * self.world
        dist.all_gather_object(found, obj)
        return found


def shared(error: BaleenError) -> BaleenError:
    """Mark an error every rank meets alike: rank 0 alone needs to say it (training/cli.py)."""
    error.shared = True  # type: ignore[attr-defined]
    return error


def from_env() -> Dist:
    """The place torchrun gave this process; one process when started without torchrun."""
    def num(name: str, default: int) -> int:
        raw = os.environ.get(name, "")
        try:
            return int(raw) if raw else default
        except ValueError:
            raise UsageError(f"{name}={raw!r} is not a number; start several trainers with "
                             "torchrun, which sets it") from None

    world = num("WORLD_SIZE", 1)
    rank = num("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} WORLD_SIZE={world}: not a valid place; start with torchrun")
    return Dist(rank=rank, world=world, local_rank=num("LOCAL_RANK", 0),
                local_world=num("LOCAL_WORLD_SIZE", 1 if world == 1 else world))


def check(cfg: Any, dist: Dist) -> None:
    """Refuse what cannot work together, up front and identically on every rank."""
    if cfg.fsdp and dist.world == 1:
        raise UsageError("--fsdp shards the model over several processes: start with torchrun "
                         "--nproc-per-node N (N >= 2), or drop --fsdp")
    if cfg.fsdp and cfg.load_4bit:
        raise UsageError("--fsdp with --4bit: 4-bit bitsandbytes weights cannot be sharded by FSDP "
                         "here; use --4bit without --fsdp (QLoRA with one copy per GPU), or --fsdp alone")
    if cfg.fsdp and cfg.merge:
        raise UsageError("--fsdp with --merge: a base too big for one device cannot be merged by one "
                         "process; drop --merge and merge the adapter afterwards where the whole model fits")
    if dist.world > 1 and cfg.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device {cfg.device}: under torchrun each process takes cuda:LOCAL_RANK; "
                         "pass --device cuda, cpu or auto (choose GPUs with CUDA_VISIBLE_DEVICES)")
    if dist.world > 1 and cfg.load_4bit and not torch.cuda.is_available():
        raise UsageError("--4bit needs a CUDA GPU; drop --4bit to train in full precision")


def pick_device(name: str, dist: Dist) -> torch.device:
    """One process: --device as given. Under torchrun: cuda:LOCAL_RANK, or the CPU."""
    if dist.world == 1:
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device here; use --device cpu")
        return torch.device(name)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device here; use --device cpu")
    if torch.cuda.device_count() < max(dist.local_world, dist.local_rank + 1):  # alike on the node
        raise UsageError(f"torchrun started {dist.local_world} processes on this node but only "
                         f"{torch.cuda.device_count()} GPUs are visible; lower --nproc-per-node")
    torch.cuda.set_device(dist.local_rank)
    return torch.device("cuda", dist.local_rank)


def wrap(model: Any, dist: Dist, device: torch.device, fsdp: bool) -> Any:
    """DDP (each rank a whole copy, gradients all-reduced) or FSDP2 (parameters sharded per
    decoder layer, gathered one layer at a time). One process: the model as it is."""
    if dist.world == 1:
        return model
    if fsdp:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(device.type, (dist.world,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if device.type == "cuda" and any(p.dtype == torch.bfloat16 for p in model.parameters()) \
            else MixedPrecisionPolicy()
        for layer in decoder_layers(model):
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers model (the units FSDP gathers one at a time)."""
    names = set(getattr(model, "_no_split_modules", None) or
                getattr(getattr(model, "base_model", model).model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        layers = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)][:1]
        layers = list(layers[0]) if layers else []
    if not layers:
        raise FatalError("--fsdp: cannot find this model's decoder layers to shard; drop --fsdp")
    return layers
