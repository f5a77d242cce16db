"""The model/run flags every stage shares, and the engine they build.

One decorator adds the flags to a click command; `make_backend` asks the backend registry for
the class behind --backend and lets it check and build itself; `build_engine` wraps it with the
cache and the accounting. A server backend reads its API key and its default server from the
environment variables its class declares (`api_key_env`, `base_url_env`: OPENAI_API_KEY,
ANTHROPIC_API_KEY, ...); a key is never taken as a flag, never written anywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from generators.core.accounting import Accounting, price_for
from generators.backends.base import Backend, BackendSettings, Sampling
from generators.backends.cache import ResponseCache
from generators.backends.registry import backend_class, names
from generators.backends.urls import redact_url
from generators.backends.embedded import EMBEDDED_NAME, default_cache_dir
from generators.core.engine import Engine
from generators.core.errors import UsageError


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


def _price(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("expected INPUT,OUTPUT dollars per million tokens, e.g. 0.15,0.60") from None
    return a, b


_FLAGS: list[Callable[[Callable], Callable]] = [
    click.option("--backend", type=click.Choice(names()), default=None,
                 help="openai (any OpenAI-compatible server), anthropic, hf (local transformers), vllm, or a "
                      "plugin's. "
                      "Default: openai when --base-url or OPENAI_API_KEY is set, else hf with the embedded model."),
    click.option("--model", default=None, help=f"Model name (openai) or path/hub id (hf). Default for hf: {EMBEDDED_NAME}."),
    click.option("--base-url", default=None,
                 help="The server, e.g. http://127.0.0.1:8000/v1 (default: the backend's own variable, "
                      "OPENAI_BASE_URL or ANTHROPIC_BASE_URL, else its public API)."),
    click.option("--concurrency", callback=_concurrency, default="16", show_default=True, metavar="N|auto",
                 help="Requests in flight at once (hf: items batched together); auto: adapt to the server's "
                      "rate limits (openai), up to --max-concurrency."),
    click.option("--max-concurrency", type=click.IntRange(1, 4096), default=256, show_default=True,
                 help="With --concurrency auto: the most requests in flight."),
    click.option("--batch", is_flag=True,
                 help="openai: send the requests through the Batch API (half price, answers within 24 h); "
                      "a rerun picks up the same batches."),
    click.option("--batch-max-lines", type=click.IntRange(1, 50_000), default=50_000, show_default=True,
                 help="With --batch: the most requests in one batch file."),
    click.option("--batch-poll-interval", type=click.FloatRange(min=0, min_open=True), default=60.0,
                 show_default=True, help="With --batch: seconds between status checks."),
    click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None, help="Requests per minute cap."),
    click.option("--tpm", type=click.FloatRange(min=0, min_open=True), default=None, help="Tokens per minute cap."),
    click.option("--temperature", type=click.FloatRange(0, 2), default=None, help="Sampling temperature."),
    click.option("--top-p", type=click.FloatRange(0, 1), default=None, help="Nucleus sampling."),
    click.option("--max-tokens", type=click.IntRange(1), default=None, help="Max tokens per response."),
    click.option("--limit", type=click.IntRange(1), default=None, help="Process at most this many input items."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed for shuffling and sampling."),
    click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Response cache and converted models (default: $BALEEN_CACHE or ~/.cache/baleen)."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache."),
    click.option("--max-cost", type=click.FloatRange(min=0), default=None, help="Stop cleanly once this many dollars are spent."),
    click.option("--max-total-tokens", type=click.IntRange(1), default=None, help="Stop cleanly once this many tokens are used."),
    click.option("--price", callback=_price, default=None, metavar="IN,OUT",
                 help="Dollars per million input,output tokens (overrides the built-in table)."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
                 help="Seconds before one request is abandoned and retried."),
    click.option("--retries", type=click.IntRange(0, 50), default=6, show_default=True,
                 help="Retries per request on 429/5xx/timeouts."),
    click.option("--max-retry-after", type=click.FloatRange(min=0), default=300.0, show_default=True,
                 help="Longest wait (seconds) a server may ask for (Retry-After); above it the run stops "
                      "and says when to rerun."),
    click.option("--retry-errors", is_flag=True, help="On a rerun, try again the items that ended in errors.jsonl."),
    click.option("--no-progress", is_flag=True, help="No progress bar."),
    click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="local: this process; ray: model replicas as Ray actors (local backends hf/vllm; "
                      "needs `pip install baleen[ray]`)."),
    click.option("--workers", type=click.IntRange(1, 4096), default=1, show_default=True,
                 help="With --executor ray: model replicas (each loads the model once)."),
    click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
                 help="With --executor ray: GPUs each replica reserves (default, when the cluster has "
                      "GPUs: 1, or --tensor-parallel-size x --data-parallel-size; else 0)."),
    click.option("--cpus-per-worker", type=click.FloatRange(min=0, min_open=True), default=1.0,
                 show_default=True, help="With --executor ray: CPUs each replica reserves (and its torch threads)."),
    click.option("--ray-address", default=None, envvar="RAY_ADDRESS", show_envvar=True,
                 help="With --executor ray: the cluster to join (e.g. 10.0.0.1:6379); default: start a "
                      "local Ray."),
    click.option("--tensor-parallel-size", type=click.IntRange(1, 1024), default=1, show_default=True,
                 help="vllm: GPUs one model is split across (vLLM tensor parallelism)."),
    click.option("--data-parallel-size", type=click.IntRange(1, 1024), default=1, show_default=True,
                 help="vllm: engine copies vLLM itself runs behind one backend (vLLM data parallelism)."),
]


def model_options(func: Callable) -> Callable:
    for flag in reversed(_FLAGS):
        func = flag(func)
    return func


@dataclass
class RunOptions:
    backend: str | None
    model: str | None
    base_url: str | None
    concurrency: int  # lanes: items in progress at once (with auto, --max-concurrency)
    adaptive: bool  # --concurrency auto
    max_concurrency: int
    batch: bool
    batch_max_lines: int
    batch_poll_interval: float
    rpm: float | None
    tpm: float | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    limit: int | None
    seed: int
    cache_dir: Path | None
    no_cache: bool
    max_cost: float | None
    max_total_tokens: int | None
    price: tuple[float, float] | None
    timeout: float
    retries: int
    max_retry_after: float
    retry_errors: bool
    no_progress: bool
    executor: str = "local"
    workers: int = 1
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    ray_address: str | None = None
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1

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
        names = cls.__dataclass_fields__.keys()
        return cls(**{name: kwargs.pop(name) for name in names if name in kwargs})

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
                        max_tokens=self.max_tokens or max_tokens)

    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


def backend_settings(opts: RunOptions, *, model: str | None = None, adapter: str | None = None,
                     run_dir: str | None = None, **extra: Any) -> BackendSettings:
    """The run's flags as every backend reads them; `extra` holds backend-specific knobs."""
    return BackendSettings(model=model or opts.model, adapter=adapter, base_url=opts.base_url,
                           concurrency=opts.concurrency, adaptive=opts.adaptive,
                           timeout_s=opts.timeout, retries=opts.retries,
                           rpm=opts.rpm, tpm=opts.tpm, max_retry_after=opts.max_retry_after,
                           batch=opts.batch, batch_max_lines=opts.batch_max_lines,
                           batch_poll_interval=opts.batch_poll_interval, run_dir=run_dir,
                           cache_root=str(opts.cache_root()),
                           extra=tuple(sorted((k, v) for k, v in {**parallel_extra(opts), **extra}.items()
                                              if v is not None)))


