"""The training loop: records in, a vLLM-servable LoRA adapter folder out (`gen train`).

A small explicit loop rather than transformers.Trainer, because three things here are exact
and easy to check when written out: the loss is normalised by the sum of token weights over
the whole optimizer step (across gradient accumulation), the data order is a pure function of
(seed, epoch) so a resume needs only the step number, and the vocabulary projection runs only
on supervised positions.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

import prompts
from generators.embedded import resolve_model
from generators.errors import UsageError
from generators.store import FolderLock, make_folder

from . import checkpoint, manifest
from .collate import Batch, collate, plan_batches
from .config import TrainConfig
from .lora import (attach_lora, check_servable, has_varlen_attention, load_base, lora_config, merge_adapter,
                   packing_works, pick_device)
from .loss import token_losses, weighted_loss
from .render import conversations, default_tag_texts, read_data, seed_records_with_where
from .seed_oasst import load_oasst_seed
from .tokenize import EncodeStats, Example, encode_all, stop_token_ids

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Prepared:
    tokenizer: Any
    base_path: str
    train: list[Example]
    eval: list[Example]
    stats: EncodeStats
    tag_texts: dict[str, str]
    fingerprint: str


def load_tokenizer(base_path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base_path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--base {base_path}: cannot load its tokenizer ({str(exc).splitlines()[0][:160]}); "
                         "pass a local model folder, or smollm2-135m for the embedded model") from None
    if not getattr(tok, "chat_template", None):
        raise UsageError(f"--base {base_path}: the tokenizer has no chat template; use an instruct "
                         "model (training must render text exactly as serving will)")
    return tok


def split_eval(examples: list[Example], frac: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A held-out set chosen by a hash of the record id: stable across runs and resumes."""
    if frac <= 0 or len(examples) < 2:
        return examples, []

    def u(e: Example) -> float:
        return int(hashlib.sha256(f"{seed}:{e.record_id}".encode()).hexdigest()[:12], 16) / 16**12

    held = {id(e) for e in examples if u(e) < frac}
    if not held:
        held = {id(min(examples, key=u))}
    return [e for e in examples if id(e) not in held], [e for e in examples if id(e) in held]


def prepare(cfg: TrainConfig, log: Log = _stderr) -> Prepared:
    """Everything before the model: records → conversations → token ids, labels, split."""
    check_servable(lora_config(cfg), cfg.max_lora_rank)
    if cfg.direction not in ("forward", "backward"):
        raise UsageError(f"--direction {cfg.direction}: choose forward or backward")
    tag_texts = {**default_tag_texts(), **cfg.tag_texts}
    sources = list(read_data(cfg.data))
    if cfg.seed_data:
        seed = load_oasst_seed(cfg.seed_data, cfg.seed_limit)
        if not seed:
            raise UsageError(f"--seed-data {cfg.seed_data}: no English first-turn pair with a "
                             "rank-0 answer found; check the export")
        log(f"seed: {len(seed)} Open Assistant pairs from {cfg.seed_data}")
        sources += seed_records_with_where(seed, f"seed:{cfg.seed_data}")
    if not sources:
        raise UsageError("no training data: give --data PATH and/or --seed-data oasst1|PATH")
    convs = conversations(sources, cfg.direction, tag_texts)
    base_path = resolve_model(cfg.base, cfg.cache_dir)
    tokenizer = load_tokenizer(base_path)
    try:
        from transformers import GenerationConfig

        gen_cfg = GenerationConfig.from_pretrained(base_path)
    except OSError:
        gen_cfg = None
    examples, stats = encode_all(convs, tokenizer, cfg.max_length, stop_token_ids(tokenizer, gen_cfg))
    if not examples:
        raise UsageError(f"no example kept a supervised token ({dict(stats.dropped)}); raise "
                         "--max-length or check the data")
    train, held = split_eval(examples, cfg.eval_frac, cfg.seed)
    digest = hashlib.sha256("\n".join(f"{e.record_id}:{len(e.input_ids)}:{e.n_supervised}"
                                      for e in examples).encode()).hexdigest()[:16]
    return Prepared(tokenizer, base_path, train, held, stats, tag_texts, cfg.fingerprint(digest))


class Schedule:
    """Linear warm-up, then linear decay from lr to lr * end_ratio (Humpback: 1e-5 → 9e-6)."""

    def __init__(self, total: int, warmup: int, end_ratio: float) -> None:
        self.total, self.warmup, self.end = total, warmup, end_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        return 1.0 - (1.0 - self.end) * min(1.0, (step - self.warmup) / span)


