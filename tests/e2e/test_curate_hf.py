"""`gen curate` with the local transformers backend: the current model M_k (base + LoRA adapter)
rates records; a tiny random model never writes a valid score, so this checks the plumbing
(adapter loading, logprobs requested, resampling, unparsed_score) rather than the ratings."""
from __future__ import annotations

import json

import pytest

from tests import tiny_model
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen

pytestmark = pytest.mark.slow  # runs a real (tiny) model




@pytest.fixture(scope="module")
def tiny_with_adapter(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("tiny")
    base = tiny_model.build(root / "base")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(root / "adapter")
    return base, root / "adapter"


def test_current_model_with_adapter_rates_and_unparsed_are_rejected(tmp_path, tiny_with_adapter):
    base, adapter = tiny_with_adapter
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in tiny_model.records(3)), "utf-8")
    out = tmp_path / "out"
    proc = run_gen("curate", "--input", inp, "--backend", "hf", "--model", base, "--adapter", adapter,
                   "--max-tokens", "6", "--retries-unparsed", "1", "--no-dedup", "--lang", "any",
                   "--constrained", "off", "--out", out, "--no-progress",
                   env=gen_env(BALEEN_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [r["reject"] for r in rejected] == ["unparsed_score"] * 3
    for r in rejected:
        cur = r["meta"]["curation"]
        assert cur["adapter"] == str(adapter) and cur["rater"].startswith(f"{base}+{adapter}@") and cur["attempts"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["rater"]["sampling"]["logprobs"] == 10
    assert manifest["usage"]["requests"] == 6 and manifest["counts"]["kept"] == 0


def test_constrained_the_same_random_rater_leaves_nothing_unparsed(tmp_path, tiny_with_adapter):
    """--constrained auto (the default) on hf: the logits processor keeps the random model on
    "reasoning, then Score: N", so every record is rated at the first attempt."""
    base, adapter = tiny_with_adapter
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in tiny_model.records(3)), "utf-8")
    out = tmp_path / "out"
    proc = run_gen("curate", "--input", inp, "--backend", "hf", "--model", base, "--adapter", adapter,
                   "--max-tokens", "40", "--retries-unparsed", "1", "--no-dedup", "--lang", "any", "--threshold", "1",
                   "--out", out, "--no-progress", env=gen_env(BALEEN_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr
    rated = read_jsonl(out / "data.jsonl")
    assert len(rated) == 3 and read_jsonl(out / "rejected.jsonl") == []
    for r in rated:
        cur = r["meta"]["curation"]
        assert cur["attempts"] == 1 and cur["guide"] == "regex" and r["score"] in (1, 2, 3, 4, 5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rating"]["unparsed"] == 0 and manifest["rating"]["constrained"] == "regex"
    assert manifest["settings"]["rater"]["sampling"]["guide"][0] == "regex"


def test_direct_scores_come_from_the_digit_after_a_prefilled_score(tmp_path):
    """--score-mode direct on the real SmolLM2: every record gets a score 1-5 from the token after
    'Score:', and an expected score between 1 and 5; the prompt continues the prefilled answer."""
    from generators.backends.embedded import default_cache_dir

    inp = tmp_path / "in.jsonl"
    pairs = [("What is the capital of France?", "The capital of France is Paris."),
             ("How do I boil an egg?", "Buy our eggs at the best price! Click here for deals and coupons.")]
    inp.write_text("".join(json.dumps({"id": f"r{i}", "source": "t", "tag": "augmented", "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
        for i, (q, a) in enumerate(pairs)))
    proc = run_gen("curate", "--input", inp, "--backend", "hf", "--score-mode", "direct", "--threshold", "1",
                   "--lang", "any", "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--no-progress",
                   env=gen_env(BALEEN_CACHE=str(default_cache_dir())), timeout=600)
    assert proc.returncode == 0, proc.stderr
    kept = read_jsonl(tmp_path / "out" / "data.jsonl")
    assert len(kept) == 2
    for record in kept:
        assert record["score"] in (1, 2, 3, 4, 5) and 1 <= record["score_expected"] <= 5
        assert record["meta"]["curation"]["attempts"] == 1


def test_direct_scores_need_a_local_backend(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"messages": [{"role": "user", "content": "hi there you"},
                                            {"role": "assistant", "content": "hello"}]}) + "\n")
    proc = run_gen("curate", "--input", inp, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--model", "judge", "--score-mode", "direct", "--out", tmp_path / "out")
    assert_one_line_error(proc, 2, "--score-mode direct")
