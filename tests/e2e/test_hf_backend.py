"""The local transformers backend: batching, finish reasons, logprobs; and a real self-chat on SmolLM2."""
from __future__ import annotations

import asyncio
import json
import math

import pytest

from generators.backends.base import ChatRequest, RequestFailed, Sampling
from generators.backends.hf_backend import HFBackend
from tests.helpers import gen_env, read_jsonl, run_gen, write_seeds

pytestmark = pytest.mark.slow  # runs a real (tiny) model


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return tiny_model_dir


def complete_all(backend, requests):
    async def go():
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests), return_exceptions=True)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def test_concurrent_requests_are_batched_and_each_gets_its_answer(tiny):
    backend = HFBackend(model=str(tiny), batch_size=8)
    sampling = Sampling(max_tokens=6)
    prompts_ = [f"What is {i}?" for i in range(5)]
    results = complete_all(backend, [ChatRequest.of([{"role": "user", "content": p}], sampling) for p in prompts_])
    assert len(results) == 5 and all(not isinstance(r, Exception) for r in results)
    for result in results:
        assert result.completion_tokens <= 6 and result.prompt_tokens > 0
        assert result.finish in ("stop", "length")
    # greedy decoding is deterministic: one request alone gives the same text as inside the batch
    alone = complete_all(HFBackend(model=str(tiny)), [ChatRequest.of([{"role": "user", "content": prompts_[2]}], sampling)])
    assert alone[0].text == results[2].text


def test_logprobs_are_a_distribution_with_top_k(tiny):
    backend = HFBackend(model=str(tiny))
    [result] = complete_all(backend, [ChatRequest.of([{"role": "user", "content": "Score?"}],
                                                     Sampling(max_tokens=3, logprobs=5))])
    assert len(result.logprobs) == result.completion_tokens
    for entry in result.logprobs:
        assert entry["logprob"] <= 0 and 1 <= len(entry["top"]) <= 5  # same-text tokens merge
        assert max(entry["top"].values()) >= entry["logprob"] - 1e-5
        assert sum(math.exp(v) for v in entry["top"].values()) <= 1 + 1e-4


def test_a_model_that_cannot_load_fails_each_request_not_the_process(tmp_path):
    backend = HFBackend(model=str(tmp_path / "missing"))
    [result] = complete_all(backend, [ChatRequest.of([{"role": "user", "content": "hi"}])])
    assert isinstance(result, RequestFailed) and "local generation failed" in result.reason


def test_two_seed_selfchat_on_the_embedded_smollm2(tmp_path):
    seeds = write_seeds(tmp_path / "s.jsonl", ["What is the capital of France?", "How do plants make food?"])
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf", "--mode", "agents",
                   "--max-turns", "1", "--max-tokens", "160", "--temperature", "0", "--out", tmp_path / "out",
                   "--cache-dir", tmp_path / "cache", "--no-progress", env=gen_env(BALEEN_CACHE=str(_model_cache())),
                   timeout=600)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["kept"] + counts["rejected"] + counts["errors"] == 2 and counts["errors"] == 0
    assert manifest["settings"]["model"] == "smollm2-135m" and manifest["usage"]["completion_tokens"] > 0
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    for record in kept:
        assert record["messages"][0]["content"] == record["meta"]["seed"]
        assert record["messages"][1]["role"] == "assistant" and len(record["messages"][1]["content"]) >= 20
    assert kept, "SmolLM2 answers a plain question within 160 tokens"


def _model_cache():
    """The converted SmolLM2 lives in the user's cache (made once, ~35 s), not per test."""
    from generators.backends.embedded import default_cache_dir

    return default_cache_dir()
