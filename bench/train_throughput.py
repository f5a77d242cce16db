"""Training throughput: padding-free packed batches vs length-grouped padded batches.

Same model, same examples, same number of optimizer steps; only the batching differs:
padded-random (naive), padded-grouped (length-grouped, the trainer's fallback), packed (one row
per micro-batch, position ids restart per example). Prints tokens/s (real tokens, padding excluded) for each and the packed/padded ratio,
plus MFU on CUDA. Lengths follow a realistic spread (log-normal answers, some multi-turn).

  python bench/train_throughput.py                         # tiny model, CPU
  python bench/train_throughput.py --model smollm2         # the embedded SmolLM2-135M
  python bench/train_throughput.py --model 1b --device cuda --batch-size 16 --max-length 2048
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from training.collate import collate, plan_batches  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.loss import weighted_loss  # noqa: E402
from training.render import default_tag_texts, to_conversation  # noqa: E402
from training.tokenize import encode_all, stop_token_ids  # noqa: E402

WORDS = ("whale krill ocean baleen humpback feeding song migration water surface dive calf pod "
         "plankton tail fin blow breach research species population coast warm cold season").split()


def records(n: int, seed: int, median_words: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        def text(median: int) -> str:
            k = max(3, int(rng.lognormvariate(math.log(median), 0.8)))
            return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."
        msgs = [{"role": "user", "content": text(20)}, {"role": "assistant", "content": text(median_words)}]
        if rng.random() < 0.3:
            msgs += [{"role": "user", "content": text(12)}, {"role": "assistant", "content": text(median_words // 2)}]
        out.append({"id": f"b{i}", "source": "bench", "messages": msgs,
                    "tag": "seed" if rng.random() < 0.3 else "augmented"})
    return out


def model_folder(name: str, tmp: Path) -> tuple[str, dict]:
    """A folder with tokenizer (+ weights for tiny/smollm2); for 1b, a config to init randomly."""
    if name == "tiny":
        from tests import tiny_model

        return str(tiny_model.build(tmp / "tiny")), {}
    from generators.backends.embedded import embedded_model_dir

    folder = str(embedded_model_dir())
    if name == "smollm2":
        return folder, {}
    # ~1.2B Llama-shaped, random init: hidden 2048, 16 layers, GQA 32/8 heads, SmolLM2's tokenizer
    return folder, dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, head_dim=64)


def build_model(folder: str, shape: dict, device: torch.device, grad_ckpt: bool, attn: str | None):
    from transformers import AutoConfig, AutoModelForCausalLM

    from training.lora import attach_lora

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    extra = {"attn_implementation": attn} if attn else {}
    torch.manual_seed(0)
    if shape:
        config = AutoConfig.from_pretrained(folder)
        for k, v in shape.items():
            setattr(config, k, v)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **extra)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra)
    model.to(device)
    model.config.use_cache = False
    cfg = TrainConfig(data=[], base=folder, out="", grad_checkpointing=grad_ckpt)
    return attach_lora(model, cfg)


def run(mode: str, examples, args, folder, shape, device, pad_id) -> dict:
    model = build_model(folder, shape, device, not args.no_grad_ckpt, args.attn_implementation)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    weights = {"seed": 1.0, "augmented": 0.1, "none": 1.0}
    plan = plan_batches([len(e.input_ids) for e in examples], args.batch_size, args.seed, 0,
                        group_by_length=mode != "padded-random")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else None
    tokens = padded = 0
    elapsed = 0.0
    for step, idx in enumerate(plan[: args.steps + 1]):
        batch = collate([examples[i] for i in idx], weights, mode == "packed", pad_id).to(device)
        norm = float(batch.weights.sum())
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if autocast:
            with autocast():
                loss, _ = weighted_loss(model, batch, norm)
        else:
            loss, _ = weighted_loss(model, batch, norm)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step == 0:
            continue  # warm-up: allocator, kernels
        elapsed += time.perf_counter() - t0
        tokens += batch.n_tokens
        padded += batch.n_padded
    n_params = sum(p.numel() for p in model.parameters())
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return {"tokens": tokens, "padded": padded, "seconds": elapsed, "tps": tokens / elapsed,
            "params": n_params, "peak_gib": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", "--model-size", dest="model", choices=["tiny", "smollm2", "1b"], default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--examples", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--median-words", type=int, default=120, help="median answer length in words")
    ap.add_argument("--no-grad-ckpt", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="GPU dense bf16 peak for MFU (H100 SXM: 989)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attn-implementation", default=None, help="e.g. flash_attention_2, sdpa, eager")
    ap.add_argument("--modes", default="padded-random,padded-grouped,packed")
    args = ap.parse_args()
    device = torch.device(args.device)
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        folder, shape = model_folder(args.model, Path(tmp))
        tok = AutoTokenizer.from_pretrained(folder)
        convs = [to_conversation(r, f"bench:{i}", "forward", default_tag_texts())
                 for i, r in enumerate(records(args.examples, args.seed, args.median_words))]
        examples, stats = encode_all(convs, tok, args.max_length, stop_token_ids(tok))
        lengths = sorted(len(e.input_ids) for e in examples)
        print(f"model {args.model} on {device}; {len(examples)} examples, tokens min {lengths[0]} "
              f"median {lengths[len(lengths) // 2]} max {lengths[-1]}; batch {args.batch_size}; "
              f"{args.steps} timed steps; grad checkpointing {'off' if args.no_grad_ckpt else 'on'}")
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        results = {mode: run(mode, examples, args, folder, shape, device, pad_id) for mode in args.modes.split(",")}
    for mode, r in results.items():
        line = (f"{mode:14s} {r['tps']:10.1f} tokens/s  ({r['tokens']} real tokens, "
                f"{r['padded']} with padding, {r['seconds']:.2f} s)")
        if device.type == "cuda":
            # LoRA on a frozen base: forward 2N + activation grads 2N (+2N recompute with checkpointing)
            flops = (6 if not args.no_grad_ckpt else 4) * r["params"] * r["tps"]
            line += f"  MFU {100 * flops / (args.peak_tflops * 1e12):.1f}%  peak {r['peak_gib']:.1f} GiB"
        print(line)
    for base in ("padded-grouped", "padded-random"):
        if "packed" in results and base in results:
            print(f"packed/{base} tokens/s ratio: {results['packed']['tps'] / results[base]['tps']:.2f}")


if __name__ == "__main__":
    main()