def parallel_extra(opts: RunOptions) -> dict[str, Any]:
    """--tensor-parallel-size / --data-parallel-size as backend knobs, only when above 1 (so
    settings without them stay what they were)."""
    return {key: value for key, value in (("tensor_parallel_size", opts.tensor_parallel_size),
                                          ("data_parallel_size", opts.data_parallel_size)) if value > 1}


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
    price = price_for(model, opts.price)
    if price is not None and opts.batch:  # the Batch API bills half
        price = (price[0] / 2, price[1] / 2)
    accounting = accounting or Accounting(model=model, price=price,
                                          max_cost=opts.max_cost, max_tokens=opts.max_total_tokens)
    return Engine(backend, cache=cache, accounting=accounting)


def engine_settings(opts: RunOptions, backend: Backend) -> dict[str, Any]:
    """What identifies the generated data (goes into the manifest and the run fingerprint)."""
    return {"backend": opts.resolved_backend(), "model": backend.model, "seed": opts.seed}


def run_settings(opts: RunOptions) -> dict[str, Any]:
    """Operational settings: in the manifest, not in the fingerprint (changing them resumes)."""
    return {"base_url": redact_url(opts.base_url), "concurrency": "auto" if opts.adaptive else opts.concurrency,
            "max_concurrency": opts.max_concurrency if opts.adaptive else None, "batch": opts.batch,
            "rpm": opts.rpm,
            "tpm": opts.tpm, "limit": opts.limit, "cache": not opts.no_cache, "max_cost": opts.max_cost,
            "max_total_tokens": opts.max_total_tokens, "timeout": opts.timeout, "retries": opts.retries,
            "max_retry_after": opts.max_retry_after, "executor": opts.executor,
            **({"workers": opts.workers, "gpus_per_worker": opts.gpus_per_worker,
                "cpus_per_worker": opts.cpus_per_worker} if opts.executor == "ray" else {}),
            **parallel_extra(opts)}
