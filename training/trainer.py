"""The training loop: records in, a vLLM-servable LoRA adapter folder out (`gen train`).

A small explicit loop rather than transformers.Trainer, because three things here are exact
and easy to check when written out: the loss is normalised by the sum of token weights over
the whole optimizer step (across gradient accumulation), the data order is a pure function of
(seed, epoch) so a resume needs only the step number, and the vocabulary projection runs only
on supervised positions. Under torchrun (training/distributed.py) these hold for the whole
job: a step's micro-batches are dealt out to the ranks, every rank knows the step's weight sum
from the plan, and the all-reduced gradient is the one grad accumulation would give.
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
from generators.backends.embedded import resolve_model
from generators.core.errors import BaleenError, UsageError
from generators.core.manifest import Manifest
from generators.core.store import FolderLock, lock_folder

from training import checkpoint, distributed, manifest
from training.collate import Batch, collate, plan_batches
from training.config import TrainConfig
from training.distributed import Dist
from training.lora import (attach_lora, check_servable, has_varlen_attention, load_base, lora_config, merge_adapter,
                   packing_works)
from training.loss import token_losses, weighted_loss
from training.render import conversations, default_tag_texts, read_data, seed_records_with_where
from training.seed_oasst import load_oasst_seed
from training.tokenize import IGNORE, EncodeStats, Example, encode_all, stop_token_ids

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet(_: str) -> None:
    """Ranks other than 0 keep quiet: one progress log per run, not one per process."""


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


def prepare(cfg: TrainConfig, log: Log = _stderr, world_size: int = 1) -> Prepared:
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
    return Prepared(tokenizer, base_path, train, held, stats, tag_texts, cfg.fingerprint(digest, world_size))


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
        self.targets = [sum(t != IGNORE for t in e.labels[1:]) for e in examples]
        self.per_epoch = math.ceil(len(examples) / batch_size)
        self._plans: dict[int, list[list[int]]] = {}

    def indices(self, k: int) -> list[int]:
        epoch, i = divmod(k, self.per_epoch)
        if epoch not in self._plans:
            self._plans = {epoch: plan_batches(self.lengths, self.batch_size, self.seed, epoch)}
        return self._plans[epoch][i]

    def __getitem__(self, k: int) -> Batch:
        return collate([self.examples[j] for j in self.indices(k)], self.weights, self.packed, self.pad_id)

    def totals(self, k: int) -> tuple[float, int, int, int]:
        """(loss weight, tokens, tokens with padding, supervised tokens) of micro-batch k, from
        the plan alone: every rank knows the whole step's totals without building its batches."""
        idx = self.indices(k)
        weight = supervised = 0.0
        for j in idx:
            w = self.weights[self.examples[j].tag or "none"]
            weight += w * self.targets[j]
            supervised += self.targets[j] if w > 0 else 0
        tokens = sum(self.lengths[j] for j in idx)
        padded = tokens if self.packed else max(self.lengths[j] for j in idx) * len(idx)
        return weight, tokens, padded, int(supervised)


@torch.no_grad()
def evaluate(model: Any, examples: list[Example], batch_size: int, packed: bool, pad_id: int,
             device: torch.device, autocast: Any, dist: Dist | None = None,
             split: bool = True) -> dict[str, Any]:
    """Held-out loss: mean token CE per tag, and the weighted mean the training optimises.

    Under DDP the batches are dealt out to the ranks and the sums added up (split); under FSDP
    every rank must run every forward (the shards are gathered together), so none is dealt."""
    if not examples:
        return {}
    dist = dist or Dist()
    model.eval()
    ones = {k: 1.0 for k in ("seed", "augmented", "none")}
    by_tag: dict[str, list[Example]] = {}
    for ex in examples:
        by_tag.setdefault(ex.tag or "none", []).append(ex)
    tags = sorted(by_tag)
    batches = [(tag, by_tag[tag][s:s + batch_size]) for tag in tags  # one tag per batch: exact sums
               for s in range(0, len(by_tag[tag]), batch_size)]
    if split:
        batches = batches[dist.rank::dist.world]
    local = {tag: [0.0, 0.0] for tag in tags}
    for tag, group in batches:
        b = collate(group, ones, packed, pad_id).to(device)
        with autocast():
            ce, _ = token_losses(model, b)
        local[tag][0] += float(ce.sum())
        local[tag][1] += ce.numel()
    flat = [v for tag in tags for v in local[tag]]
    if split:
        flat = dist.sum(flat, device)
    sums = {tag: flat[2 * i:2 * i + 2] for i, tag in enumerate(tags)}
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
    """Run (or resume, or recognise as done) one training run; returns the manifest.

    Under torchrun every process calls this: all prepare the same data plan, rank 0 alone locks
    and writes --out, and each rank trains on its share of every optimizer step."""
    t_start = time.perf_counter()
    ctx = distributed.from_env()
    if not ctx.main:
        log = _quiet
    out = Path(cfg.out)
    try:  # before the process group, from flags and data alone: every rank refuses alike
        distributed.check(cfg, ctx)
        prep = prepare(cfg, log, ctx.world)
    except BaleenError as exc:
        raise distributed.shared(exc) if ctx.world > 1 else exc
    device = distributed.pick_device(cfg.device, ctx)
    ctx.start(device)
    lock: FolderLock | None = None
    run_manifest: Manifest | None = None
    error: BaleenError | None = None
    plan: dict[str, Any] | None = None
    if ctx.main:  # only rank 0 touches --out, and tells the others what it found there
        try:
            lock = lock_folder(out)  # one trainer per --out, as for every stage; the OS frees a killed one's
            run_manifest = Manifest(out, "train", extra_versions=manifest.TRAINING_PACKAGES)
            plan = _look(out, run_manifest.previous, prep)
        except BaleenError as exc:
            error = exc
    try:
        ctx.agree(error)
        plan = ctx.broadcast(plan)
        if plan["done"] is not None:
            log(f"{out}: this run already finished; nothing to do (use a new --out to train again)")
            result = plan["done"]
        else:
            result = _train(cfg, prep, out, plan["resume"], device, ctx, t_start, on_step, log, run_manifest)
    finally:
        if lock is not None:
            lock.release()
    ctx.stop()  # only after success: a rank that failed just exits, and torchrun ends the others
    return result