class MicroBatches:
    """The k-th micro-batch of the whole run, epoch after epoch, from the deterministic plan."""

    def __init__(self, examples: list[Example], batch_size: int, seed: int, packed: bool,
                 pad_id: int, weights: dict[str, float]) -> None:
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self.packed, self.pad_id, self.weights = packed, pad_id, weights
        self.lengths = [len(e.input_ids) for e in examples]
        self.per_epoch = math.ceil(len(examples) / batch_size)
        self._plans: dict[int, list[list[int]]] = {}

    def __getitem__(self, k: int) -> Batch:
        epoch, i = divmod(k, self.per_epoch)
        if epoch not in self._plans:
            self._plans = {epoch: plan_batches(self.lengths, self.batch_size, self.seed, epoch)}
        return collate([self.examples[j] for j in self._plans[epoch][i]], self.weights, self.packed, self.pad_id)


@torch.no_grad()
def evaluate(model: Any, examples: list[Example], batch_size: int, packed: bool, pad_id: int,
             device: torch.device, autocast: Any) -> dict[str, Any]:
    """Held-out loss: mean token CE per tag, and the weighted mean the training optimises."""
    if not examples:
        return {}
    model.eval()
    sums: dict[str, list[float]] = {}
    ones = {k: 1.0 for k in ("seed", "augmented", "none")}
    by_tag: dict[str, list[Example]] = {}
    for ex in examples:
        by_tag.setdefault(ex.tag or "none", []).append(ex)
    for tag, group in by_tag.items():  # batches of one tag keep per-tag sums exact
        for s in range(0, len(group), batch_size):
            b = collate(group[s:s + batch_size], ones, packed, pad_id).to(device)
            with autocast():
                ce, _ = token_losses(model, b)
            acc = sums.setdefault(tag, [0.0, 0])
            acc[0] += float(ce.sum())
            acc[1] += ce.numel()
    model.train()
    per_tag = {k: round(v[0] / v[1], 5) for k, v in sums.items() if v[1]}
    total = sum(v[0] for v in sums.values()) / max(1, sum(v[1] for v in sums.values()))
    return {"loss": round(total, 5), "per_tag": per_tag,
            "tokens": int(sum(v[1] for v in sums.values()))}


def choose_packing(mode: str, model: Any, device: torch.device) -> bool:
    """Packed when asked (and correct), or by default where attention has variable-length
    kernels (flash attention). With sdpa/eager a packed row costs attention over the whole row
    (a block-diagonal mask still computes every pair), so length-grouped padding is faster."""
    if mode == "off":
        return False
    if mode == "auto" and not has_varlen_attention(model):
        return False
    if packing_works(model, device):
        return True
    if mode == "on":
        raise UsageError("--packing on: this model's attention does not keep packed examples "
                         "apart; use --packing auto or off")
    return False


def train(cfg: TrainConfig, on_step: Callable[[int, dict[str, Any]], None] | None = None,
          log: Log = _stderr) -> dict[str, Any]:
    """Run (or resume, or recognise as done) one training run; returns the manifest."""
    t_start = time.perf_counter()
    out = Path(cfg.out)
    prep = prepare(cfg, log)
    make_folder(out)
    lock = FolderLock(out)  # one trainer per --out; the OS frees it if this process is killed
    try:
        return _train(cfg, prep, out, t_start, on_step, log)
    finally:
        lock.release()


