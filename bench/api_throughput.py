"""Throughput against an OpenAI-compatible server: bare openai client vs ideal (vs the engine).

    python bench/api_throughput.py --n 2000 --latency-ms 200 --concurrency 32 64 256 --fail-429-frac 0 0.1
    python bench/api_throughput.py --quick
    python bench/api_throughput.py --startup-records 1024 --concurrency   # start-up only

The loopback server (tests/chat_server.py) runs in its own process, so client and server do not
share a GIL. For each 429 fraction f and concurrency C it prints:

- ideal: C * (1 - f) / latency, the rate of successful answers if the client cost nothing and
  every 429 cost one extra latency (the client's backoff after a 429 is not counted);
- bare: a bounded pool of C worker coroutines on one ``openai.AsyncOpenAI`` (connection pool of
  C, the SDK's own retries) sending the same N chat requests the engine sends (the rendered
  self-chat prompt of each seed); successful requests/s, once with the SDK's default httpx
  transport and once with its aiohttp transport;
- engine: the whole ``gen selfchat`` stage in-process (seed file, engine, cache, parser, filters,
  store) over N seeds at C; engine/ideal, engine/bare on the SDK's aiohttp transport, engine/bare
  on the SDK default (httpx);
- with ``--repeat K`` every cell is measured K times, interleaved, and the best is kept;
- stage/s: the engine's dialogs/s over the stage's whole wall time, start-up included.

Every rate but stage/s is the generation phase as the server saw it: successful answers over the
time from the first request's arrival to the last answer (``first_at``/``last_at`` of the
server's stats), so start-up (imports, reading seeds, opening the run folder) is not counted
against a client that has it and the bare one that has not.

With ``--startup-records N`` it also times ``gen curate`` over N records in a subprocess: the
seconds from the command's start to the server's first request (imports, reading and checking
the input, prefilters, opening the run folder).

All ratios come from the same run. Note: on these 2-core machines the bare openai client tops
out near ~400-470 requests/s on httpx (~700-800 on aiohttp), so large C is client-bound, not
latency-bound; other processes on the machine move every figure by 10-20%, so take the best of
a few runs.
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


async def _bare(base_url: str, n: int, concurrency: int, transport: str) -> int:
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

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    finally:
        await client.close()
    return failures


def measure_bare(base_url: str, n: int, concurrency: int, transport: str = "httpx") -> float:
    """Successful requests/s of the bare openai.AsyncOpenAI client, as the server saw them."""
    asyncio.run(_bare(base_url, n, concurrency, transport))
    return busy_rate(base_url)


def busy_rate(base_url: str) -> float:
    """Successful answers per second between the first request's arrival and the last answer."""
    st = _server_stats(base_url)
    span = (st["last_at"] or 0.0) - (st["first_at"] or 0.0)
    return st["by_status"].get("200", 0) / span if span > 0 else 0.0


def measure_engine(base_url: str, n: int, concurrency: int, *, latency_s: float = 0.0,
                   fail_429_frac: float = 0.0, adaptive: bool = False, retries: int = 50) -> float:
    """The whole `gen selfchat` stage (seeds file, engine, cache, parser, filters, store) over `n`
    distinct seeds at `concurrency`, in this process; returns dialogs (items settled) per second of
    the stage's whole wall time (start-up included; busy_rate() has the generation phase)."""
    t0 = time.perf_counter()
    manifest = run_engine(base_url, n, concurrency, adaptive=adaptive, retries=retries)
    elapsed = time.perf_counter() - t0
    counts = manifest["counts"]
    if counts["errors"]:
        print(f"  engine: {counts['errors']} items ended in errors.jsonl", file=sys.stderr)
    return (counts["kept"] + counts["rejected"]) / elapsed


def run_engine(base_url: str, n: int, concurrency: int, *, adaptive: bool = False, retries: int = 50) -> dict:
    """Run `gen selfchat` in this process over `n` distinct seeds at `concurrency` (with `adaptive`:
    --concurrency auto, --max-concurrency `concurrency`); returns the manifest."""
    import tempfile
    from pathlib import Path

    from generators.core.options import RunOptions
    from generators.selfchat.stage import SelfChatSettings, run_selfchat

    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds.jsonl"
        seeds.write_text("".join(json.dumps({"question": seed_question(i)}) + "\n"
                                 for i in range(n)))
        opts = RunOptions(backend="openai", model="bench", base_url=base_url, concurrency=concurrency,
                          adaptive=adaptive, max_concurrency=concurrency, max_tokens=64,
                          cache_dir=Path(tmp) / "cache", timeout=60.0, retries=retries, no_progress=True)
        settings = SelfChatSettings(seeds=str(seeds), out=Path(tmp) / "out", text_field="question")
        return run_selfchat(settings, opts)


