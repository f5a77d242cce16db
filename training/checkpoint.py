"""Crash-safe checkpoints: a killed run, started again with the same command, continues.

Each checkpoint is a folder out/checkpoints/step-NNNNNNN holding the adapter (a loadable peft
folder), the optimizer and scheduler state, the RNG state and the running totals. It is written
under a temporary name and renamed into place, so a folder that exists is complete. The data
order is rebuilt from the seed, so the step number is all a resume needs to skip what was done.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from generators.errors import UsageError

PREFIX = "step-"


def checkpoints_dir(out: Path) -> Path:
    return out / "checkpoints"


def latest(out: Path) -> Path | None:
    found = sorted(p for p in checkpoints_dir(out).glob(f"{PREFIX}*")
                   if p.is_dir() and (p / "state.pt").exists() and (p / "meta.json").exists())
    return found[-1] if found else None


def save(out: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
         meta: dict[str, Any], keep: int) -> Path:
    root = checkpoints_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    partial = root / f".partial-{PREFIX}{step:07d}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save(state, partial / "state.pt")
    (partial / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    partial.replace(final)
    for old in sorted(root.glob(f"{PREFIX}*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str) -> dict[str, Any]:
    """Restore training state from `path`; refuse a checkpoint made with other settings."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta = json.loads((path / "meta.json").read_text())
    if meta.get("fingerprint") != fingerprint:
        raise UsageError(f"{path.parent.parent}: holds a checkpoint from a run with other settings "
                         "or data; use a new --out, or delete its checkpoints/ to start over")
    weights = path / "adapter_model.safetensors"
    set_peft_model_state_dict(model, load_file(str(weights)))
    state = torch.load(path / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return meta
