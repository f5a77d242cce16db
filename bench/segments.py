"""Benchmark: `gen segments` on a synthetic corpus with planted exact and near duplicates, at
several sizes: the peak RSS of every process (sampled with psutil), documents/s, documents per
CPU-second (all its processes' CPU time, from getrusage, so other jobs on the machine distort it
little), the disk its work folder needs, and, at --compare sizes, today's in-memory path
(`gen backtranslate --corpus`: one process, one index) on the same corpus: its documents per
CPU-second, the ratio of the two, and how far the kept sets differ.

Synthetic corpus: HTML pages of 3 sections of ~150 random words each (a 20,000-word vocabulary,
so distinct sections share few shingles); 3% of the sections are exact copies of an earlier one,
3% near copies (3 words of ~150 changed: Jaccard of 5-shingles ~0.9).

--medquad also runs both paths on bench/corpus_prep.py's corpus (MedQuAD answers read 7 times,
114,849 shorter pages), where today's path was measured at 2.5k docs/s, so that figure is
compared like for like.

  .venv/bin/python bench/segments.py --segments 100000 1000000 --workers 2 --compare 100000 \
      --medquad $BALEEN_BENCH_DATA/medquad_answers.jsonl
  .venv/bin/python bench/segments.py --segments 100000 --executor ray --workers 2   # Ray tasks, a local Ray
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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


def children_cpu_s() -> float:
    """User + system CPU seconds of every finished and waited-for descendant of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_segments(corpus: Path, out: Path, shard_docs: int, executor: str, workers: int) -> dict:
    """Run gen segments, sampling the RSS of every process of its tree every 0.2 s; its CPU time
    is that of the whole tree (the workers are waited for by their parent, so getrusage counts them)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "generators.cli", "segments", "--corpus", str(corpus), "--out", str(out),
               "--shard-docs", str(shard_docs), "--executor", executor, "--workers", str(workers)]
    start, cpu_before = time.perf_counter(), children_cpu_s()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    main = psutil.Process(proc.pid)
    peaks: dict[int, float] = {}
    work_bytes = 0
    while proc.poll() is None:
        try:
            tree = [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        if (out / "work").exists():
            work_bytes = max(work_bytes, sum(f.stat().st_size for f in (out / "work").rglob("*") if f.is_file()))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    cpu_s = children_cpu_s() - cpu_before
    if proc.returncode != 0:
        raise SystemExit(f"gen segments failed: {stderr.strip()[-500:]}")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    documents = manifest["segments"]["documents"]
    return {"documents": documents, "segments": manifest["segments"]["segments"],
            "kept": manifest["segments"]["kept"], "rejected": {k: v for k, v in manifest["segments"]["rejected"].items() if v},
            "seconds": round(seconds, 1), "cpu_s": round(cpu_s, 1), "docs_per_s": round(documents / seconds),
            "docs_per_cpu_s": round(documents / max(cpu_s, 1e-9)),
            "rss_main_mib": round(peaks.get(proc.pid, 0.0)),
            "rss_workers_mib": sorted((round(v) for pid, v in peaks.items() if pid != proc.pid), reverse=True),
            "phase_s": manifest.get("phase_s"), "phase_cpu_s_main": manifest.get("phase_cpu_s"),
            "processes_seen": len(peaks), "work_mib": round(work_bytes / 2**20),
            "out_mib": round(sum(f.stat().st_size for f in out.glob("*.parquet")) / 2**20)}


def kept_texts(out: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [t for path in sorted(out.glob("segments-*.parquet")) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()]


def in_memory_child(corpus: Path, kept_out: Path) -> None:
    """Today's path (gen backtranslate --corpus), in this process: its kept texts to `kept_out`
    (one JSON string a line), its counts on stdout."""
    sys.path.insert(0, str(ROOT))
    from generators.inputs.corpus import iter_documents, prepare_segments

    prepared = prepare_segments(iter_documents(str(corpus)))
    with kept_out.open("w", encoding="utf-8") as handle:
        for segment in prepared:
            handle.write(json.dumps(segment.text) + "\n")
    summary = prepared.summary()
    print(json.dumps({"documents": summary["documents"], "kept": summary["kept"],
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def run_in_memory(corpus: Path, base: Path) -> tuple[dict, list[str]]:
    """Today's path in a child process: its wall and CPU time (imports included, as for gen
    segments), peak RSS, and kept texts in order."""
    kept_out = base / "in-memory-kept.jsonl"
    start, cpu_before = time.perf_counter(), children_cpu_s()
    done = subprocess.run([sys.executable, __file__, "--in-memory", str(corpus), "--kept-out", str(kept_out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds, cpu_s = time.perf_counter() - start, children_cpu_s() - cpu_before
    if done.returncode:
        raise SystemExit(f"in-memory path failed: {done.stderr.strip()[-500:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    with kept_out.open(encoding="utf-8") as handle:
        texts = [json.loads(line) for line in handle]
    kept_out.unlink()
    return {**info, "seconds": round(seconds, 1), "cpu_s": round(cpu_s, 1)}, texts


def compare(corpus: Path, out: Path, base: Path, result: dict) -> dict:
    """Today's in-memory path on the same corpus: its rate, the ratio of the rates, the kept-set difference."""
    today, texts = run_in_memory(corpus, base)
    mine = kept_texts(out)
    differ = len(set(mine) ^ set(texts))
    documents = result["documents"]
    rate = documents / max(today["cpu_s"], 1e-9)
    return {"in_memory": {**today, "docs_per_cpu_s": round(rate), "docs_per_s": round(documents / today["seconds"])},
            "ratio_docs_per_cpu_s": round(result["docs_per_cpu_s"] / rate, 3),
            "kept_in_memory": len(texts), "kept_differ": differ,
            "kept_differ_pct": round(100 * differ / max(len(texts), 1), 4), "same_order": mine == texts}