def _server_reset(base_url: str) -> None:
    root = base_url.removesuffix("/v1")
    urllib.request.urlopen(urllib.request.Request(root + "/_reset", method="POST", data=b""), timeout=10).read()


def _server_stats(base_url: str) -> dict:
    root = base_url.removesuffix("/v1")
    return json.load(urllib.request.urlopen(root + "/_stats?bodies=0", timeout=10))


def measure_startup(base_url: str, records: int) -> float:
    """Seconds from starting `gen curate` over `records` records (a subprocess, as a user runs
    it) to the server's first request."""
    import subprocess
    import tempfile
    from pathlib import Path

    from tests.helpers import gen_cmd, gen_env

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "aug.jsonl"
        data.write_text("".join(json.dumps({
            "id": f"r{i}", "source": "bench", "tag": "augmented",
            "messages": [{"role": "user", "content": f"Explain how machine number {i} turns heat into motion"},
                         {"role": "assistant", "content": f"Machine {i} burns fuel; the gas expands and pushes a "
                                                          "piston that turns a shaft. " * 4}]}) + "\n"
            for i in range(records)))
        _server_reset(base_url)
        started = time.time()
        subprocess.run(gen_cmd("curate", "--input", data, "--backend", "openai", "--base-url", base_url,
                               "--model", "bench", "--out", Path(tmp) / "out", "--no-progress", "--no-cache",
                               "--concurrency", "64"),
                       env=gen_env(OPENAI_API_KEY="sk-bench"), capture_output=True, check=True, timeout=600)
        return (_server_stats(base_url)["first_at"] or started) - started


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--latency-ms", type=float, default=200.0)
    p.add_argument("--concurrency", type=int, nargs="*", default=[32, 64, 256])
    p.add_argument("--fail-429-frac", type=float, nargs="+", default=[0.0, 0.1])
    p.add_argument("--quick", action="store_true", help="small run: n=400, C=32 128")
    p.add_argument("--repeat", type=int, default=1, help="measure each cell this many times, keep the best")
    p.add_argument("--startup-records", type=int, default=0,
                   help="also time gen curate's start-up (to the first request) over this many records")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.concurrency = 400, [32, 128]

    lat = a.latency_ms / 1000.0
    from generators.backends.openai_backend import _pick_transport

    engine_transport = _pick_transport("auto")
    print(f"openai {openai.__version__}  n={a.n}  latency={a.latency_ms:g} ms  cpus={os.cpu_count()}  "
          f"engine transport={engine_transport}")
    if a.concurrency:
        print(f"{'429frac':>7} {'C':>5} {'ideal/s':>8} {'bare-httpx':>10} {'bare-aio':>9} {'engine/s':>9} "
              f"{'eng/ideal':>9} {'eng/bare-aio':>12} {'eng/bare-httpx':>14} {'stage/s':>8} {'srv_maxfl':>9}")
    for frac in a.fail_429_frac if a.concurrency else []:
        proc, base_url = start_subprocess_server(latency_ms=a.latency_ms, fail_429_frac=frac, seed=0,
                                                 record_bodies=False)
        try:
            for c in a.concurrency:
                ideal = c * (1.0 - frac) / lat
                bare = {"httpx": 0.0, "aiohttp": 0.0}
                eng = stage = 0.0
                max_in_flight = 0
                for _ in range(a.repeat):  # interleaved, best of each: the machine's noise hits all alike
                    for t in bare:
                        bare[t] = max(bare[t], measure_bare(base_url, a.n, c, t))
                    _server_reset(base_url)
                    stage = max(stage, measure_engine(base_url, a.n, c, latency_s=lat, fail_429_frac=frac))
                    eng = max(eng, busy_rate(base_url))
                    max_in_flight = max(max_in_flight, _server_stats(base_url)["max_in_flight"])
                print(f"{frac:7.2f} {c:5d} {ideal:8.1f} {bare['httpx']:10.1f} {bare['aiohttp']:9.1f} {eng:9.1f} "
                      f"{eng / ideal:9.2f} {eng / bare['aiohttp']:12.2f} {eng / bare['httpx']:14.2f} {stage:8.1f} "
                      f"{max_in_flight:9d}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    if a.startup_records:
        proc, base_url = start_subprocess_server(latency_ms=a.latency_ms, record_bodies=False)
        try:
            runs = [measure_startup(base_url, a.startup_records) for _ in range(3)]
            print(f"gen curate start-up over {a.startup_records} records, to the first request: "
                  + ", ".join(f"{r:.2f}" for r in runs) + f" s (best {min(runs):.2f} s)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
