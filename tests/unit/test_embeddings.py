"""The embedder, its cache and the nearest-neighbour index, with the real packaged all-MiniLM-L6-v2
(baleen[embed]; loaded once for the module), and the diversity figures on hand-made rows."""
from __future__ import annotations

import numpy as np
import pytest

from generators.core import diversity
from generators.core.embeddings import (SEMANTIC_THRESHOLD, EmbeddingCache, EmbedSettings, Embeddings, NearIndex,
                                        SemanticDedup, cached_encode, load_embedder)
from generators.core.errors import UsageError


@pytest.fixture(scope="module")
def embedder():
    return load_embedder("minilm")


def test_rows_are_normalised_float32_and_paraphrases_are_near(embedder):
    vectors = embedder.encode(["What causes kidney failure?", "What leads to renal failure?",
                               "How do I reverse a string in Python?"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, embedder.dim) and embedder.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.8 > vectors[0] @ vectors[2]


def test_the_cache_embeds_each_text_once_per_model(embedder, tmp_path):
    cache = EmbeddingCache(tmp_path)
    texts = ["one question", "another question", "one question"]
    first = cached_encode(embedder, cache, texts)
    assert (cache.hits, cache.misses) == (0, 2)  # the repeated text is embedded once
    again = cached_encode(embedder, EmbeddingCache(tmp_path), texts[::-1])
    assert np.array_equal(again, first[::-1])
    reopened = EmbeddingCache(tmp_path)
    cached_encode(embedder, reopened, texts)
    assert (reopened.hits, reopened.misses) == (3, 0)
    embedder.name = "other"  # another model's vectors are other keys
    try:
        other = EmbeddingCache(tmp_path)
        cached_encode(embedder, other, texts[:1])
        assert other.misses == 1
    finally:
        embedder.name = "minilm"


def test_the_index_finds_the_nearest_before_and_after_it_turns_into_a_graph(embedder):
    texts = [f"How do I cook {food}?" for food in ("rice", "pasta", "eggs", "beans", "lentils", "salmon",
                                                   "tofu", "quinoa")]
    vectors = embedder.encode(texts)
    index = NearIndex(embedder.dim, exact_limit=4)
    for v in vectors[:6]:
        index.add(v)
    assert type(index.index).__name__ == "IndexHNSWFlat" and len(index) == 6
    for i, v in enumerate(vectors[:6]):
        assert index.nearest(v) == pytest.approx(1.0, abs=1e-4), texts[i]
    assert index.nearest(vectors[7]) == pytest.approx(float((vectors[:6] @ vectors[7]).max()), abs=1e-4)
    for i, v in enumerate(vectors[:6]):  # positions are the add order, nearest first, all over the floor
        found = index.neighbours(v, floor=0.5, k=3)
        assert found[0][0] == i and all(c >= 0.5 for _, c in found) and len(found) <= 3
        assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)
    assert index.neighbours(vectors[7], floor=1.01) == []


def test_semantic_dedup_keeps_the_first_in_order(embedder):
    embeddings = Embeddings(EmbedSettings(semantic_dedup=True), None)
    embeddings._embedder = embedder
    dedup = SemanticDedup(embeddings, 0.8)
    texts = ["What causes kidney failure?", "Why do volcanoes erupt?", "What leads to renal failure?",
             "What makes a volcano erupt?", "How do I bake bread?"]
    dedup.warm(texts)
    assert [dedup.is_duplicate(t) for t in texts] == [False, False, True, True, False]


