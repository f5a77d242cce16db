"""Corpus-wide duplicate detection for kept segments: exact (hash of normalized text) and near
(MinHash LSH, datasketch). Both live in memory and are primed with `add` from an earlier
partial run's output, since a killed run resumes without re-reading what it kept.
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np

from generators.core.text import normalize_words


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
        return self._signature(normal).hashvalues.astype(np.uint64).tobytes()

    def _from_values(self, values: bytes):
        return self._minhash_cls(num_perm=self.num_perm, seed=1, scheme=self._scheme,
                                 hashvalues=np.frombuffer(values, dtype=np.uint64).copy(),
                                 permutations=self._permutations)

    def _signature(self, normal: str):
        """MinHash of word `shingle`-grams. Shingle hashes are rolled from per-word CRC32s in
        numpy (stable across runs, unlike hash()), then handed to datasketch as integers."""
        words = normal.split() or [""]
        word_hashes = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64,
                                  count=len(words))
        n = min(self.shingle, len(words))
        count = len(words) - n + 1
        rolled = word_hashes[:count].copy()
        for k in range(1, n):
            rolled = (rolled * np.uint64(1000003) + word_hashes[k:k + count]) & np.uint64(0xFFFFFFFF)
        signature = self._minhash_cls(num_perm=self.num_perm, seed=1, hashfunc=int,
                                      permutations=self._permutations, scheme=self._scheme)
        signature.update_batch(rolled.tolist())
        return signature
