"""Corpus preparation on Ray: W reader tasks, each reading part j/W of the corpus, cutting it into
segments and running every segment check that needs no memory (corpus/filters.py `precheck`).

The driver merges the parts back into corpus order (each part comes in index order, so a k-way
merge suffices) and runs the global part, exact and near-duplicate removal, itself, in that
order: the same segments are dropped as with the local executor, whatever W is. Each reader
task keeps at most `AHEAD` batches unread (Ray's streaming-generator backpressure), so memory
stays bounded however far the readers could run ahead of the model.
"""
from __future__ import annotations

import heapq
from typing import Any, Iterator

from generators.inputs.corpus.filters import Prechecked, SegmentFilterConfig, precheck_part
from generators.core.errors import BaleenError
from generators.executors.ray_cluster import import_ray

AHEAD = 8  # batches (of 64 documents) a reader may hold unread


def _batches(ray: Any, stream: Any) -> Iterator[tuple[int, list[Prechecked]]]:
    for ref in stream:
        try:
            batch = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaleenError):  # a truncated archive, a bad row: the same one line
                raise type(cause)(cause.message) from None
            raise
        yield from batch


def prechecked_documents(spec: str, *, corpus_dir: str | None, field: str | None,
                         shard: tuple[int, int] | None, config: SegmentFilterConfig,
                         parts: int) -> Iterator[list[Prechecked]]:
    """Each document's prechecked segments, in corpus order, read by `parts` Ray tasks."""
    ray = import_ray()
    task = ray.remote(num_cpus=1, _generator_backpressure_num_objects=AHEAD)(precheck_part)
    streams = [_batches(ray, task.remote(spec, corpus_dir=corpus_dir, field=field, shard=shard,
                                         part=(j, parts), config=config))
               for j in range(parts)]
    for _, prechecked in heapq.merge(*streams, key=lambda entry: entry[0]):
        yield prechecked
