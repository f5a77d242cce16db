"""Throughput against an OpenAI-compatible server: bare openai client vs ideal (vs the engine).

    python bench/api_throughput.py --n 2000 --latency-ms 200 --concurrency 32 64 256 --fail-429-frac 0 0.1
    python bench/api_throughput.py --quick

The loopback server (tests/chat_server.py) runs in its own process, so client and server do not
share a GIL. For each 429 fraction f and concurrency C it prints:

- ideal: C * (1 - f) / latency, the rate of successful answers if the client cost nothing and
  every 429 cost one extra latency (the client's backoff after a 429 is not counted);
- bare: a bounded pool of C worker coroutines on one ``openai.AsyncOpenAI`` (connection pool of
  C, the SDK's own retries) sending the same N chat requests the engine sends (the rendered
  self-chat prompt of each seed); successful requests/s, once with the SDK's default httpx
  transport and once with its aiohttp transport;
- engine: the whole ``gen selfchat`` stage in-process (seed file, engine, cache, parser, filters,
  store) over N seeds at C; dialogs/s; engine/ideal, engine/bare on the same transport (the
  engine's own overhead), engine/bare on the SDK default.

All ratios come from the same run. Note: on these 2-core machines the bare openai client tops
out near ~270 requests/s, so large C is client-bound, not latency-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request

import httpx2
import openai

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.chat_server import start_subprocess_server  # noqa: E402


def seed_question(i: int) -> str:
    return f"How does thing number {i} work?"


def selfchat_messages(i: int) -> list[dict[str, str]]:
    """Exactly the request the engine's transcript mode sends for seed i, so both sides match."""
    import prompts

    return [{"role": "user", "content": prompts.render("selfchat_transcript", seed=seed_question(i))}]


def make_async_client(base_url: str, concurrency: int, transport: str = "httpx",
                      max_retries: int = 50) -> openai.AsyncOpenAI:
    """An AsyncOpenAI whose connection pool allows `concurrency` open connections.

    openai 3.x runs on httpx2: limits go through ``http_client=openai.DefaultAsyncHttpxClient(
    limits=httpx2.Limits(...))`` (keeps the SDK's timeout/redirect defaults; its own default pool
    is 1000 connections / 100 keep-alive, which makes C > 100 reconnect a lot).
    """
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if transport == "aiohttp":
        http_client = openai.DefaultAioHttpClient(limits=limits)
    else:
        http_client = openai.DefaultAsyncHttpxClient(limits=limits)
    return openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=max_retries,
                              http_client=http_client)


async def _bare(base_url: str, n: int, concurrency: int, transport: str) -> tuple[float, int]:
    client = make_async_client(base_url, concurrency, transport)
    try:
        await client.chat.completions.create(model="bench", messages=selfchat_messages(-1))  # warm-up
        _server_reset(base_url)
        next_i = 0
        failures = 0

        async def worker() -> None:
            nonlocal next_i, failures
            while next_i < n:
                i, next_i = next_i, next_i + 1
                try:
                    await client.chat.completions.create(model="bench", messages=selfchat_messages(i),
                                                         max_tokens=64)
                except openai.OpenAIError:
                    failures += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = time.perf_counter() - t0
    finally:
        await client.close()
    return (n - failures) / elapsed, failures


def measure_bare(base_url: str, n: int, concurrency: int, transport: str = "httpx") -> tuple[float, int]:
    """(successful requests/s, failures) of the bare openai.AsyncOpenAI client."""
    return asyncio.run(_bare(base_url, n, concurrency, transport))


def measure_engine(base_url: str, n: int, concurrency: int, *, latency_s: float,
                   fail_429_frac: float) -> float:
    """The whole `gen selfchat` stage (seeds file, engine, cache, parser, filters, store) over `n`
    distinct seeds at `concurrency`, in this process; returns dialogs (items settled) per second."""
    import tempfile
    from pathlib import Path

    from generators.options import RunOptions
    from generators.selfchat.run import SelfChatSettings, run_selfchat

    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds.jsonl"
        seeds.write_text("".join(json.dumps({"question": seed_question(i)}) + "\n"
                                 for i in range(n)))
        opts = RunOptions(backend="openai", model="bench", base_url=base_url, concurrency=concurrency,
                          adaptive=False, max_concurrency=concurrency, batch=False, batch_max_lines=50_000,
                          batch_poll_interval=60.0,
                          rpm=None, tpm=None, temperature=None, top_p=None, max_tokens=64, limit=None, seed=0,
                          cache_dir=Path(tmp) / "cache", no_cache=False, max_cost=None, max_total_tokens=None,
                          price=None, timeout=60.0, retries=50, max_retry_after=300.0, retry_errors=False,
                          no_progress=True)
        settings = SelfChatSettings(seeds=str(seeds), out=Path(tmp) / "out", text_field="question")
        t0 = time.perf_counter()
        manifest = run_selfchat(settings, opts)
        elapsed = time.perf_counter() - t0
    counts = manifest["counts"]
    if counts["errors"]:
        print(f"  engine: {counts['errors']} items ended in errors.jsonl", file=sys.stderr)
    return (counts["kept"] + counts["rejected"]) / elapsed


def _server_reset(base_url: str) -> None:
    root = base_url.removesuffix("/v1")
    urllib.request.urlopen(urllib.request.Request(root + "/_reset", method="POST", data=b""), timeout=10).read()


def _server_stats(base_url: str) -> dict:
    root = base_url.removesuffix("/v1")
    return json.load(urllib.request.urlopen(root + "/_stats?bodies=0", timeout=10))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--latency-ms", type=float, default=200.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[32, 64, 256])
    p.add_argument("--fail-429-frac", type=float, nargs="+", default=[0.0, 0.1])
    p.add_argument("--quick", action="store_true", help="small run: n=400, C=32 128")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.concurrency = 400, [32, 128]

    lat = a.latency_ms / 1000.0
    from generators.backends.openai_backend import _pick_transport

    engine_transport = _pick_transport("auto")
    print(f"openai {openai.__version__}  n={a.n}  latency={a.latency_ms:g} ms  cpus={os.cpu_count()}  "
          f"engine transport={engine_transport}")
    print(f"{'429frac':>7} {'C':>5} {'ideal/s':>8} {'bare-httpx':>10} {'bare-aio':>9} {'engine/s':>9} "
          f"{'eng/ideal':>9} {'eng/bare-same':>13} {'eng/bare-httpx':>14} {'srv_maxfl':>9}")
    for frac in a.fail_429_frac:
        proc, base_url = start_subprocess_server(latency_ms=a.latency_ms, fail_429_frac=frac, seed=0,
                                                 record_bodies=False)
        try:
            for c in a.concurrency:
                ideal = c * (1.0 - frac) / lat
                bare = {t: measure_bare(base_url, a.n, c, t)[0] for t in ("httpx", "aiohttp")}
                _server_reset(base_url)
                eng = measure_engine(base_url, a.n, c, latency_s=lat, fail_429_frac=frac)
                st = _server_stats(base_url)
                print(f"{frac:7.2f} {c:5d} {ideal:8.1f} {bare['httpx']:10.1f} {bare['aiohttp']:9.1f} {eng:9.1f} "
                      f"{eng / ideal:9.2f} {eng / bare[engine_transport]:13.2f} {eng / bare['httpx']:14.2f} "
                      f"{st['max_in_flight']:9d}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
