"""Benchmark: `gen segments` on a synthetic corpus with planted exact and near duplicates, at
several sizes: the peak RSS of every process (sampled with psutil), documents/s, documents per
CPU-second (per core when cores are busy), the disk its work folder needs, and, at sizes where
today's in-memory index fits, how far the kept set differs from it.

Corpus: HTML pages of 3 sections of ~150 random words each (a 20,000-word vocabulary, so
distinct sections share few shingles); 3% of the sections are exact copies of an earlier one,
3% near copies (3 words of ~150 changed: Jaccard of 5-shingles ~0.9).

  .venv/bin/python bench/segments.py --segments 100000 1000000 --workers 2 --compare 100000
  .venv/bin/python bench/segments.py --segments 100000 --executor ray --workers 2   # Ray tasks, a local Ray
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = 3
WORDS = 150


def make_corpus(path: Path, segments: int, seed: int = 0) -> dict[str, int]:
    """`segments` sections in pages of SECTIONS; returns how many copies of each kind were planted."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:05d}x" for i in range(20_000)])
    kept: list[tuple[str, str]] = []  # a window of recent originals to copy from (bounded)
    planted = {"exact": 0, "near": 0}
    with path.open("w", encoding="utf-8") as handle:
        for doc in range(segments // SECTIONS):
            body = []
            for s in range(SECTIONS):
                roll = rng.random()
                if kept and roll < 0.03:
                    header, text = kept[int(rng.integers(len(kept)))]
                    planted["exact"] += 1
                elif kept and roll < 0.06:
                    header, original = kept[int(rng.integers(len(kept)))]
                    words = original.split()
                    for i in rng.choice(len(words), 3, replace=False):
                        words[i] = str(vocab[int(rng.integers(len(vocab)))])
                    text = " ".join(words)
                    planted["near"] += 1
                else:
                    header = f"Section {doc} {s}"
                    text = " ".join(vocab[rng.integers(0, len(vocab), WORDS)].tolist()) + "."
                    kept.append((header, text))
                    if len(kept) > 5000:
                        kept.pop(int(rng.integers(len(kept))))
                body.append(f"<h2>{header}</h2><p>{text}</p>")
            page = f"<html><body>{''.join(body)}</body></html>"
            handle.write(json.dumps({"id": f"d{doc}", "url": f"https://bench.example/{doc}", "html": page}) + "\n")
    return planted


def run_segments(corpus: Path, out: Path, shard_docs: int, executor: str, workers: int) -> dict:
    """Run gen segments, sampling the RSS of every process of its tree every 0.2 s (a local Ray's
    processes are children of the command too)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "generators.cli", "segments", "--corpus", str(corpus), "--out", str(out),
               "--shard-docs", str(shard_docs), "--executor", executor, "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    main = psutil.Process(proc.pid)
    peaks: dict[int, float] = {}
    cpu: dict[int, float] = {}
    work_bytes = 0
    while proc.poll() is None:
        try:
            tree = [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 2**20)
                times = p.cpu_times()
                cpu[p.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                continue
        if (out / "work").exists():
            work_bytes = max(work_bytes, sum(f.stat().st_size for f in (out / "work").rglob("*") if f.is_file()))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"gen segments failed: {stderr.strip()[-500:]}")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    documents = manifest["segments"]["documents"]
    cpu_s = sum(cpu.values())
    return {"documents": documents, "segments": manifest["segments"]["segments"],
            "kept": manifest["segments"]["kept"], "rejected": {k: v for k, v in manifest["segments"]["rejected"].items() if v},
            "seconds": round(seconds, 1), "cpu_s": round(cpu_s, 1), "docs_per_s": round(documents / seconds),
            "docs_per_cpu_s": round(documents / max(cpu_s, 1e-9)),
            "rss_main_mib": round(peaks.get(proc.pid, 0.0)),
            "rss_workers_mib": sorted((round(v) for pid, v in peaks.items() if pid != proc.pid), reverse=True),
            "phase_s": manifest.get("phase_s"), "processes_seen": len(peaks), "work_mib": round(work_bytes / 2**20),
            "out_mib": round(sum(f.stat().st_size for f in out.glob("*.parquet")) / 2**20)}


def kept_texts(out: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [t for path in sorted(out.glob("segments-*.parquet")) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()]


def in_memory_kept(corpus: Path) -> list[str]:
    """Today's path (gen backtranslate --corpus): the one in-memory index."""
    sys.path.insert(0, str(ROOT))
    from generators.inputs.corpus import iter_documents, prepare_segments

    return [segment.text for segment in prepare_segments(iter_documents(str(corpus)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shard-docs", type=int, default=10_000)
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", type=int, nargs="*", default=[100_000],
                        help="sizes at which the kept set is compared with the in-memory index")
    parser.add_argument("--dir", type=Path, default=None, help="where the corpora and outputs go (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-segments-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    for size in args.segments:
        corpus = base / f"corpus-{size}.jsonl"
        planted = make_corpus(corpus, size)
        out = base / f"out-{size}"
        shutil.rmtree(out, ignore_errors=True)
        result = {"size": size, "planted": planted, "executor": args.executor, "workers": args.workers,
                  **run_segments(corpus, out, args.shard_docs, args.executor, args.workers),
                  "load_avg_1m": round(os.getloadavg()[0], 1)}
        if size in args.compare:
            start = time.perf_counter()
            mine, today = kept_texts(out), in_memory_kept(corpus)
            result["in_memory_s"] = round(time.perf_counter() - start, 1)
            differ = len(set(mine) ^ set(today))
            result["kept_in_memory"] = len(today)
            result["kept_differ"] = differ
            result["kept_differ_pct"] = round(100 * differ / max(len(today), 1), 4)
            result["same_order"] = mine == today
        print(json.dumps(result), flush=True)
        corpus.unlink()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
