"""Corpus-wide duplicate detection for kept segments: exact (hash of normalized text) and near
(MinHash LSH, datasketch). Both live in memory and are primed with `add` from an earlier
partial run's output, since a killed run resumes without re-reading what it kept.
"""
from __future__ import annotations

import hashlib
import itertools
import zlib
from typing import Sequence

import numpy as np

from generators.core.errors import FatalError
from generators.core.text import normalize_words

SIGNATURE_BATCH = 1024  # texts whose shingles are hashed together
SHINGLE_BLOCK = 8192  # shingles permuted at once: 8192 x num_perm x 4 bytes (4 MiB at 128)


class DedupIndex:
    """Exact and near-duplicate memory. `check` says which duplicate a text is (or None), and
    remembers it when it is new, so one call per kept segment suffices."""

    def __init__(self, *, exact: bool = True, near: bool = True, threshold: float = 0.8,
                 num_perm: int = 128, shingle: int = 5, verify: bool = True) -> None:
        self.exact = exact
        self.verify = verify
        self.threshold = threshold
        self._signatures: dict[int, bytes] = {}
        self.near = near
        self.shingle = shingle
        self.num_perm = num_perm
        self._hashes: set[int] = set()
        self._size = 0
        if near:
            from datasketch import MinHash, MinHashLSH
            self._minhash_cls = MinHash
            # one permutation table for all signatures: building it per MinHash dominates cost
            template = MinHash(num_perm=num_perm, seed=1)
            self._permutations, self._scheme = template.permutations, template.scheme
            if self._scheme != "affine32":  # a datasketch whose default scheme changed: values would differ
                raise FatalError(f"datasketch's MinHash uses the {self._scheme!r} scheme; baleen's batched "
                                 "signatures compute 'affine32': install datasketch>=2 with that default")
            self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)

    def __len__(self) -> int:
        return self._size

    def check(self, text: str) -> str | None:
        """'duplicate', 'near_duplicate', or None after remembering the new text."""
        key, normal = self.key(text)
        if self.is_exact_duplicate(key):
            return "duplicate"
        return self.check_near(key, normal)

    def key(self, text: str) -> tuple[int, str]:
        """(64-bit hash of the normalized text, the normalized text)."""
        normal = normalize_words(text)
        return int.from_bytes(hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest(),
                              "big"), normal

    def is_exact_duplicate(self, key: int) -> bool:
        return self.exact and key in self._hashes

    def check_near(self, key: int, normal: str, values: bytes | None = None) -> str | None:
        """'near_duplicate', or None after remembering the text (exact and near). `values` are
        the text's MinHash values when another process computed them (`signature_values`)."""
        signature = None
        if self.near:
            signature = self._signature(normal) if values is None else self._from_values(values)
            if self._is_near(signature):
                return "near_duplicate"
        self._remember(key, signature)
        return None

    def add(self, text: str) -> None:
        """Remember a text kept earlier (resume), without asking whether it is a duplicate."""
        normal = normalize_words(text)
        key = int.from_bytes(hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest(), "big")
        if key in self._hashes:
            return
        self._remember(key, self._signature(normal) if self.near else None)

    def _remember(self, key: int, signature) -> None:
        self._hashes.add(key)
        if signature is not None:
            self._lsh.insert(self._size, signature, check_duplication=False)
            if self.verify:  # 4 bytes a permutation: affine32 values fit in 32 bits
                self._signatures[self._size] = signature.hashvalues.astype(np.uint32).tobytes()
        self._size += 1

    def _is_near(self, signature) -> bool:
        """An LSH candidate counts only if the signatures agree on >= threshold of their
        permutations (the Jaccard estimate): LSH alone lets pairs near 0.5 through."""
        candidates = self._lsh.query(signature)
        if not candidates or not self.verify:
            return bool(candidates)
        mine = signature.hashvalues.astype(np.uint32)
        for key in candidates:
            other = np.frombuffer(self._signatures[key], dtype=np.uint32)
            if np.count_nonzero(mine == other) >= self.threshold * self.num_perm:
                return True
        return False

    def signature_values(self, normal: str) -> bytes:
        """The MinHash values of a normalized text as bytes: computed where the text is read (a
        Ray task), checked against the index where the index lives (the driver)."""
        return self.signatures([normal])[0].astype(np.uint64).tobytes()

    def _from_values(self, values: bytes):
        return self._minhash_cls(num_perm=self.num_perm, seed=1, scheme=self._scheme,
                                 hashvalues=np.frombuffer(values, dtype=np.uint64).copy(),
                                 permutations=self._permutations)

    def _signature(self, normal: str):
        """The datasketch MinHash of a normalized text (what the LSH index takes)."""
        return self._minhash_cls(num_perm=self.num_perm, seed=1, scheme=self._scheme,
                                 hashvalues=self.signatures([normal])[0], permutations=self._permutations)

    def signatures(self, normals: Sequence[str]) -> np.ndarray:
        """(len(normals), num_perm) uint32 MinHash values of word `shingle`-grams, equal to
        datasketch's `MinHash(seed=1, hashfunc=int).update_batch(shingle hashes)` (scheme
        affine32: MurmurHash3's 32-bit finalizer, then a*h + b mod 2**32, the minimum per
        permutation), worked out for many texts in a few numpy calls: building a MinHash per
        text and its Python list of hashes cost more than the hashing. Shingle hashes are rolled
        from per-word CRC32s (stable across runs, unlike hash())."""
        out = np.empty((len(normals), self.num_perm), dtype=np.uint32)
        a, b = (np.asarray(p, dtype=np.uint32) for p in self._permutations)
        for start in range(0, len(normals), SIGNATURE_BATCH):
            hashes, offsets = self._shingle_hashes(normals[start:start + SIGNATURE_BATCH])
            per = max(1, len(offsets) * SHINGLE_BLOCK // max(len(hashes), 1))  # texts a block
            for lo in range(0, len(offsets), per):  # (shingles, num_perm) stays ~SHINGLE_BLOCK rows
                hi = min(len(offsets), lo + per)
                first, last = offsets[lo], offsets[hi] if hi < len(offsets) else len(hashes)
                permuted = a[:, None] * _fmix32(hashes[first:last])[None, :]  # (num_perm, shingles)
                permuted += b[:, None]
                out[start + lo:start + hi] = np.minimum.reduceat(permuted, offsets[lo:hi] - first, axis=1).T
        return out

    def _shingle_hashes(self, normals: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every text's rolled shingle hashes (uint32), concatenated, and where each text's start."""
        split = [normal.split() or [""] for normal in normals]
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        words = np.fromiter(map(zlib.crc32, map(str.encode, itertools.chain.from_iterable(split))),
                            dtype=np.uint64, count=int(lengths.sum()))
        k = self.shingle
        rolled = words[:max(len(words) - k + 1, 0)].copy()
        for step in range(1, k):
            rolled = (rolled * np.uint64(1000003) + words[step:step + len(rolled)]) & np.uint64(0xFFFFFFFF)
        word_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        counts = np.maximum(lengths - k + 1, 1)  # a text of fewer than k words is one shingle of them all
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        take = np.repeat(word_starts - offsets, counts) + np.arange(int(counts.sum()))
        hashes = rolled[np.minimum(take, max(len(rolled) - 1, 0))] if len(rolled) else np.zeros(len(take), np.uint64)
        for i in np.flatnonzero(lengths < k).tolist():  # short texts: roll their own words
            own = words[word_starts[i]:word_starts[i] + lengths[i]]
            value = own[0]
            for word in own[1:]:
                value = (value * np.uint64(1000003) + word) & np.uint64(0xFFFFFFFF)
            hashes[offsets[i]] = value
        return hashes.astype(np.uint32), offsets


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch's affine32 scheme pre-mixes each input hash."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))
