"""The model/run flags every stage shares, and the engine they build.

Each flag is declared once, as a field of `RunOptions` (see generators/core/flags.py): its
option, default and help, and what it feeds. The click options, the backend's settings, the
manifest's run settings and the fingerprint are all read off those fields. `make_backend` asks
the backend registry for the class behind --backend and lets it check and build itself;
`build_engine` wraps it with the cache and the accounting. A server backend reads its API key
and its default server from the environment variables its class declares (`api_key_env`,
`base_url_env`: OPENAI_API_KEY, ANTHROPIC_API_KEY, ...); a key is never taken as a flag, never
written anywhere.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from generators.core.accounting import Accounting
from generators.core.prices import Price, lookup_price, parse_price
from generators.backends.base import Backend, BackendSettings, Sampling
from generators.backends.cache import ResponseCache
from generators.backends.registry import backend_class, names
from generators.backends.urls import redact_url
from generators.backends.embedded import EMBEDDED_NAME, default_cache_dir
from generators.core.engine import Engine
from generators.core.errors import UsageError
from generators.core.io import MAX_LINE_BYTES, set_max_line_bytes
from generators.core.guides import CONSTRAINED_MODES
from generators.core.flags import BACKEND, FINGERPRINT, MANIFEST, derived, flag, flag_fields, from_options, options


def _concurrency(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    """--concurrency N, or auto (adaptive, up to --max-concurrency)."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter("expected a number of requests in flight, or auto") from None
    if not 1 <= number <= 4096:
        raise click.BadParameter("expected 1 to 4096, or auto")
    return number


