"""`gen train` under torchrun on the CPU (gloo, 2 processes, the tiny model).

Two processes with micro-batch b must make the same adapter as one process with --grad-accum 2
and the same b (the data plan and the loss normalisation are global). A run whose rank 1 dies
mid-way must not leave rank 0 hanging, and the same command must resume it to the same weights,
under DDP and under --fsdp. Run as a script (under torchrun), this file is the dying trainer: it
runs `gen` with a trainer hook that ends one rank abruptly after a given step.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GEN = str(Path(sys.executable).with_name("gen"))
FLAGS = ["--batch-size", "2", "--max-steps", "6", "--lora-dropout", "0", "--eval-frac", "0.15",
         "--eval-every", "2", "--log-every", "1", "--save-every", "2", "--no-grad-checkpointing"]

pytestmark = pytest.mark.slow  # runs a real (tiny) model, in several processes


def torchrun(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    from tests.helpers import gen_env

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           script, *args]
    return subprocess.run(cmd, env=gen_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    from tests import tiny_model

    path = tmp_path_factory.mktemp("ddp") / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in tiny_model.records(24)))
    return str(path)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data, tmp_path_factory) -> dict:
    """One process, --grad-accum 2: what the two-process runs must reproduce."""
    import torch

    from training.config import TrainConfig
    from training.trainer import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ref") / "run"
    m = train(TrainConfig(data=[data], base=str(tiny_model_dir), out=str(out), batch_size=2, max_steps=6,
                          lora_dropout=0.0, eval_frac=0.15, eval_every=2, log_every=1, save_every=2,
                          grad_checkpointing=False, grad_accum=2), log=lambda _: None)
    return {"manifest": m, "out": out}


def relative_difference(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and wa
    num = sum(float((wa[k].double() - wb[k].double()).norm()) ** 2 for k in wa) ** 0.5
    return num / sum(float(wb[k].double().norm()) ** 2 for k in wb) ** 0.5


def losses(manifest: dict) -> list[float]:
    """Training losses of every logged step, then the held-out losses (dealt out to the ranks)."""
    return [h["loss"] for h in manifest["losses"]["history"]] + \
        [h["loss"] for h in manifest["losses"]["eval_history"]] + [manifest["losses"]["eval"]["loss"]]


def test_two_processes_make_the_adapter_of_one_with_grad_accum(tiny_model_dir, data, reference, tmp_path):
    out = tmp_path / "ddp"
    proc = torchrun(GEN, "train", "--data", data, "--base", str(tiny_model_dir), "--out", str(out), *FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert relative_difference(out, reference["out"]) <= 1e-3
    m = json.loads((out / "manifest.json").read_text())
    ref = reference["manifest"]
    assert m["batching"]["world_size"] == 2 and m["batching"]["parallel"] == "ddp"
    assert m["batching"]["process_group"] == "gloo"
    assert m["batching"]["batch_size"] == 2 and m["batching"]["effective_batch_size"] == 4
    assert ref["batching"]["effective_batch_size"] == 4 and ref["batching"]["world_size"] == 1
    # the same updates, so the same fingerprint: either run may resume the other's checkpoint
    assert m["fingerprint"] == ref["fingerprint"]
    assert len(losses(ref)) == 6 + 2 + 1 and losses(m) == pytest.approx(losses(ref), rel=1e-4)
    assert m["throughput"]["tokens"] == ref["throughput"]["tokens"]
    # rank 0 alone logs and writes
    assert proc.stderr.count("training 15 examples") == 1 and proc.stderr.count("adapter written") == 1
    assert sorted(p.name for p in out.iterdir()) == [".lock", "README.md", "adapter_config.json",
                                                     "adapter_model.safetensors", "manifest.json"]


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_a_rank_dies_and_the_same_command_resumes(tiny_model_dir, data, reference, tmp_path, mode):
    out = tmp_path / mode
    # --fsdp also keeps gradient checkpointing on: sharded layers recomputed in backward
    flags = FLAGS[:-1] + ["--fsdp"] if mode == "fsdp" else FLAGS
    args = ["train", "--data", data, "--base", str(tiny_model_dir), "--out", str(out), *flags]
    died = torchrun(__file__, "3", "1", *args)  # rank 1 ends abruptly after step 3
    assert died.returncode != 0
    assert "exitcode  : 137" in died.stderr, died.stderr[-3000:]  # seen by torchrun, which ends rank 0
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000002"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert not (out / "adapter_model.safetensors").exists()

    proc = torchrun(GEN, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["progress"]["resumed_from"] == [2]
    assert m["batching"]["parallel"] == mode and m["batching"]["world_size"] == 2
    assert relative_difference(out, reference["out"]) <= 1e-3
    assert losses(m) == pytest.approx(losses(reference["manifest"]), rel=1e-4)
    assert not (out / "checkpoints").exists()


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_refusal_is_said_once_by_rank_0(tiny_model_dir, data, tmp_path, monkeypatch, capsys, rank):
    """Refusals come before the process group, alike on every rank; only rank 0 prints the line
    (torchrun's environment, set by hand: no group is needed to refuse)."""
    from generators.cli import main

    for name, value in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", data, "--base", str(tiny_model_dir), "--out", str(out), "--fsdp", "--merge"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and not out.exists()
    if rank == "0":
        assert len(err) == 1 and err[0].startswith("gen: error: --fsdp with --merge"), err
    else:
        assert err == []


def _die_after(step: int, rank: int) -> None:
    """Run `gen` (argv after the two numbers) with rank `rank` ending abruptly after `step`."""
    import training.trainer as trainer

    real = trainer.train

    def train(cfg, on_step=None, log=trainer._stderr):
        def hook(done: int, record: dict) -> None:
            if done == step and int(os.environ["RANK"]) == rank:
                os._exit(137)  # no cleanup, as a killed process

        return real(cfg, on_step=hook, log=log)

    trainer.train = train
    from generators.cli import main

    main(sys.argv[3:])


if __name__ == "__main__":
    _die_after(int(sys.argv[1]), int(sys.argv[2]))
