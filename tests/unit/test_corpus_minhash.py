"""The batched hashing of the corpus dedup gives exactly the values of the per-text paths it
replaced: datasketch's MinHash over rolled shingle hashes, and a lookbehind sentence split."""
from __future__ import annotations

import random
import re
import zlib

import numpy as np
from datasketch import MinHash

from generators.core.text import tokens
from generators.inputs.corpus.dedup import DedupIndex
from generators.inputs.corpus.filters import _SENTENCE_SPLIT


def datasketch_values(index: DedupIndex, normal: str) -> np.ndarray:
    """The MinHash of a normalized text as the index computed it before (one MinHash a text)."""
    words = normal.split() or [""]
    hashes = np.fromiter(map(zlib.crc32, map(str.encode, words)), dtype=np.uint64, count=len(words))
    n = min(index.shingle, len(words))
    count = len(words) - n + 1
    rolled = hashes[:count].copy()
    for k in range(1, n):
        rolled = (rolled * np.uint64(1000003) + hashes[k:k + count]) & np.uint64(0xFFFFFFFF)
    signature = MinHash(num_perm=index.num_perm, seed=1, hashfunc=int, permutations=index._permutations,
                        scheme=index._scheme)
    signature.update_batch(rolled.tolist())
    return signature.hashvalues


def texts(seed: int) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)]
    out = ["", "a", "a b", "a b c d", "a b c d e", "a b c d e f"]
    out += [" ".join(rng.choice(vocab) for _ in range(rng.choice([0, 1, 3, 4, 5, 6, 40, 150, 700])))
            for _ in range(400)]
    rng.shuffle(out)
    return out


def test_batched_signatures_equal_datasketch_for_every_length():
    for shingle, num_perm in ((5, 128), (1, 16), (3, 64)):
        index = DedupIndex(shingle=shingle, num_perm=num_perm)
        normals = texts(shingle)
        batched = index.signatures(normals)
        assert batched.shape == (len(normals), num_perm) and batched.dtype == np.uint32
        assert np.array_equal(batched, np.stack([datasketch_values(index, t) for t in normals]))
        assert np.array_equal(index.signatures(normals[:1])[0], batched[0])  # alone as in a batch


def test_near_duplicates_still_meet_in_the_index():
    index = DedupIndex()
    base = " ".join(f"w{i}" for i in range(150))
    assert index.check(base) is None
    assert index.check(base.replace("w70", "x70")) == "near_duplicate"
    assert index.check(" ".join(f"v{i}" for i in range(150))) is None


def test_sentence_split_gives_the_tokens_of_the_lookbehind_split():
    lookbehind = re.compile(r"(?<=[.!?])\s+|\n+")
    rng = random.Random(0)
    alphabet = "ab .!?\n\t \r\u2028\u00a0Σ"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert [tokens(s) for s in _SENTENCE_SPLIT.split(text)] == [tokens(s) for s in lookbehind.split(text)]
