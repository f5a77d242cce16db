"""Benchmark: Humpback corpus preparation (read -> segment -> filter -> dedup) in documents/s,
with the time of each stage, the rejects by reason and peak memory.

Each variant runs in its own process so its peak RSS (ru_maxrss) is its own:
  read   bare reading of the documents (the baseline)
  full   the whole pipeline, stages timed from inside the same run
Default input (--input to change): medquad_answers.jsonl in the data folder that sits beside
the repository (16,407 NIH answer pages, `text` field),
read --repeat times (7 -> 114,849 documents) with distinct ids; the repeats are exact duplicates
of earlier segments, which exercises the dedup index the way a re-crawled corpus would.

  .venv/bin/python bench/corpus_prep.py            # ~115k documents, under 3 minutes on 2 cores
  .venv/bin/python bench/corpus_prep.py --quick    # one pass (16k documents)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
# Real web answers (MedQuAD): a folder named by $BALEEN_BENCH_DATA, else pass --input.
DEFAULT_INPUT = Path(os.environ.get("BALEEN_BENCH_DATA", ".")) / "medquad_answers.jsonl"


def documents(spec: str, repeat: int, field: str | None) -> Iterator:
    from generators.inputs.corpus import iter_documents
    for r in range(repeat):
        for doc in iter_documents(spec, field=field):
            if r:
                doc.id = f"{doc.id}#r{r}"
            yield doc


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args: argparse.Namespace) -> dict:
    from generators.inputs.corpus import SegmentFilterConfig, SegmentPipeline
    from generators.inputs.corpus import dedup as dedup_mod
    from generators.inputs.corpus import filters as filters_mod

    start = time.perf_counter()
    if args.child == "read":
        count = chars = 0
        for doc in documents(args.input, args.repeat, args.field):
            count += 1
            chars += len(doc.text)
        seconds = time.perf_counter() - start
        return {"variant": "read", "documents": count, "chars": chars, "seconds": seconds,
                "peak_rss_mib": peak_rss_mib()}

    spent: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    def timed_gen(name, fn):
        def wrapper(*a, **k):
            iterator = fn(*a, **k)
            while True:
                t = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    spent[name] += time.perf_counter() - t
                    return
                spent[name] += time.perf_counter() - t
                yield item
        return wrapper

    filters_mod.segment_document = timed_gen("segment", filters_mod.segment_document)
    for header_filter in (filters_mod.EmptyHeader, filters_mod.CapsHeader, filters_mod.BoilerplateHeader):
        header_filter.check = timed("header filters", header_filter.check)
    filters_mod.has_repeated_sentences = timed("repeated sentences", filters_mod.has_repeated_sentences)
    index_cls = dedup_mod.DedupIndex
    index_cls.key = timed("exact dedup (normalize+hash)", index_cls.key)
    index_cls.check_near = timed("near dedup", index_cls.check_near)
    index_cls._signature = timed("  of which minhash", index_cls._signature)
    index_cls._is_near = timed("  of which lsh query+verify", index_cls._is_near)

    config = SegmentFilterConfig(num_perm=args.num_perm, near_dedup=not args.no_near)
    pipeline = SegmentPipeline(config)
    rss_ready = peak_rss_mib()  # code and libraries loaded, nothing indexed yet
    docs = timed_gen("read", lambda: documents(args.input, args.repeat, args.field))()
    start = time.perf_counter()
    kept_chars = 0
    for segment in pipeline.run(docs):
        kept_chars += len(segment.text)
    seconds = time.perf_counter() - start
    return {"variant": "full", "seconds": seconds, "summary": pipeline.summary(),
            "kept_chars": kept_chars, "stages": dict(spent),
            "index_entries": sum(len(f.index) for f in pipeline.memory.filters),
            "num_perm": args.num_perm, "near": not args.no_near, "peak_rss_mib": peak_rss_mib(),
            "rss_ready_mib": rss_ready}


def run_child(args: argparse.Namespace, variant: str) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--input", args.input,
               "--repeat", str(args.repeat), "--num-perm", str(args.num_perm)]
    if args.field:
        command += ["--field", args.field]
    if args.no_near:
        command.append("--no-near")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"{variant} run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--field", default=None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one pass over the input")
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--no-near", action="store_true", help="turn near-dedup off")
    parser.add_argument("--child", choices=("read", "full"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args)))
        return
    if not Path(args.input).exists():
        sys.exit(f"{args.input}: not found; pass --input FILE (jsonl/parquet/warc/html folder)")

    read = run_child(args, "read")
    full = run_child(args, "full")
    n = read["documents"]
    summary = full["summary"]
    print(f"input: {args.input} x{args.repeat} = {n:,} documents, "
          f"{read['chars'] / 1e6:.1f} M chars; num_perm={args.num_perm}, near-dedup "
          f"{'on' if full['near'] else 'off'}")
    print(f"bare reading : {n / read['seconds']:10,.0f} docs/s  ({read['seconds']:.1f} s)  "
          f"peak RSS {read['peak_rss_mib']:.0f} MiB")
    print(f"full pipeline: {n / full['seconds']:10,.0f} docs/s  ({full['seconds']:.1f} s)  "
          f"peak RSS {full['peak_rss_mib']:.0f} MiB")
    grown = full["peak_rss_mib"] - full["rss_ready_mib"]
    print(f"ratio full/read time: {full['seconds'] / read['seconds']:.1f}x;  memory grown during "
          f"the run: {grown:.0f} MiB for {full['index_entries']:,} indexed segments "
          f"({grown * 1024 * 1024 / max(full['index_entries'], 1):,.0f} B each, libraries loaded "
          f"before: {full['rss_ready_mib']:.0f} MiB)")
    print("stage times (inside the full run; 'read' includes JSON parsing):")
    order = ("read", "segment", "header filters", "repeated sentences",
             "exact dedup (normalize+hash)", "near dedup",
             "  of which minhash", "  of which lsh query+verify")
    for stage in order:
        seconds = full["stages"].get(stage, 0.0)
        print(f"  {stage:28s} {seconds:7.1f} s  {100 * seconds / full['seconds']:5.1f} %")
    print(f"segments: {summary['segments']:,} candidates, {summary['kept']:,} kept "
          f"({full['kept_chars'] / 1e6:.1f} M chars), {n / max(summary['kept'], 1):.1f} docs per "
          "kept segment")
    print("rejected: " + ", ".join(f"{k} {v:,}" for k, v in summary["rejected"].items()))


if __name__ == "__main__":
    main()
