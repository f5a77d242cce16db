"""Is an instruction about its segment, and is it a request a user would send? Judged by meaning.

The lexical post-filters miss backward outputs that are fluent but wrong: assistant chatter ("I'm
ready to assist. What text would you like me to help with?"), self-descriptions ("You are a
helpful AI assistant named SmolLM..."), questions about the text itself ("What would you like to
know about this text?"), statements lifted from the answer, and requests about something else.
Two numbers catch them, both from the packaged MiniLM embedder (`baleen[embed]`):

  relevance  cosine of the instruction's and the segment's embeddings; under the calibrated
             threshold the instruction is not about its text (`unrelated_instruction`)
  chatter    a logistic regression on the instruction's embedding, trained on
             hand-labelled backward outputs of SmolLM2-135M-Instruct (`assistant_chatter`)

The weights and both thresholds live in `relevance_weights.json` beside this module, written by
`python bench/relevance.py --train` from tests/data/relevance/labelled.jsonl; they belong to the
embedder they were trained with, so these checks always use that one. The model loads once per
process, on the first check, and embeddings of recent texts are kept (a segment's `--n`
instructions share one).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["WEIGHTS", "RelevanceModel", "chatter_features", "relevance_model"]

WEIGHTS = Path(__file__).with_name("relevance_weights.json")
def chatter_features(instructions: np.ndarray) -> np.ndarray:
    """What the chatter classifier reads: the instruction's embedding alone. (Its cosine with the
    segment is left to `unrelated_instruction`: with it, every request on another topic read as chatter.)"""
    return np.asarray(instructions, dtype=np.float32)


class RelevanceModel:
    """The embedder and the trained weights, with a small cache of embeddings by text."""

    def __init__(self, weights: dict[str, Any], embedder: Any) -> None:
        self.embedder = embedder
        self.coef = np.asarray(weights["coef"], dtype=np.float32)
        self.intercept = float(weights["intercept"])
        self.chatter_threshold = float(weights["chatter_threshold"])
        self.min_relevance = float(weights["min_relevance"])
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache.update(zip(missing, self.embedder.encode(missing)))
        return np.stack([self._cache[t] for t in texts])

    def relevance(self, instruction: str, segment: str) -> float:
        vectors = self.embed([instruction, segment])
        return float(vectors[0] @ vectors[1])

    def chatter(self, instruction: str, segment: str) -> float:
        """The classifier's probability that the instruction is not a request a user would send."""
        features = chatter_features(self.embed([instruction]))
        return float(1.0 / (1.0 + np.exp(-(features @ self.coef + self.intercept)[0])))


def load_weights(path: Path = WEIGHTS) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


@lru_cache(maxsize=1)
def relevance_model() -> RelevanceModel:
    """The one model of this process (loaded on first use; a UsageError naming the extra without it)."""
    from generators.core.embeddings import load_embedder
    weights = load_weights()
    return RelevanceModel(weights, load_embedder(weights["embedder"]))
