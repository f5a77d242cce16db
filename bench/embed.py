"""Embedding throughput and what the run folder's cache saves on a rerun.

    .venv/bin/python bench/embed.py [--model minilm] [--repeat 1]

Embeds the real texts of tests/data/quality/ (MedQuAD questions and answers, AlpacaEval
instructions, Stack Overflow titles) through `cached_encode` into a fresh cache folder, then
again: the first pass is the model's throughput (texts/s), the second reads every vector back, and
the ratio of the two times is what a rerun (resume, rejudge, a second report) saves.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generators.core.embeddings import EmbeddingCache, cached_encode, load_embedder  # noqa: E402

DATA = REPO / "tests" / "data" / "quality"


def texts() -> list[str]:
    def read(name: str, key: str) -> list[str]:
        return [json.loads(line)[key] for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]
    return (read("medquad_pairs.jsonl", "question") + read("alpaca_eval_instructions.jsonl", "instruction")
            + read("stackoverflow_titles.jsonl", "title") + read("medquad_pairs.jsonl", "text"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()
    import torch

    embedder = load_embedder(args.model)
    corpus = texts()
    embedder.encode(corpus[:32])  # warm up
    with tempfile.TemporaryDirectory() as folder:
        cache = EmbeddingCache(Path(folder))
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        first = cached_encode(embedder, cache, corpus)
        cold, cpu = time.perf_counter() - start, time.process_time() - cpu
        load = (load, os.getloadavg()[0])
        start = time.perf_counter()
        again = cached_encode(embedder, cache, corpus)
        warm = time.perf_counter() - start
        assert (first == again).all()
        size = cache.path.stat().st_size
        cache.close()
    chars = sum(len(t) for t in corpus) / len(corpus)
    print(f"model {embedder.name} (dim {embedder.dim}), torch threads {torch.get_num_threads()}, "
          f"{len(corpus)} texts, {chars:.0f} characters on average")
    print(f"first pass (embedded): {cold:.2f}s = {len(corpus) / cold:.1f} texts/s; {cpu:.1f} CPU-s = "
          f"{len(corpus) / cpu:.1f} texts per CPU-second; {os.cpu_count()} CPUs, load average {load[0]:.2f} "
          f"before, {load[1]:.2f} after (other jobs on the machine lower texts/s, less so per CPU-second)")
    print(f"rerun (all from the cache): {warm:.3f}s = {len(corpus) / warm:.0f} texts/s; "
          f"the cache saves {cold / warm:.0f}x; {size / 1e6:.1f} MB on disk")


if __name__ == "__main__":
    main()