def test_semantic_dedup_keeps_a_near_identical_wording_that_asks_another_thing_and_resumes_alike(embedder):
    """The cosine puts "latest" and "first" row per group near each other (candidates), the pair
    test keeps both; the reworded one is dropped. A dedup primed with what was kept (a resumed
    run) decides the rest the same way."""
    embeddings = Embeddings(EmbedSettings(semantic_dedup=True), None)
    embeddings._embedder = embedder
    texts = ["SQL query to select the latest row per group", "How do I bake sourdough bread?",
             "SQL query to select the first row per group", "SQL: get the most recent row for each group",
             "What are the symptoms of an overactive thyroid?", "What are the symptoms of an underactive thyroid?",
             "What are the signs of hyperthyroidism?"]
    vectors = embedder.encode(texts)
    assert vectors[0] @ vectors[2] >= SEMANTIC_THRESHOLD and vectors[4] @ vectors[5] >= SEMANTIC_THRESHOLD
    dedup = SemanticDedup(embeddings, SEMANTIC_THRESHOLD)
    dedup.warm(texts)
    verdicts = [dedup.is_duplicate(t) for t in texts]
    assert verdicts == [False, False, False, True, False, False, True]
    assert dedup.settings()["pair_test"] and dedup.settings()["threshold"] == SEMANTIC_THRESHOLD

    resumed = SemanticDedup(embeddings, SEMANTIC_THRESHOLD)
    for text, dropped in zip(texts[:3], verdicts[:3]):
        if not dropped:
            resumed.remember(text)
    assert [resumed.is_duplicate(t) for t in texts[3:]] == verdicts[3:]
    # the cosine floor still rules: at 0.99 nothing is a candidate, so nothing is dropped
    strict = SemanticDedup(embeddings, 0.99)
    assert not any(strict.is_duplicate(t) for t in texts)


def test_in_a_crowded_topic_the_margin_keeps_generic_titles_and_a_resumed_run_decides_alike(embedder):
    """Real Stack Overflow titles (all SQL, distinct): "Struggling with a simple JOIN" lies at 0.81
    from "Using joins correctly", but both lie as near to many other titles, so the margin over
    their neighbourhoods keeps it (without the margin it is dropped). The densities come from the
    kept texts at decision time: a dedup primed with the kept ones of the first part (a resumed
    run) decides the rest the same way."""
    import json

    from tests.helpers import REPO

    path = REPO / "tests" / "data" / "quality" / "stackoverflow_titles.jsonl"
    titles = [json.loads(line)["title"] for line in path.read_text("utf-8").splitlines() if line.strip()]
    texts = titles[:100] + [titles[101], titles[246], titles[247]]
    embeddings = Embeddings(EmbedSettings(semantic_dedup=True), None)
    embeddings._embedder = embedder

    def verdicts(dedup: SemanticDedup, part: list[str]) -> list[bool]:
        dedup.warm(part)
        return [dedup.is_duplicate(t) for t in part]

    whole = verdicts(SemanticDedup(embeddings, SEMANTIC_THRESHOLD), texts)
    no_margin = verdicts(SemanticDedup(embeddings, SEMANTIC_THRESHOLD, margin=-1.0), texts)
    joins = texts.index("Struggling with a simple JOIN")
    assert no_margin[joins] and not whole[joins]
    assert sum(whole) < sum(no_margin)
    resumed = SemanticDedup(embeddings, SEMANTIC_THRESHOLD)
    resumed.warm(texts)
    for text, dropped in zip(texts[:60], whole[:60]):
        if not dropped:
            resumed.remember(text)
    assert verdicts(resumed, texts[60:]) == whole[60:]


def test_a_model_that_cannot_be_loaded_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError) as caught:
        load_embedder(str(tmp_path / "no-such-model"))
    assert "--embed-model" in caught.value.message and "\n" not in caught.value.message


def test_diversity_figures_from_rows_alone():
    rows = [{"group": "g", "status": "kept", "instruction": "a b a", "answer": "x y", "nearest_cosine": 0.9,
             "mean_cosine": 0.5, "cluster": 0},
            {"group": "g", "status": "kept", "instruction": "a c", "answer": "x z", "nearest_cosine": 0.9,
             "mean_cosine": 0.5, "cluster": 0},
            {"group": "g", "status": "kept", "instruction": "d e", "answer": "w", "nearest_cosine": 0.2,
             "mean_cosine": 0.1, "cluster": 1},
            {"group": "g", "status": "rejected", "instruction": "q", "answer": "r"}]
    fig = diversity.figures(rows, threshold=0.8)["g"]
    assert fig["kept"] == 3 and fig["rejected"] == 1
    assert fig["distinct_1_instructions"] == round(5 / 7, 4)        # a b c d e over 7 words
    assert fig["distinct_2_instructions"] == 1.0                     # ab ba ac de
    assert fig["mean_cosine"] == round(1.1 / 3, 4)
    assert fig["near_share"] == round(2 / 3, 4)
    assert fig["clusters"] == 2 and fig["clusters_90"] == 2           # 2 of 3 is under 90%
    assert diversity.distinct([], 1) is None