def _max_line_bytes(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """Every reader of this process takes lines up to this many bytes (generators.core.io)."""
    set_max_line_bytes(value)
    return value


def _price(ctx: click.Context, param: click.Parameter, value: str | None) -> Price | None:
    return None if value is None else parse_price(value)


# How some flags show in the manifest's run settings (the rest: name and value as given).
def _redacted(opts: "RunOptions", name: str) -> dict[str, Any]:
    return {name: redact_url(getattr(opts, name))}


def _adaptive_concurrency(opts: "RunOptions", name: str) -> dict[str, Any]:
    return {name: "auto" if opts.adaptive else opts.concurrency}


def _if_adaptive(opts: "RunOptions", name: str) -> dict[str, Any]:
    return {name: getattr(opts, name) if opts.adaptive else None}


def _cache_used(opts: "RunOptions", name: str) -> dict[str, Any]:
    return {"cache": not opts.no_cache}


def _if_set(opts: "RunOptions", name: str) -> dict[str, Any]:
    """A switch recorded only when on (so settings without it stay what they were)."""
    return {name: True} if getattr(opts, name) else {}


def _with_ray(opts: "RunOptions", name: str) -> dict[str, Any]:
    return {name: getattr(opts, name)} if opts.executor == "ray" else {}


def _above_one(opts: "RunOptions", name: str) -> dict[str, Any]:
    """Model parallelism, only when asked for (so settings without it stay what they were)."""
    value = getattr(opts, name)
    return {name: value} if value > 1 else {}


@dataclass
class RunOptions:
    """The run's flags. A BACKEND flag fills the BackendSettings field of its name (else it is a
    backend knob, passed only when set away from its default); MANIFEST flags are the manifest's
    run settings (a rerun may change them and resume); FINGERPRINT flags identify the data.
    --temperature, --top-p and --max-tokens reach the fingerprint through the stage's sampling."""

    backend: str | None = flag(
        "--backend", type=click.Choice(names()), default=None, feeds=FINGERPRINT,
        help="openai (any OpenAI-compatible server), anthropic, hf (local transformers), vllm, or a plugin's. "
             "Default: openai when --base-url or OPENAI_API_KEY is set, else hf with the embedded model.")
    model: str | None = flag(
        "--model", default=None, feeds=BACKEND | FINGERPRINT,
        help=f"Model name (openai) or path/hub id (hf). Default for hf: {EMBEDDED_NAME}.")
    base_url: str | None = flag(
        "--base-url", default=None, feeds=BACKEND | MANIFEST, record=_redacted,
        help="The server, e.g. http://127.0.0.1:8000/v1 (default: the backend's own variable, "
             "OPENAI_BASE_URL or ANTHROPIC_BASE_URL, else its public API).")
    # lanes: items in progress at once (with auto: --max-concurrency; with --batch: --batch-max-lines)
    concurrency: int = flag(
        "--concurrency", type=click.STRING, callback=_concurrency, default=16, show_default=True, metavar="N|auto",
        feeds=BACKEND | MANIFEST, record=_adaptive_concurrency,
        help="Requests in flight at once (hf: items batched together); auto: adapt to the server's "
             "rate limits (openai), up to --max-concurrency.")
    adaptive: bool = derived(False, feeds=BACKEND)  # --concurrency auto
    max_concurrency: int = flag(
        "--max-concurrency", type=click.IntRange(1, 4096), default=256, show_default=True, feeds=MANIFEST,
        record=_if_adaptive, help="With --concurrency auto: the most requests in flight.")
    batch: bool = flag(
        "--batch", is_flag=True, default=False, feeds=BACKEND | MANIFEST,
        help="openai, anthropic: send the requests through the provider's Batch API (half price, answers "
             "within 24 h); "
             "a rerun picks up the same batches.")
    batch_max_lines: int = flag(
        "--batch-max-lines", type=click.IntRange(1, 50_000), default=50_000, show_default=True, feeds=BACKEND,
        help="With --batch: the most requests in one batch file.")
    batch_poll_interval: float = flag(
        "--batch-poll-interval", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
        feeds=BACKEND, help="With --batch: seconds between status checks.")
    rpm: float | None = flag("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
                             feeds=BACKEND | MANIFEST, help="Requests per minute cap.")
    tpm: float | None = flag("--tpm", type=click.FloatRange(min=0, min_open=True), default=None,
                             feeds=BACKEND | MANIFEST, help="Tokens per minute cap.")
    temperature: float | None = flag("--temperature", type=click.FloatRange(0, 2), default=None,
                                     help="Sampling temperature.")
    top_p: float | None = flag("--top-p", type=click.FloatRange(0, 1), default=None, help="Nucleus sampling.")
    max_tokens: int | None = flag("--max-tokens", type=click.IntRange(1), default=None,
                                  help="Max tokens per response.")
    reasoning_effort: str | None = flag(
        "--reasoning-effort", type=click.Choice(["low", "medium", "high"]), default=None,
        help="How hard a reasoning model thinks: sent as reasoning_effort (openai), a thinking budget "
             "(anthropic); the local backends have no such knob.")
    keep_reasoning: bool = flag(
        "--keep-reasoning", is_flag=True, default=False, feeds=MANIFEST, record=_if_set,
        help="Keep a reasoning model's thinking as training data (reasoning_content on the assistant "
             "messages); by default it goes to meta.reasoning only.")
    limit: int | None = flag("--limit", type=click.IntRange(1), default=None, feeds=MANIFEST,
                             help="Process at most this many input items.")
    seed: int = flag("--seed", type=int, default=0, show_default=True, feeds=FINGERPRINT,
                     help="Seed for shuffling and sampling.")
    cache_dir: Path | None = flag(
        "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Response cache and converted models (default: $BALEEN_CACHE or ~/.cache/baleen).")
    no_cache: bool = flag("--no-cache", is_flag=True, default=False, feeds=MANIFEST, record=_cache_used,
                          help="Neither read nor write the response cache.")
    max_cost: float | None = flag("--max-cost", type=click.FloatRange(min=0), default=None, feeds=MANIFEST,
                                  help="Stop cleanly once this many dollars are spent.")
    max_total_tokens: int | None = flag("--max-total-tokens", type=click.IntRange(1), default=None,
                                        feeds=MANIFEST, help="Stop cleanly once this many tokens are used.")
    price: Price | None = flag(
        "--price", callback=_price, default=None, metavar="IN,OUT[,CACHED]",
        help="Dollars per million input,output[,cached input] tokens (overrides the price table; "
             "see docs/backends.md, Prices).")
    timeout: float = flag(
        "--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
        feeds=BACKEND | MANIFEST, backend="timeout_s", help="Seconds before one request is abandoned and retried.")
    retries: int = flag("--retries", type=click.IntRange(0, 50), default=6, show_default=True,
                        feeds=BACKEND | MANIFEST, help="Retries per request on 429/5xx/timeouts.")
    max_retry_after: float = flag(
        "--max-retry-after", type=click.FloatRange(min=0), default=300.0, show_default=True,
        feeds=BACKEND | MANIFEST,
        help="Longest wait (seconds) a server may ask for (Retry-After); above it the run stops "
             "and says when to rerun.")
    retry_errors: bool = flag("--retry-errors", is_flag=True, default=False,
                              help="On a rerun, try again the items that ended in errors.jsonl.")
    no_progress: bool = flag("--no-progress", is_flag=True, default=False, help="No progress bar.")
    executor: str = flag(
        "--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, feeds=MANIFEST,
        help="local: this process; ray: model replicas as Ray actors (local backends hf/vllm; "
             "needs `pip install baleen[ray]`).")
    workers: int = flag("--workers", type=click.IntRange(1, 4096), default=1, show_default=True, feeds=MANIFEST,
                        record=_with_ray, help="With --executor ray: model replicas (each loads the model once).")
    gpus_per_worker: float | None = flag(
        "--gpus-per-worker", type=click.FloatRange(min=0), default=None, feeds=MANIFEST, record=_with_ray,
        help="With --executor ray: GPUs each replica reserves (default, when the cluster has "
             "GPUs: 1, or --tensor-parallel-size x --data-parallel-size; else 0).")
    cpus_per_worker: float = flag(
        "--cpus-per-worker", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
        feeds=MANIFEST, record=_with_ray,
        help="With --executor ray: CPUs each replica reserves (and its torch threads).")
    ray_address: str | None = flag(
        "--ray-address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
        help="With --executor ray: the cluster to join (e.g. 10.0.0.1:6379); default: start a local Ray.")
    tensor_parallel_size: int = flag(
        "--tensor-parallel-size", type=click.IntRange(1, 1024), default=1, show_default=True,
        feeds=BACKEND | MANIFEST, record=_above_one,
        help="vllm: GPUs one model is split across (vLLM tensor parallelism).")
    data_parallel_size: int = flag(
        "--data-parallel-size", type=click.IntRange(1, 1024), default=1, show_default=True,
        feeds=BACKEND | MANIFEST, record=_above_one,
        help="vllm: engine copies vLLM itself runs behind one backend (vLLM data parallelism).")
    dry_run: bool = flag(
        "--dry-run", is_flag=True, default=False,
        help="Estimate, then stop: read the inputs, render every first request, count its tokens, print "
             "requests, tokens and cost at list and batch price; send nothing, write no folder.")
    # which guides a rating request carries follows from it, and those reach the fingerprint
    # through the stage's sampling (Sampling.guide)
    constrained: str = flag(
        "--constrained", type=click.Choice(CONSTRAINED_MODES), default="auto", show_default=True, feeds=MANIFEST,
        help="Raters and judges (gen curate, gen eval, --feedback): auto: constrained decoding where the "
             "backend can (hf, vllm: a 'Score: N' regex; openai: a JSON schema), and one retry that tells "
             "the model why its answer could not be read; off: plain requests.")
    # last, so that a command without the run flags (gen export) can take it alone: options(start=...)
    max_line_bytes: int = flag(
        "--max-line-bytes", type=click.IntRange(1), default=MAX_LINE_BYTES, show_default=True,
        callback=_max_line_bytes, metavar="BYTES",
        help="Longest line read from any file; a longer one stops the run (exit 2) naming file:line, "
             "without being read whole.")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "RunOptions":
        """The options from a click command's keyword arguments (popped, so the rest are the
        stage's own). With --concurrency auto the run keeps --max-concurrency items in progress and
        the backend decides how many requests are in flight; with --batch every item is in progress
        at once, up to a batch file's worth, waiting for its batch."""
        kwargs["adaptive"] = kwargs.get("concurrency") == "auto"
        if kwargs["adaptive"]:
            kwargs["concurrency"] = kwargs["max_concurrency"]
        if kwargs.get("batch"):
            kwargs["concurrency"] = kwargs["batch_max_lines"]
        return from_options(cls, kwargs)

    def resolved_backend(self) -> str:
        if self.backend:
            return self.backend
        openai = backend_class("openai")
        named = [getattr(openai, "api_key_env", None), getattr(openai, "base_url_env", None)]
        return "openai" if (self.base_url or any(os.environ.get(n) for n in named if n)) else "hf"

    def sampling(self, *, temperature: float | None = None, top_p: float | None = None,
                 max_tokens: int | None = None) -> Sampling:
        """The run's sampling, with a stage's defaults where the user gave none."""
        return Sampling(temperature=self.temperature if self.temperature is not None else temperature,
                        top_p=self.top_p if self.top_p is not None else top_p,
                        max_tokens=self.max_tokens or max_tokens, reasoning_effort=self.reasoning_effort)

    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


model_options = options(RunOptions)
"""The run flags, as click options (add them to a command after its own)."""


def backend_settings(opts: RunOptions, *, model: str | None = None, adapter: str | None = None,
                     run_dir: str | None = None, **extra: Any) -> BackendSettings:
    """The run's BACKEND flags as every backend reads them; a flag without a BackendSettings field
    of its name, and the stage's `extra`, become backend-specific knobs."""
    known = {f.name for f in dataclasses.fields(BackendSettings)}
    values: dict[str, Any] = {}
    knobs = dict(extra)
    for f, meta in flag_fields(RunOptions, BACKEND):
        name, value = meta.backend or f.name, getattr(opts, f.name)
        if name in known:
            values[name] = value
        elif value != f.default:
            knobs[name] = value
    values["model"] = model or opts.model
    return BackendSettings(**values, adapter=adapter, run_dir=run_dir, cache_root=str(opts.cache_root()),
                           extra=tuple(sorted((k, v) for k, v in knobs.items() if v is not None)))


def backend_kind(opts: RunOptions) -> type[Backend]:
    """The class of the run's backend, from the registry."""
    return backend_class(opts.resolved_backend())


def check_options(opts: RunOptions, *, model: str | None = None, adapter: str | None = None) -> None:
    """Flag combinations that cannot work, caught before any file is read or model loaded."""
    cls = backend_kind(opts)
    if opts.batch and not cls.capabilities.batch_api:
        raise UsageError(f"--batch sends requests through a provider's Batch API, which --backend {cls.name} "
                         "has not; use --backend openai or anthropic, or leave out --batch")
    if opts.adaptive and not cls.capabilities.adaptive:
        raise UsageError(f"--concurrency auto adapts to a server's rate limits, which --backend {cls.name} has "
                         "not; give a number")
    for flag, value in (("--tensor-parallel-size", opts.tensor_parallel_size),
                        ("--data-parallel-size", opts.data_parallel_size)):
        if value > 1 and not cls.capabilities.model_parallel:
            raise UsageError(f"{flag} splits one model over several GPUs inside vLLM, which --backend {cls.name} "
                             "cannot; use --backend vllm, or --executor ray --workers N for N copies of the model")
    if opts.executor == "ray" and not cls.capabilities.local:
        raise UsageError(f"--executor ray runs copies of an in-process model; --backend {cls.name} talks to a "
                         "server, which scales by itself: leave out --executor ray and raise --concurrency")
    if opts.executor != "ray" and (opts.workers > 1 or opts.gpus_per_worker is not None):
        raise UsageError("--workers and --gpus-per-worker size the Ray executor; add --executor ray")
    if opts.reasoning_effort and not cls.capabilities.reasoning_effort:
        raise UsageError(f"--reasoning-effort tells a reasoning model how hard to think, which --backend {cls.name} "
                         "has no knob for; leave it out (a local model thinks as its chat template says), "
                         "or use --backend openai or anthropic")
    if adapter and not cls.capabilities.adapters:
        raise UsageError(f"--adapter loads a LoRA adapter in this process, which --backend {cls.name} cannot; "
                         "use --backend hf or vllm, or serve the adapter under a name "
                         "(vllm serve BASE --enable-lora --lora-modules NAME=DIR) and pass --model NAME")
    cls.check(backend_settings(opts, model=model, adapter=adapter))


def make_backend(opts: RunOptions, *, model: str | None = None, adapter: str | None = None,
                 run_dir: str | None = None, **extra: Any) -> Backend:
    """The run's backend, checked and built (a local model loads later, in Engine.start)."""
    check_options(opts, model=model, adapter=adapter)
    settings = backend_settings(opts, model=model, adapter=adapter, run_dir=run_dir, **extra)
    backend = backend_kind(opts).create(settings)
    backend.settings = settings  # what a Ray worker rebuilds the same backend from
    return backend


def build_engine(opts: RunOptions, backend: Backend, accounting: Accounting | None = None) -> Engine:
    """An engine for `backend`; pass another engine's accounting to share one budget."""
    model = backend.model
    cache = None if opts.no_cache else ResponseCache(opts.cache_root() / "responses.sqlite")
    accounting = accounting or Accounting(model=model, price=lookup_price(model, opts.price), batch=opts.batch,
                                          max_cost=opts.max_cost, max_tokens=opts.max_total_tokens)
    return Engine(backend, cache=cache, accounting=accounting)


def engine_settings(opts: RunOptions, backend: Backend) -> dict[str, Any]:
    """What identifies the generated data (goes into the manifest and the run fingerprint): the
    FINGERPRINT flags, with the backend and model as resolved."""
    values = {f.name: getattr(opts, f.name) for f, _ in flag_fields(RunOptions, FINGERPRINT)}
    return {**values, "backend": opts.resolved_backend(), "model": backend.model}


def run_settings(opts: RunOptions) -> dict[str, Any]:
    """Operational settings, the MANIFEST flags: in the manifest, not in the fingerprint
    (changing them resumes)."""
    return {key: value for f, meta in flag_fields(RunOptions, MANIFEST)
            for key, value in meta.entries(opts, f.name).items()}
