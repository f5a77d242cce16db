"""Benchmark: how --executor ray scales, as ratios taken in one run on a local Ray on the CPU.

  model    `gen backtranslate` on the tiny random model (tests/tiny_model.py, hf backend, greedy,
           --max-tokens each), 1 replica vs 2 replicas, each replica pinned to one thread
           (--cpus-per-worker 1): items/s between the first and the last settled item (Ray and
           model start-up are not timed), no response cache
  corpus   corpus preparation alone (reading, segmentation, segment filters, exact and near
           dedup), documents/s with 1 vs 2 Ray reader tasks, plus the one-process pipeline as
           the baseline; input: medquad_answers.jsonl in $BALEEN_BENCH_DATA (or --input)
Then bench/scale_train.py (training tokens/s, 1 vs 2 torchrun processes) when it is there.

  .venv/bin/python bench/scale.py             # ~3 minutes on 2 cores
  .venv/bin/python bench/scale.py --quick     # fewer items and documents
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_INPUT = Path(os.environ.get("BALEEN_BENCH_DATA", ".")) / "medquad_answers.jsonl"


def options(model: Path, workers: int, max_tokens: int, concurrency: int):
    from generators.core.options import RunOptions

    return RunOptions(backend="hf", model=str(model), concurrency=concurrency, max_concurrency=concurrency,
                      batch_max_lines=1, batch_poll_interval=1.0, temperature=0.0, max_tokens=max_tokens,
                      no_cache=True, timeout=600.0, retries=0, max_retry_after=1.0, no_progress=True,
                      executor="ray", workers=workers, gpus_per_worker=0.0)


def model_rate(model: Path, corpus: Path, out: Path, workers: int, args: argparse.Namespace) -> tuple[int, float]:
    """(items, items/s between the first and the last settled item) for one run."""
    from generators.backtranslate.stage import BacktranslateSettings, BacktranslateStage
    from generators.core.stage import run_stage

    stamps: list[float] = []

    class Timed(BacktranslateStage):
        def review(self, item, outcome):  # runs in the driver as each item settles
            stamps.append(time.monotonic())
            return super().review(item, outcome)

    settings = BacktranslateSettings(corpus=str(corpus), out=out, postfilter={"allow_non_requests": True},
                                     prep_workers=1)
    run_stage(Timed(settings, options(model, workers, args.max_tokens, args.concurrency)))
    return len(stamps), (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)


def corpus_rate(spec: str, parts: int) -> tuple[int, float, dict]:
    from generators.inputs.corpus import SegmentFilterConfig, SegmentPipeline
    from generators.executors.corpus_tasks import prechecked_documents

    pipeline = SegmentPipeline(SegmentFilterConfig())
    start = time.perf_counter()
    for _ in pipeline.run_prechecked(prechecked_documents(spec, corpus_dir=None, field=None, shard=None,
                                                          config=pipeline.config, parts=parts)):
        pass
    seconds = time.perf_counter() - start
    return pipeline.documents, pipeline.documents / seconds, pipeline.summary()


def local_corpus_rate(spec: str) -> tuple[int, float, dict]:
    from generators.inputs.corpus import SegmentPipeline, iter_documents

    pipeline = SegmentPipeline()
    start = time.perf_counter()
    for _ in pipeline.run(iter_documents(spec)):
        pass
    return pipeline.documents, pipeline.documents / (time.perf_counter() - start), pipeline.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT), help="corpus for the preparation part")
    parser.add_argument("--docs", type=int, default=8000, help="documents of --input to prepare")
    parser.add_argument("--items", type=int, default=240, help="segments backtranslated per model run")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8, help="items in flight per replica (its batch)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.items = 2000, 80
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import logging

    import ray

    from tests import tiny_model
    from tests.backtranslate_fixtures import plain_pages, write_corpus

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tiny_model.build(tmp / "model")
        corpus = write_corpus(tmp / "pages.jsonl", plain_pages(args.items // 2))
        docs = tmp / "docs.jsonl"
        if Path(args.input).exists():
            with open(args.input, encoding="utf-8") as src, open(docs, "w", encoding="utf-8") as dst:
                for number, line in enumerate(src):
                    if number >= args.docs:
                        break
                    dst.write(line)
        else:
            print(f"{args.input} not found (set BALEEN_BENCH_DATA or --input): corpus part on generated pages")
            write_corpus(docs, plain_pages(args.docs // 4, sections=3, seed=7))
        ray.init(num_cpus=4, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False,
                 logging_level=logging.ERROR,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}})
        try:
            print(f"model: tiny Llama (tests/tiny_model.py), hf backend, greedy, {args.max_tokens} tokens, "
                  f"--concurrency {args.concurrency} per replica, 1 thread per replica")
            rates = {}
            for workers in (1, 2):
                count, rate = model_rate(model, corpus, tmp / f"out{workers}", workers, args)
                rates[workers] = rate
                print(f"  {workers} replica{'s' if workers > 1 else ' '}: {count} items, {rate:8.2f} items/s")
            print(f"  ratio 2 vs 1 replicas: {rates[2] / rates[1]:.2f}x (target >= 1.7x)")

            print(f"corpus preparation: {docs.name} ({args.docs} documents of {Path(args.input).name})")
            corpus_rate(str(corpus), 2)  # warm the Ray worker pool
            n, base, summary = local_corpus_rate(str(docs))
            print(f"  one process (no Ray): {base:8.0f} docs/s  ({summary['kept']} of {summary['segments']} "
                  "segments kept)")
            prep = {}
            for parts in (1, 2):
                n, prep[parts], ray_summary = corpus_rate(str(docs), parts)
                same = "same segments" if ray_summary == summary else "DIFFERENT segments"
                print(f"  {parts} reader task{'s' if parts > 1 else ' '}: {prep[parts]:8.0f} docs/s  ({same})")
            print(f"  ratio 2 vs 1 reader tasks: {prep[2] / prep[1]:.2f}x")
        finally:
            ray.shutdown()
    train = ROOT / "bench" / "scale_train.py"
    if not train.exists():
        print("bench/scale_train.py is not there: training part skipped")
        return
    print("training (bench/scale_train.py):", flush=True)
    subprocess.run([sys.executable, str(train)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
