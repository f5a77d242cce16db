"""What names a LoRA adapter: its folder and a hash of its config and weights.

A retrained adapter at the same path is a different model, so the response cache and the
run fingerprints must tell them apart; the path alone would serve stale answers.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from generators.core.errors import UsageError


def adapter_identity(path: str) -> str:
    """'path@sha8' of adapter_config.json and adapter_model.*; UsageError when it is no adapter."""
    folder = Path(path)
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise UsageError(f"--adapter {path}: no adapter_config.json there; give the folder a "
                         "LoRA adapter was saved to (gen train --out DIR)")
    digest = hashlib.sha256(config.read_bytes())
    for weights in sorted(folder.glob("adapter_model.*")):
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{path}@{digest.hexdigest()[:8]}"
