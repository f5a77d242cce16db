"""Exact and near-duplicate removal over a whole corpus in bounded memory: the sharded MinHash
design (signatures per shard -> band buckets -> duplicate pairs -> decisions), on files.

The corpus is cut into work shards of `shard_docs` documents. No phase holds more than one shard
(or one merge stream per shard), whatever the corpus size:

  1. prepare   per shard (in parallel): segment, run the filters that need no memory, and write
               the passed candidates (cand-S.parquet), their MinHash values (sig-S.npy), their
               exact keys sorted (keys-S.npy) and, per LSH band, the band hashes sorted (band-S.npy)
  2. exact     every shard's sorted keys merged, a hash range of MERGE_ROWS rows (or one shard's) at a time
               (the slices found by binary search): each copy of a text points at its first
               occurrence (exact/S.u64: position, first position)
  3. buckets   the same per band over the sorted band hashes: segments that share a bucket become
               candidate pairs (later, earlier), one text per exact key (pairs/S.u64)
  4. decide    shard by shard in corpus order, the rule of the in-memory index: a copy of a kept
               text is `duplicate`; a segment whose estimated Jaccard with an earlier kept one
               reaches the threshold is `near_duplicate`; otherwise it is kept (decide-S.npy)

The LSH bands are datasketch's for the same threshold and permutations (`band_layout`), so the
candidate pairs, the verification and the order of decisions are those of `DedupIndex`: the kept
set is the same, except where a bucket holds more than MAX_BUCKET_PAIRS earlier texts (only the
first ones are compared) or two band hashes collide in 64 bits. A position is shard * 2**32 + the
candidate's index in its shard. Every file is written under a temporary name and renamed, and a
phase that merges is marked done only once all its files are in place, so a killed run redoes at
most the shard or merge phase it was in.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from generators.inputs.corpus.dedup import DedupIndex
from generators.inputs.corpus.document import Document
from generators.inputs.corpus.filters import DOC_TOO_LONG, SegmentFilterConfig, SegmentPipeline

SHARD_BITS = 32
MAX_BUCKET_PAIRS = 32  # earlier texts of one bucket a segment is compared with
SKETCH_BATCH = 1024  # passed texts whose MinHash values are worked out together
FLUSH = 1 << 20  # pairs buffered before they are appended to their shard's file
MERGE_ROWS = 2_000_000  # rows of one merge range at least (32 MB of hashes): ranges = rows / this, not shards
KEPT, DUPLICATE, NEAR = 0, 1, 2
VERDICTS = {DUPLICATE: "duplicate", NEAR: "near_duplicate"}


def band_layout(config: SegmentFilterConfig) -> tuple[int, int]:
    """(bands, rows per band): datasketch's optimum for the threshold, as DedupIndex's LSH uses."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=config.near_threshold, num_perm=config.num_perm)
    return lsh.b, lsh.r