def medquad_corpus(source: Path, path: Path, repeat: int) -> int:
    """bench/corpus_prep.py's corpus: `source` read `repeat` times, the repeats with distinct ids
    (exact duplicates of earlier segments, as in a re-crawl); returns the document count."""
    sys.path.insert(0, str(ROOT))
    from generators.inputs.corpus import iter_documents

    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for r in range(repeat):
            for doc in iter_documents(str(source)):
                handle.write(json.dumps({"id": f"{doc.id}#r{r}" if r else doc.id, "url": doc.url,
                                         "text": doc.text}) + "\n")
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--shard-docs", type=int, default=10_000)
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", type=int, nargs="*", default=[100_000],
                        help="sizes at which today's in-memory path runs on the same corpus (rate, ratio, kept set)")
    parser.add_argument("--medquad", type=Path, default=None,
                        help="medquad_answers.jsonl: also run both paths on bench/corpus_prep.py's corpus")
    parser.add_argument("--medquad-repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where the corpora and outputs go (default: a temp dir)")
    parser.add_argument("--in-memory", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kept-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_memory:
        in_memory_child(args.in_memory, args.kept_out)
        return
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-segments-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if args.medquad:
        corpus = base / "corpus-medquad.jsonl"
        documents = medquad_corpus(args.medquad, corpus, args.medquad_repeat)
        out = base / "out-medquad"
        shutil.rmtree(out, ignore_errors=True)
        result = {"corpus": f"{args.medquad.name} x{args.medquad_repeat}", "input_documents": documents,
                  **run_segments(corpus, out, args.shard_docs, args.executor, args.workers)}
        result.update(compare(corpus, out, base, result), load_avg_1m=round(os.getloadavg()[0], 1))
        print(json.dumps(result), flush=True)
        corpus.unlink()
        shutil.rmtree(out, ignore_errors=True)
    for size in args.segments:
        corpus = base / f"corpus-{size}.jsonl"
        planted = make_corpus(corpus, size)
        out = base / f"out-{size}"
        shutil.rmtree(out, ignore_errors=True)
        result = {"size": size, "planted": planted, "executor": args.executor, "workers": args.workers,
                  **run_segments(corpus, out, args.shard_docs, args.executor, args.workers)}
        if size in args.compare:
            result.update(compare(corpus, out, base, result))
        result["load_avg_1m"] = round(os.getloadavg()[0], 1)
        print(json.dumps(result), flush=True)
        corpus.unlink()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