def _train(cfg: TrainConfig, prep: Prepared, out: Path, t_start: float,
           on_step: Callable[[int, dict[str, Any]], None] | None, log: Log) -> dict[str, Any]:
    done = manifest.read(out)
    if done and done.get("status") == "complete" and done.get("fingerprint") == prep.fingerprint \
            and (out / "adapter_model.safetensors").exists():
        log(f"{out}: this run already finished; nothing to do (use a new --out to train again)")
        return done
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    batch_size = cfg.batch_size
    if cfg.small_data_batch_size and len(prep.train) < 3000:
        batch_size = cfg.small_data_batch_size
    model = attach_lora(load_base(cfg, prep.base_path, device), cfg)
    packed = choose_packing(cfg.packing, model, device)
    pad_id = prep.tokenizer.pad_token_id
    pad_id = prep.tokenizer.eos_token_id if pad_id is None else pad_id
    weights = {"seed": 1.0, "augmented": 1.0, "none": 1.0, **cfg.weights}
    stream = MicroBatches(prep.train, batch_size, cfg.seed, packed, pad_id or 0, weights)
    steps_per_epoch = math.ceil(stream.per_epoch / cfg.grad_accum)
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, Schedule(total, int(cfg.warmup_ratio * total), cfg.lr_end_ratio))
    use_bf16 = cfg.load_4bit or (device.type == "cuda" and next(model.parameters()).dtype == torch.bfloat16)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext

    state: dict[str, Any] = {"history": [], "eval_history": [], "tokens": 0, "padded_tokens": 0,
                             "supervised_tokens": 0, "train_seconds": 0.0, "resumed_from": []}
    start = 0
    last = checkpoint.latest(out)
    if last is not None:
        meta = checkpoint.load(last, model, optimizer, scheduler, prep.fingerprint)
        start = meta["step"]
        state.update({k: meta[k] for k in state if k in meta})
        state["resumed_from"] = state["resumed_from"] + [start]
        log(f"resuming from {last} (step {start} of {total})")
    info = {"packed": packed, "batch_size": batch_size, "grad_accum": cfg.grad_accum,
            "micro_batches_per_epoch": stream.per_epoch, "total_steps": total,
            "gradient_checkpointing": cfg.grad_checkpointing, "bf16": use_bf16, "device": str(device)}
    log(f"training {len(prep.train)} examples ({len(prep.eval)} held out), {total} steps, "
        f"{'packed' if packed else 'padded'} batches of {batch_size} x {cfg.grad_accum}, on {device}")

    def snapshot(status: str, step: int, final_eval: dict[str, Any] | None = None) -> dict[str, Any]:
        t = state["train_seconds"] or 1e-9
        return {
            "stage": "train", "status": status, "command": manifest.argv(), "fingerprint": prep.fingerprint,
            "base_model": prep.base_path, "direction": cfg.direction,
            "settings": manifest.config_dict(cfg), "batching": info,
            "tag_texts": {k: prep.tag_texts[k] for k in ("seed", "augmented")}, "weights": weights,
            "templates": {n: prompts.template_id(n) for n in ("tag_seed", "tag_augmented", "backward")},
            "chat_template": hashlib.sha256(str(prep.tokenizer.chat_template).encode()).hexdigest()[:12],
            "data": manifest.data_summary(prep.train, prep.eval, prep.stats),
            "progress": {"step": step, "total_steps": total, "resumed_from": state["resumed_from"]},
            "losses": {"history": state["history"], "eval_history": state["eval_history"],
                       "final_train_loss": state["history"][-1]["loss"] if state["history"] else None,
                       "eval": final_eval},
            "throughput": {"tokens": state["tokens"], "padded_tokens": state["padded_tokens"],
                           "supervised_tokens": state["supervised_tokens"],
                           "train_seconds": round(state["train_seconds"], 3),
                           "tokens_per_s": round(state["tokens"] / t, 1),
                           "supervised_tokens_per_s": round(state["supervised_tokens"] / t, 1)},
            "memory": manifest.peak_memory_mb(device), "versions": manifest.versions(),
            "durations": {"this_session_s": round(time.perf_counter() - t_start, 2)},
        }

    model.train()
    for step in range(start, total):
        t0 = time.perf_counter()
        batches = [stream[k] for k in range(step * cfg.grad_accum, (step + 1) * cfg.grad_accum)]
        norm = sum(float(b.weights.sum()) for b in batches)
        step_loss = 0.0
        if norm > 0:
            for b in batches:
                with autocast():
                    loss, _ = weighted_loss(model, b.to(device), norm)
                loss.backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        state["train_seconds"] += time.perf_counter() - t0
        state["tokens"] += sum(b.n_tokens for b in batches)
        state["padded_tokens"] += sum(b.n_padded for b in batches)
        state["supervised_tokens"] += sum(int((b.weights > 0).sum()) for b in batches)
        done_steps = step + 1
        record = {"step": done_steps, "loss": round(step_loss, 5), "lr": scheduler.get_last_lr()[0]}
        if done_steps % cfg.log_every == 0 or done_steps in (1, total):
            state["history"].append(record)
            log(f"step {done_steps}/{total} loss {step_loss:.4f} lr {record['lr']:.2e}")
        if cfg.eval_every and done_steps % cfg.eval_every == 0 and done_steps < total:
            ev = evaluate(model, prep.eval, batch_size, packed, pad_id or 0, device, autocast)
            if ev:
                state["eval_history"].append({"step": done_steps, **ev})
        if on_step is not None:
            on_step(done_steps, record)
        if cfg.save_every and done_steps % cfg.save_every == 0 and done_steps < total:
            checkpoint.save(out, done_steps, model, optimizer, scheduler,
                            {"fingerprint": prep.fingerprint, **state}, cfg.save_total_limit)
            manifest.write(out, snapshot("running", done_steps))
    final_eval = evaluate(model, prep.eval, batch_size, packed, pad_id or 0, device, autocast)
    if final_eval:
        log(f"held-out loss {final_eval['loss']:.4f} {final_eval['per_tag']}")
    model.save_pretrained(out)
    result = snapshot("complete", total, final_eval)
    if cfg.merge:
        merge_adapter(prep.base_path, out, out / "merged")
        result["merged"] = str(out / "merged")
    manifest.write(out, result)
    shutil.rmtree(checkpoint.checkpoints_dir(out), ignore_errors=True)
    log(f"adapter written to {out} ({total} steps, {result['throughput']['tokens_per_s']} tokens/s)")
    return result