def _save(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(path.name + ".tmp")
    with partial.open("wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _band_hashes(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) 64-bit hashes of each band's slice of the signatures."""
    out = np.empty((bands, len(signatures)), dtype=np.uint64)
    for b in range(bands):
        block = np.ascontiguousarray(signatures[:, b * rows:(b + 1) * rows])
        out[b] = [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "big") for row in block]
    return out


class ShardedDedup:
    """The work folder of one preparation and its phases."""

    def __init__(self, work: Path, config: SegmentFilterConfig, *, clean: bool = True) -> None:
        self.work = Path(work)
        self.config = config
        self.exact = config.dedup
        self.near = config.near_dedup
        self.bands, self.rows = band_layout(config) if self.near else (0, 0)
        self.work.mkdir(parents=True, exist_ok=True)
        for partial in self.work.rglob("*.tmp") if clean else ():  # what a kill mid-write left
            partial.unlink()

    # -- 1. prepare ------------------------------------------------------------------------
    def candidates(self, shard: int) -> Path:
        return self.work / f"cand-{shard:05d}.parquet"

    def prepared(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.work.glob("cand-*.parquet"))

    def prepare(self, shard: int, documents: list[Document]) -> None:
        """Shard `shard`: its candidates that pass the memoryless filters, with their sketches."""
        from generators.inputs.corpus.prepared import write_file

        pipeline = SegmentPipeline(self.config)
        index = self._index()
        kept: list = []
        keys: list[int] = []
        blocks: list[np.ndarray] = []  # MinHash values, SKETCH_BATCH texts a block
        normals: list[str] = []  # the passed texts not yet sketched: MinHash runs on many at once
        counts: Counter[str] = Counter()
        segments = 0

        def sketch() -> None:
            if normals and self.near:
                blocks.append(index.signatures(normals))
            normals.clear()

        for document in documents:
            for pre in pipeline.precheck(document, portable=False):
                if pre.reason == DOC_TOO_LONG:
                    counts[DOC_TOO_LONG] += 1
                    continue
                segments += 1
                if pre.reason:
                    counts[pre.reason] += 1
                    continue
                kept.append(pre.candidate.segment)
                if index is None:
                    keys.append(0)
                    continue
                key, normal = index.key(pre.candidate.segment.text)
                keys.append(key)
                normals.append(normal)
                if len(normals) >= SKETCH_BATCH:
                    sketch()
        sketch()
        n = len(kept)
        base = np.uint64(shard) << np.uint64(SHARD_BITS)
        positions = base + np.arange(n, dtype=np.uint64)
        key_array = np.array(keys, dtype=np.uint64)
        order = np.lexsort((positions, key_array))
        _save(self.work / f"keys-{shard:05d}.npy", np.stack([key_array[order], positions[order]]))
        if self.near:
            signatures = np.concatenate(blocks) if blocks else np.zeros((0, self.config.num_perm), np.uint32)
            _save(self.work / f"sig-{shard:05d}.npy", signatures)
            hashes = _band_hashes(signatures, self.bands, self.rows)
            sorted_bands = np.empty((self.bands, 3, n), dtype=np.uint64)
            for b in range(self.bands):
                order = np.lexsort((positions, hashes[b]))
                sorted_bands[b] = (hashes[b][order], positions[order], key_array[order])
            _save(self.work / f"band-{shard:05d}.npy", sorted_bands)
        state = {"documents": len(documents), "segments": segments, "counts": dict(counts)}
        write_file(self.work, shard, kept, state, path=self.candidates(shard))

    def _index(self) -> DedupIndex | None:
        """The in-memory index's hashing (exact key, MinHash values), whose memory stays empty."""
        config = self.config
        if not (self.exact or self.near):
            return None
        return DedupIndex(exact=self.exact, near=self.near, threshold=config.near_threshold, num_perm=config.num_perm,
                          shingle=config.shingle, verify=config.near_verify)

    # -- 2. exact and 3. buckets: merges of every shard's sorted files, a hash range at a time ----
    def _ranges(self, name: str, shards: list[int], band: int | None) -> Iterator[np.ndarray]:
        """Every shard's rows of file `name` (one band of it), merged and sorted, in hash ranges of
        about MERGE_ROWS rows each (or one shard's, if more): the hashes are uniform, so no range
        holds much more. Each range visits every shard's file, so ranges sized by rows rather than
        by shards keep the visits from growing with the square of the shard count. Each file is
        mapped only while its slice is read, so its pages never pile up in this process."""
        def rows_of(shard: int) -> np.ndarray:
            array = np.load(self.work / f"{name}-{shard:05d}.npy", mmap_mode="r")
            return array[band] if band is not None else array

        sizes = [rows_of(s).shape[1] for s in shards]
        parts = max(1, -(-sum(sizes) // max(max(sizes, default=0), MERGE_ROWS)))
        bounds = [min(int(x), 2**64) for x in np.linspace(0.0, 2.0**64, parts + 1)]
        for lo, hi in zip(bounds, bounds[1:]):
            pieces = []
            for shard in shards:
                array = rows_of(shard)
                first = int(np.searchsorted(array[0], np.uint64(lo)))
                last = array.shape[1] if hi >= 2**64 else int(np.searchsorted(array[0], np.uint64(hi)))
                if last > first:
                    pieces.append(np.array(array[:, first:last]))
                del array
            if pieces:
                rows = np.concatenate(pieces, axis=1)
                yield rows[:, np.lexsort((rows[1], rows[0]))]

    def _merge(self, phase: str, name: str, shards: list[int], bands: int | None,
               pairs: Callable[[np.ndarray, "_PairWriter"], None]) -> None:
        """Run `pairs` over every hash range (of every band), then mark the phase done."""
        done = self.work / f"{phase}.done"
        if done.exists():
            return
        shutil.rmtree(self.work / phase, ignore_errors=True)
        writer = _PairWriter(self.work / phase)
        for band in range(bands) if bands is not None else [None]:
            for rows in self._ranges(name, shards, band):
                pairs(rows, writer)
        writer.close()
        done.write_text("done\n")

    def merge_exact(self, shards: list[int]) -> None:
        """exact/S.u64: (position, first position of its text) of every later copy."""
        if not self.exact:
            return

        def pairs(rows: np.ndarray, writer: _PairWriter) -> None:
            keys, positions = rows[0], rows[1]
            starts = np.ones(len(keys), dtype=bool)
            starts[1:] = keys[1:] != keys[:-1]
            first = positions[np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))]
            copies = ~starts
            writer.add_many(positions[copies], first[copies])
        self._merge("exact", "keys", shards, None, pairs)

    def merge_buckets(self, shards: list[int]) -> None:
        """pairs/S.u64: (later, earlier) positions that share an LSH bucket, one text per key."""
        if not self.near:
            return

        def pairs(rows: np.ndarray, writer: _PairWriter) -> None:
            hashes = rows[0]
            shared = np.zeros(len(hashes), dtype=bool)
            shared[1:] = hashes[1:] == hashes[:-1]
            shared[:-1] |= shared[1:]
            later, earlier = [], []
            members: list[int] = []
            keys: set[int] = set()
            last = None
            for band_hash, position, key in rows[:, shared].T.tolist():  # only buckets of 2 or more
                if band_hash != last:
                    last, members, keys = band_hash, [], set()
                if key in keys:  # a copy of a text already in the bucket: the exact phase has it
                    continue
                keys.add(key)
                for other in members[:MAX_BUCKET_PAIRS]:
                    later.append(position)
                    earlier.append(other)
                members.append(position)
            writer.add_many(np.array(later, dtype=np.uint64), np.array(earlier, dtype=np.uint64))
        self._merge("pairs", "band", shards, self.bands, pairs)

    # -- 4. decide ---------------------------------------------------------------------------
    def decided(self, shard: int) -> Path:
        return self.work / f"decide-{shard:05d}.npy"

    def decide(self, shard: int, size: int) -> np.ndarray:
        """The verdict of each candidate of `shard` (earlier shards decided first)."""
        path = self.decided(shard)
        if path.exists():
            return np.load(path)
        verdicts = np.zeros(size, dtype=np.int8)
        base = shard << SHARD_BITS
        copies = self._pairs("exact", shard)
        near = self._pairs("pairs", shard)
        first_of = dict(zip(copies[0].tolist(), copies[1].tolist())) if copies.size else {}
        starts = np.searchsorted(near[0], np.arange(size, dtype=np.uint64) + np.uint64(base)) if near.size else None
        ends = np.searchsorted(near[0], np.arange(size, dtype=np.uint64) + np.uint64(base), side="right") \
            if near.size else None
        own_signatures = np.load(self.work / f"sig-{shard:05d}.npy", mmap_mode="r") if self.near else None
        need = self.config.near_threshold * self.config.num_perm

        def kept(position: int) -> bool:
            if position >> SHARD_BITS == shard:
                return verdicts[position - base] == KEPT
            return self._verdicts(position >> SHARD_BITS)[position & 0xFFFFFFFF] == KEPT

        for local in range(size):
            position = base + local
            first = first_of.get(position)
            if first is not None:
                verdicts[local] = DUPLICATE if kept(first) else NEAR
                continue
            if starts is None or starts[local] == ends[local]:
                continue
            mine = own_signatures[local]
            for earlier in near[1][starts[local]:ends[local]].tolist():
                if not kept(earlier):
                    continue
                other = own_signatures[earlier - base] if earlier >> SHARD_BITS == shard else self._signature(earlier)
                if not self.config.near_verify or np.count_nonzero(mine == other) >= need:
                    verdicts[local] = NEAR
                    break
        _save(path, verdicts)
        return verdicts

    def _pairs(self, phase: str, shard: int) -> np.ndarray:
        """A shard's pairs, sorted by the later position, each once."""
        path = self.work / phase / f"{shard:05d}.u64"
        if not path.exists():
            return np.zeros((2, 0), dtype=np.uint64)
        raw = np.fromfile(path, dtype=np.uint64).reshape(-1, 2)
        return np.unique(raw, axis=0).T

    @lru_cache(maxsize=64)
    def _verdicts(self, shard: int) -> np.ndarray:
        """An earlier shard's verdicts (one byte a candidate), the last 64 shards' kept at hand."""
        return np.load(self.decided(shard))

    def _signature(self, position: int) -> np.ndarray:
        """One earlier candidate's signature, read through a mapping dropped at once (so the
        pages of earlier shards never pile up in this process)."""
        array = np.load(self.work / f"sig-{position >> SHARD_BITS:05d}.npy", mmap_mode="r")
        row = np.array(array[position & 0xFFFFFFFF])
        del array
        return row

    def verdict_counts(self, verdicts: np.ndarray) -> dict[str, int]:
        return {VERDICTS[v]: int(np.count_nonzero(verdicts == v)) for v in VERDICTS}


class _PairWriter:
    """Pairs (position, other) appended to a file per shard of `position`, buffered: memory is
    FLUSH pairs, however many there are."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.buffer: list[np.ndarray] = []
        self.size = 0

    def add_many(self, positions: np.ndarray, others: np.ndarray) -> None:
        if not len(positions):
            return
        self.buffer.append(np.stack([positions, others], axis=1))
        self.size += len(positions)
        if self.size >= FLUSH:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        rows = np.concatenate(self.buffer)
        shards = rows[:, 0] >> np.uint64(SHARD_BITS)
        for shard in np.unique(shards).tolist():
            with (self.folder / f"{shard:05d}.u64").open("ab") as handle:
                rows[shards == shard].tofile(handle)
        self.buffer, self.size = [], 0

    def close(self) -> None:
        self.flush()
        for path in self.folder.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
