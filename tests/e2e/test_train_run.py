"""The trainer end to end on the tiny model, in process: loss goes down, the adapter loads in
peft and is servable, the manifest counts per tag, a crash resumes to the same weights."""
from __future__ import annotations

import json

import pytest
import torch

from training.config import TrainConfig
from training.trainer import train

from tests import tiny_model

pytestmark = pytest.mark.slow  # runs a real (tiny) model


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    torch.set_num_threads(1)
    return str(tiny_model_dir)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "data.jsonl"
    rows = tiny_model.records(24)
    rows.append({"id": "plain", "source": "t", "messages": [{"role": "user", "content": "Hi"},
                                                            {"role": "assistant", "content": "Hello."}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def quiet(_: str) -> None:
    pass


def config(base, data, out, **kw):
    opts = dict(data=[data], base=base, out=str(out), lr=5e-3, batch_size=4, max_steps=8,
                log_every=1, eval_frac=0.15, grad_checkpointing=False, warmup_ratio=0.0)
    opts.update(kw)
    return TrainConfig(**opts)


def test_loss_goes_down_and_the_adapter_is_servable(base, data, tmp_path):
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    m = train(config(base, data, out, max_steps=24, weights={"seed": 1.0, "augmented": 0.1, "none": 1.0},
                     grad_checkpointing=True, packing="on"), log=quiet)
    losses = [h["loss"] for h in m["losses"]["history"]]
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4
    assert m["status"] == "complete" and m["progress"]["step"] == 24
    assert m["losses"]["eval"]["loss"] > 0 and set(m["losses"]["eval"]["per_tag"]) <= {"seed", "augmented", "none"}
    data_ = m["data"]
    assert set(data_["train"]) | set(data_["eval"]) == {"seed", "augmented", "none"}
    assert sum(v["examples"] for v in data_["train"].values()) + \
        sum(v["examples"] for v in data_["eval"].values()) == 25
    assert data_["dropped_total"] == 0
    assert m["throughput"]["tokens_per_s"] > 0 and m["batching"]["packed"] is True
    assert m["weights"]["augmented"] == 0.1 and "torch" in m["versions"]
    # a PEFT adapter folder that peft loads, with nothing vLLM refuses
    cfg = PeftConfig.from_pretrained(out)
    assert cfg.r == 16 and cfg.lora_alpha == 32 and not cfg.use_dora and cfg.bias == "none"
    assert not cfg.modules_to_save
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(out))
    assert any("lora_A" in n for n, _ in model.named_parameters())
    assert not (out / "checkpoints").exists()


def test_crash_then_rerun_resumes_to_the_same_weights(base, data, tmp_path):
    from safetensors.torch import load_file

    straight = train(config(base, data, tmp_path / "a", save_every=3), log=quiet)

    class Killed(Exception):
        pass

    def die_at_5(step, _):
        if step == 5:
            raise Killed

    b = tmp_path / "b"
    with pytest.raises(Killed):
        train(config(base, data, b, save_every=3), on_step=die_at_5, log=quiet)
    assert (b / "checkpoints" / "step-0000003").is_dir()
    assert json.loads((b / "manifest.json").read_text())["status"] == "running"
    resumed = train(config(base, data, b, save_every=3), log=quiet)
    assert resumed["progress"]["resumed_from"] == [3]
    assert resumed["sessions"] == 2 and "duration_s" in resumed  # the manifest every stage writes
    wa, wb = load_file(str(tmp_path / "a" / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert [h["loss"] for h in resumed["losses"]["history"]] == [h["loss"] for h in straight["losses"]["history"]]
    # a finished run, started again, does nothing
    lines = []
    again = train(config(base, data, b, save_every=3), log=lines.append)
    assert again["progress"] == resumed["progress"] and "already finished" in lines[0]


def test_changed_settings_do_not_resume_silently(base, data, tmp_path):
    from generators.core.errors import UsageError

    class Killed(Exception):
        pass

    def die(step, _):
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        train(config(base, data, tmp_path / "c", save_every=1), on_step=die, log=quiet)
    with pytest.raises(UsageError, match="other settings"):
        train(config(base, data, tmp_path / "c", save_every=1, lr=1e-3), log=quiet)


def test_backward_padded_and_merged(base, data, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "back"
    m = train(config(base, data, out, direction="backward", packing="off", max_steps=2, merge=True,
                     grad_accum=2), log=quiet)
    assert m["direction"] == "backward" and m["batching"]["packed"] is False
    assert m["throughput"]["padded_tokens"] >= m["throughput"]["tokens"]
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert merged.config.num_hidden_layers == 2 and (out / "merged" / "tokenizer.json").exists()
