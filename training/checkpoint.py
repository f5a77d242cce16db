"""Crash-safe checkpoints: a killed run, started again with the same command, continues.

Each checkpoint is a folder out/checkpoints/step-NNNNNNN holding the adapter (a loadable peft
folder), the optimizer and scheduler state, the RNG state and the running totals. It is written
under a temporary name and renamed into place, so a folder that exists is complete. The data
order is rebuilt from the seed, so the step number is all a resume needs to skip what was done.

Under torchrun only rank 0 writes. With DDP every rank holds the same adapter and optimizer, so
rank 0's copies are the whole state; with FSDP both are sharded and `gather` (run on every rank)
assembles full copies on rank 0 first. Every rank keeps its own RNG (its dropout masks), so the
states of all ranks are saved, and a resume with the same number of processes restores each.
Optimizer state is saved keyed by parameter position (one process, DDP) or by parameter name
(FSDP); `load` reads either, so a run may resume under the other wrapper or process count.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from generators.core.errors import UsageError

PREFIX = "step-"


def checkpoints_dir(out: Path) -> Path:
    return out / "checkpoints"


def latest(out: Path) -> Path | None:
    found = sorted(p for p in checkpoints_dir(out).glob(f"{PREFIX}*")
                   if p.is_dir() and (p / "state.pt").exists() and (p / "meta.json").exists())
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def gather(model: Any, optimizer: Any, sharded: bool) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(adapter weights by parameter name or None, optimizer state): full copies on rank 0.

    Sharded (FSDP) models need every rank here, since the shards are all-gathered."""
    if not sharded:
        return None, optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    return get_state_dict(model, optimizer, options=opts)


def gather_adapter(model: Any) -> dict[str, Any]:
    """The full LoRA weights of a sharded model on rank 0 (every rank must call this)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    return get_model_state_dict(model, options=opts)


def save(out: Path, step: int, model: Any, optimizer_state: dict[str, Any], scheduler: Any,
         meta: dict[str, Any], keep: int, adapter_state: dict[str, Any] | None = None,
         rng_ranks: list[dict[str, Any]] | None = None) -> Path:
    """Write one checkpoint (rank 0 only). `model` is the peft model; `adapter_state` the
    gathered weights when the model itself holds only shards."""
    root = checkpoints_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    partial = root / f".partial-{PREFIX}{step:07d}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    if adapter_state is None:
        model.save_pretrained(partial)
    else:
        model.save_pretrained(partial, state_dict=adapter_state)
    state = {"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), **rng_state(),
             "rng_ranks": rng_ranks or []}
    torch.save(state, partial / "state.pt")
    (partial / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    partial.replace(final)
    for old in sorted(root.glob(f"{PREFIX}*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def check(path: Path, fingerprint: str) -> dict[str, Any]:
    """The checkpoint's meta, if this process can read it and it belongs to this run."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        raise UsageError(f"{path}: cannot read this checkpoint here; with several nodes, put --out "
                         "on a file system every node shares (a resume reads it on every rank)") from None
    if meta.get("fingerprint") != fingerprint:
        raise UsageError(f"{path.parent.parent}: holds a checkpoint from a run with other settings "
                         "or data; use a new --out, or delete its checkpoints/ to start over")
    return meta


def load(path: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str,
         sharded: bool = False, rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Restore training state from `path`; refuse a checkpoint made with other settings.

    Every rank reads the files itself (reading is all a non-zero rank does in --out)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta = check(path, fingerprint)
    saved = load_file(str(path / "adapter_model.safetensors"))
    state = torch.load(path / "state.pt", weights_only=True)
    by_position = all(isinstance(p, int) for g in state["optimizer"]["param_groups"] for p in g["params"])
    if sharded and by_position:  # saved by one process or DDP, resumed under FSDP
        state["optimizer"] = by_name(state["optimizer"], list(adapter_names(model).values()))
        by_position = False
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, strict=False)
    if sharded:
        names = adapter_names(model)
        set_model_state_dict(model, {names.get(k, k): v for k, v in saved.items()}, options=opts)
    else:
        set_peft_model_state_dict(model, saved)
    if by_position:
        optimizer.load_state_dict(state["optimizer"])
    else:
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=opts)
    scheduler.load_state_dict(state["scheduler"])
    ranks = state.get("rng_ranks") or []
    if world > 1 and len(ranks) != world:
        return meta  # another process count: keep this rank's own fresh seed
    mine = ranks[rank] if world > 1 else state
    torch.set_rng_state(mine["torch_rng"])
    if mine["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(mine["cuda_rng"])
    return meta


def by_name(optimizer_state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Optimizer state keyed by position -> keyed by parameter name (the optimizer's params are
    the model's trainable parameters, in order)."""
    return {"state": {names[i]: v for i, v in optimizer_state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]}
                             for g in optimizer_state["param_groups"]]}


def adapter_names(model: Any) -> dict[str, str]:
    """Saved adapter key -> the model's parameter name (peft drops the adapter name on save)."""
    names = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            names[name.replace(".default.", ".")] = name
    return names
