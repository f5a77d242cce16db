"""Is an instruction about its segment, and is it a request a user would send? Judged by meaning.

The lexical post-filters miss backward outputs that are fluent but wrong: assistant chatter ("I'm
ready to assist. What text would you like me to help with?"), self-descriptions ("You are a
helpful AI assistant named SmolLM..."), questions about the text itself ("What would you like to
know about this text?"), statements lifted from the answer, and requests about something else.
Two numbers catch them, both from an embedder of `baleen[embed]`:

  relevance  cosine of the instruction's and the segment's embeddings; under the calibrated
             threshold the instruction is not about its text (`unrelated_instruction`)
  chatter    a logistic regression on the instruction's embedding, trained on hand-labelled
             backward outputs of SmolLM2-135M-Instruct and real user requests (`assistant_chatter`)

The weights and both thresholds live in `relevance_weights.json` beside this module, written by
`python bench/relevance.py --train`; they belong to the embedder they were trained with
(`trained_embedder()`), so another `--embed-model` can only run the relevance check, with a
threshold the user gives (postfilter.py decides). Vectors come through the run's `Embeddings`
(RUN/embeddings.sqlite), so a rerun or a re-judgement embeds nothing twice; a small memo in front
of it spares the cache a lookup when both checks read the same instruction.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from generators.core.embeddings import EmbedSettings, Embeddings

__all__ = ["WEIGHTS", "RelevanceModel", "chatter_features", "default_embeddings", "load_weights",
           "relevance_model", "trained_embedder"]

WEIGHTS = Path(__file__).with_name("relevance_weights.json")
MEMO = 4096  # vectors kept in the memo before it is emptied


def chatter_features(instructions: np.ndarray) -> np.ndarray:
    """What the chatter classifier reads: the instruction's embedding alone. (Its cosine with the
    segment is left to `unrelated_instruction`: with it, every request on another topic read as
    chatter; a first-person opening, "this text" and the length as extra inputs lowered the catch
    in cross-validation on the train split.)"""
    return np.asarray(instructions, dtype=np.float32)


class RelevanceModel:
    """The trained weights and the run's embeddings."""

    def __init__(self, weights: dict[str, Any], embeddings: Embeddings) -> None:
        self.embeddings = embeddings
        self.coef = np.asarray(weights["coef"], dtype=np.float32)
        self.intercept = float(weights["intercept"])
        self.chatter_threshold = float(weights["chatter_threshold"])
        self.min_relevance = float(weights["min_relevance"])
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            if len(self._memo) > MEMO:
                self._memo.clear()
            self._memo.update(zip(missing, self.embeddings.encode(missing)))
        return np.stack([self._memo[t] for t in texts])

    def relevance(self, instruction: str, segment: str) -> float:
        vectors = self.embed([instruction, segment])
        return float(vectors[0] @ vectors[1])

    def chatter(self, instruction: str) -> float:
        """The classifier's probability that the instruction is not a request a user would send."""
        features = chatter_features(self.embed([instruction]))
        return float(1.0 / (1.0 + np.exp(-(features @ self.coef + self.intercept)[0])))


@lru_cache(maxsize=1)
def load_weights(path: Path = WEIGHTS) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


def trained_embedder() -> str:
    """The `--embed-model` name the classifier and the calibrated threshold belong to."""
    return str(load_weights()["embedder"])


@lru_cache(maxsize=1)
def default_embeddings() -> Embeddings:
    """The trained embedder with no run folder (no cache on disk): for callers without a run."""
    return Embeddings(EmbedSettings(embed_model=trained_embedder()), None)


@lru_cache(maxsize=16)
def relevance_model(embeddings: Embeddings | None = None) -> RelevanceModel:
    """One model per `Embeddings` (so both checks of a chain share its memo); the embedder loads on
    the first text (a UsageError naming the extra without it)."""
    return RelevanceModel(load_weights(), embeddings or default_embeddings())