def _look(out: Path, done: dict[str, Any], prep: Prepared) -> dict[str, Any]:
    """What --out holds (`done`: its manifest): a finished run of these settings, or the
    checkpoint to resume from."""
    if done and done.get("status") == "complete" and done.get("fingerprint") == prep.fingerprint \
            and (out / "adapter_model.safetensors").exists():
        return {"done": done, "resume": None}
    last = checkpoint.latest(out)
    return {"done": None, "resume": str(last) if last is not None else None}


def _train(cfg: TrainConfig, prep: Prepared, out: Path, resume: str | None, device: torch.device,
           ctx: Dist, t_start: float, on_step: Callable[[int, dict[str, Any]], None] | None,
           log: Log, run_manifest: Manifest | None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)  # the same LoRA initialisation on every rank
    batch_size = cfg.batch_size
    if cfg.small_data_batch_size and len(prep.train) < 3000:
        batch_size = cfg.small_data_batch_size
    sharded = cfg.fsdp
    peft_model = attach_lora(load_base(cfg, prep.base_path, device, place=not sharded), cfg)
    model = distributed.wrap(peft_model, ctx, device, sharded)
    if ctx.world > 1:
        torch.manual_seed(cfg.seed + 1_000_003 * (ctx.rank + 1))  # each rank its own dropout masks
    packed = choose_packing(cfg.packing, model if sharded else peft_model, device)
    pad_id = prep.tokenizer.pad_token_id
    pad_id = prep.tokenizer.eos_token_id if pad_id is None else pad_id
    weights = {"seed": 1.0, "augmented": 1.0, "none": 1.0, **cfg.weights}
    stream = MicroBatches(prep.train, batch_size, cfg.seed, packed, pad_id or 0, weights)
    per_step = cfg.grad_accum * ctx.world  # micro-batches in one optimizer step, over all ranks
    steps_per_epoch = math.ceil(stream.per_epoch / per_step)
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, Schedule(total, int(cfg.warmup_ratio * total), cfg.lr_end_ratio))
    use_bf16 = cfg.load_4bit or (device.type == "cuda" and any(p.dtype == torch.bfloat16 for p in model.parameters()))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext

    state: dict[str, Any] = {"history": [], "eval_history": [], "tokens": 0, "padded_tokens": 0,
                             "supervised_tokens": 0, "train_seconds": 0.0, "resumed_from": []}
    start = 0
    if resume is not None:
        error: BaleenError | None = None
        try:  # every rank can read it, and it is this run's, before any rank starts loading
            checkpoint.check(Path(resume), prep.fingerprint)
        except BaleenError as exc:
            error = exc
        ctx.agree(error)
        meta = checkpoint.load(Path(resume), model if sharded else peft_model, optimizer, scheduler,
                               prep.fingerprint, sharded, ctx.rank, ctx.world)
        start = meta["step"]
        state.update({k: meta[k] for k in state if k in meta})
        state["resumed_from"] = state["resumed_from"] + [start]
        log(f"resuming from {resume} (step {start} of {total})")
    info = {"packed": packed, "batch_size": batch_size, "grad_accum": cfg.grad_accum,
            "world_size": ctx.world, "effective_batch_size": batch_size * per_step,
            "micro_batches_per_epoch": stream.per_epoch, "total_steps": total,
            "parallel": ("fsdp" if sharded else "ddp") if ctx.world > 1 else "none",
            "process_group": ctx.backend,
            "gradient_checkpointing": cfg.grad_checkpointing, "bf16": use_bf16, "device": str(device)}
    where = f"{ctx.world} processes ({info['parallel']}, {ctx.backend}) on {device.type}" \
        if ctx.world > 1 else f"on {device}"
    log(f"training {len(prep.train)} examples ({len(prep.eval)} held out), {total} steps, "
        f"{'packed' if packed else 'padded'} batches of {batch_size} x {cfg.grad_accum}"
        f"{f' x {ctx.world} processes' if ctx.world > 1 else ''}, {where}")

    def snapshot(status: str, step: int, final_eval: dict[str, Any] | None = None) -> dict[str, Any]:
        """The manifest's training fields as they stand (see `publish`)."""
        t = state["train_seconds"] or 1e-9
        fields = {
            "command": manifest.argv(), "fingerprint": prep.fingerprint,
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
            "memory": manifest.peak_memory_mb(device),
            "durations": {"this_session_s": round(time.perf_counter() - t_start, 2)},
        }
        return fields

    def publish(status: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Rank 0 writes the manifest, as every stage does (generators.core.manifest adds
        duration_s, sessions and versions); the other ranks only return it."""
        if run_manifest is None:
            return {"stage": "train", "status": status, **fields}
        return run_manifest.write(status, fields)

    def save_checkpoint(step: int) -> None:
        adapter, optim_state = checkpoint.gather(model, optimizer, sharded)  # every rank: FSDP gathers
        rngs = ctx.gather(checkpoint.rng_state()) if ctx.world > 1 else None
        if ctx.main:
            checkpoint.save(out, step, peft_model, optim_state, scheduler,
                            {"fingerprint": prep.fingerprint, **state}, cfg.save_total_limit, adapter, rngs)
            publish("running", snapshot("running", step))

    eval_model = model if sharded else peft_model
    model.train()
    for step in range(start, total):
        t0 = time.perf_counter()
        first = step * per_step
        totals = [stream.totals(k) for k in range(first, first + per_step)]
        norm = sum(t[0] for t in totals)  # the whole step's weight, the same number on every rank
        mine = [first + ctx.rank * cfg.grad_accum + j for j in range(cfg.grad_accum)]
        step_loss = 0.0
        if norm > 0:
            for j, k in enumerate(mine):
                last = j == len(mine) - 1
                sync = contextlib.nullcontext() if last or sharded or ctx.world == 1 else model.no_sync()
                with sync:
                    with autocast():
                        loss, _ = weighted_loss(model, stream[k].to(device), norm)
                    # DDP and FSDP average gradients over ranks; the step's gradient is their sum
                    (loss * ctx.world).backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ctx.world > 1:
            step_loss = ctx.sum([step_loss], device)[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        state["train_seconds"] += time.perf_counter() - t0
        state["tokens"] += sum(t[1] for t in totals)
        state["padded_tokens"] += sum(t[2] for t in totals)
        state["supervised_tokens"] += sum(t[3] for t in totals)
        done_steps = step + 1
        record = {"step": done_steps, "loss": round(step_loss, 5), "lr": scheduler.get_last_lr()[0]}
        if done_steps % cfg.log_every == 0 or done_steps in (1, total):
            state["history"].append(record)
            log(f"step {done_steps}/{total} loss {step_loss:.4f} lr {record['lr']:.2e}")
        if cfg.eval_every and done_steps % cfg.eval_every == 0 and done_steps < total:
            ev = evaluate(eval_model, prep.eval, batch_size, packed, pad_id or 0, device, autocast,
                          ctx, split=not sharded)
            if ev:
                state["eval_history"].append({"step": done_steps, **ev})
        if on_step is not None:
            on_step(done_steps, record)
        if cfg.save_every and done_steps % cfg.save_every == 0 and done_steps < total:
            save_checkpoint(done_steps)
    final_eval = evaluate(eval_model, prep.eval, batch_size, packed, pad_id or 0, device, autocast,
                          ctx, split=not sharded)
    if final_eval:
        log(f"held-out loss {final_eval['loss']:.4f} {final_eval['per_tag']}")
    adapter = checkpoint.gather_adapter(model) if sharded else None  # every rank takes part
    fields = snapshot("complete", total, final_eval)
    if not ctx.main:
        return publish("complete", fields)
    if adapter is None:
        peft_model.save_pretrained(out)
    else:
        peft_model.save_pretrained(out, state_dict=adapter)
    if cfg.merge:
        merge_adapter(prep.base_path, out, out / "merged")
        fields["merged"] = str(out / "merged")
    result = publish("complete", fields)
    shutil.rmtree(checkpoint.checkpoints_dir(out), ignore_errors=True)
    log(f"adapter written to {out} ({total} steps, {result['throughput']['tokens_per_s']} tokens/s)")
    return result
