"""`--concurrency auto` against a server with a hidden capacity, vs the best fixed concurrency.

    python bench/adaptive.py --n 4000 --capacity 48 --latency-ms 200 --fixed 16 32 48 64 96
    python bench/adaptive.py --quick

The loopback server (tests/chat_server.py, its own process) answers every request after
`--latency-ms`, except that a request arriving while `--capacity` K others are in flight is
refused at once: 429 with `Retry-After: --retry-after` seconds. The client is not told K.

For each fixed concurrency C, then for `auto` (up to `--max-concurrency`), the whole
`gen selfchat` stage runs in this process over N distinct seeds (the same path as
bench/api_throughput.py), and it prints:

- ok/s: successful answers per second of the generation phase (first request's arrival to the
  last answer, as the server timed them);
- 429%: the share of all requests the server answered 429;
- errors: items that still failed after --retries (a fixed C far above K can exhaust them, and 25
  failures in a row stop the run: shown as "stopped");
- for auto: the final and peak level and the number of cuts, from the manifest.

Then the ratios the issue asks for: auto ok/s over the best fixed ok/s (target >= 0.8) and auto's
429 share (target <= 5%), all from the same run. Other processes on a shared machine move the
rates by 10-20%; take the best of a few runs.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_throughput import _server_reset, _server_stats, busy_rate, run_engine  # noqa: E402

from generators.core.errors import BaleenError  # noqa: E402
from tests.chat_server import start_subprocess_server  # noqa: E402


def one_run(base_url: str, n: int, concurrency: int, *, adaptive: bool, retries: int) -> dict:
    """Rates, 429 share and errors of one stage run (and its concurrency report when adaptive)."""
    _server_reset(base_url)
    manifest: dict | None = None
    stopped = None
    try:
        manifest = run_engine(base_url, n, concurrency, adaptive=adaptive, retries=retries)
    except BaleenError as exc:
        stopped = str(exc)
    stats = _server_stats(base_url)
    total = max(1, stats["requests_total"])
    return {"ok_s": busy_rate(base_url), "limited": stats["by_status"].get("429", 0) / total,
            "errors": manifest["counts"]["errors"] if manifest else None, "stopped": stopped,
            "level": (manifest or {}).get("backend", {}).get("openai", {}).get("concurrency")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4000, help="seeds (one request each) per run")
    p.add_argument("--capacity", type=int, default=48, help="the server's hidden limit K on requests in flight")
    p.add_argument("--latency-ms", type=float, default=200.0)
    p.add_argument("--retry-after", type=float, default=0.1, help="seconds, the Retry-After of a refusal")
    p.add_argument("--fixed", type=int, nargs="+", default=[16, 32, 48, 64, 96])
    p.add_argument("--max-concurrency", type=int, default=256)
    p.add_argument("--retries", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="small run: n=1500, fixed 32 48 64")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.fixed = 1500, [32, 48, 64]

    proc, base_url = start_subprocess_server(latency_ms=a.latency_ms, capacity=a.capacity,
                                             capacity_retry_after=a.retry_after, record_bodies=False)
    print(f"n={a.n}  capacity K={a.capacity}  latency={a.latency_ms:g} ms  Retry-After={a.retry_after:g} s  "
          f"ideal={a.capacity / (a.latency_ms / 1000):.0f}/s  cpus={os.cpu_count()}")
    print(f"{'C':>6} {'ok/s':>7} {'429%':>6} {'errors':>7}  notes")
    try:
        run_engine(base_url, 200, 32, retries=a.retries)  # warm-up: imports, first connections
        fixed = {}
        for c in a.fixed:
            fixed[c] = r = one_run(base_url, a.n, c, adaptive=False, retries=a.retries)
            note = f"stopped: {r['stopped'][:70]}" if r["stopped"] else ""
            print(f"{c:6d} {r['ok_s']:7.1f} {100 * r['limited']:6.2f} {str(r['errors']):>7}  {note}", flush=True)
        auto = one_run(base_url, a.n, a.max_concurrency, adaptive=True, retries=a.retries)
        level = auto["level"] or {}
        print(f"{'auto':>6} {auto['ok_s']:7.1f} {100 * auto['limited']:6.2f} {str(auto['errors']):>7}  "
              f"final {level.get('final')} peak {level.get('peak')} cuts {level.get('cuts')}"
              + (f"  stopped: {auto['stopped'][:70]}" if auto["stopped"] else ""), flush=True)
        best_c = max(fixed, key=lambda c: fixed[c]["ok_s"])
        ratio = auto["ok_s"] / fixed[best_c]["ok_s"] if fixed[best_c]["ok_s"] else 0.0
        print(f"auto / best fixed (C={best_c}): {ratio:.2f} (target >= 0.80)   "
              f"auto 429 share: {100 * auto['limited']:.2f}% (target <= 5%)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
