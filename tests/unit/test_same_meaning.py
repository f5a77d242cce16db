"""The pair test of semantic dedup (generators/core/same_meaning.py): its features on hand-made
pairs, its verdicts at a given cosine, and its weights refitted from the committed data."""
from __future__ import annotations

import json

import pytest

from generators.core.same_meaning import WEIGHTS, PairWeights, pair_features, same_meaning


def test_a_swapped_key_word_is_a_swap_with_high_overlap():
    cosine, overlap, swap, marker = pair_features("SQL query to select the latest row per group",
                                                  "SQL query to select the first row per group", 0.77)
    assert cosine == 0.77 and swap == 1.0 and marker == 1.0  # "latest" and "first" are order words
    assert overlap == pytest.approx(8 / 10)                  # all words but the two swapped ones


def test_a_paraphrase_in_other_words_has_low_overlap_and_an_addition_is_no_swap():
    _, overlap, swap, marker = pair_features("What causes kidney failure?", "What leads to renal failure?", 0.9)
    assert swap == 1.0 and marker == 0.0 and overlap < 0.4
    _, overlap, swap, _ = pair_features("How can I center a div horizontally in CSS?",
                                        "How do I horizontally center a div element with CSS?", 0.98)
    assert swap == 0.0 and overlap == 0.0  # only words added: the overlap counts for swaps only


def test_a_number_or_a_negation_in_one_text_only_is_a_marker():
    assert pair_features("Who should get the flu vaccine?", "Who should not get the flu vaccine?", 0.95)[3] == 1.0
    assert pair_features("symptoms of migraine type 1", "symptoms of migraine type 3", 0.95)[3] == 1.0
    assert pair_features("Is it safe to take ibuprofen?", "Can I safely take ibuprofen?", 0.9)[3] == 0.0


def test_the_verdicts_at_a_given_cosine():
    assert same_meaning("What causes kidney failure?", "What leads to renal failure?", 0.85)
    assert same_meaning("How do I reverse a string in Python?", "How do I reverse a string in Python", 0.99)
    assert not same_meaning("SQL query to select the latest row per group",
                            "SQL query to select the first row per group", 0.77)
    assert not same_meaning("What are the symptoms of an overactive thyroid?",
                            "What are the symptoms of an underactive thyroid?", 0.94)
    # a low cosine is no duplicate, however the words look
    assert not same_meaning("How do I bake bread?", "Why do volcanoes erupt?", 0.3)


@pytest.fixture(scope="module")
def bench():
    """bench/calibrate_embed.py as a module (its data loading, split and fit are what is tested)."""
    import importlib.util

    from tests.helpers import REPO

    spec = importlib.util.spec_from_file_location("calibrate_embed", REPO / "bench" / "calibrate_embed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def quality(bench):
    """The committed quality data and the real model, every text embedded once for the module
    (about 1,200 short texts: the slow part of these tests)."""
    from generators.core.embeddings import load_embedder

    emb = bench.Memory(load_embedder("minilm"))
    sets = {"MedQuAD": [r["question"] for r in bench.lines("medquad_pairs.jsonl")],
            "AlpacaEval": [r["instruction"] for r in bench.lines("alpaca_eval_instructions.jsonl")],
            "Stack Overflow": [r["title"] for r in bench.lines("stackoverflow_titles.jsonl")]}
    paraphrases, distinct = bench.lines("paraphrase_pairs.jsonl"), bench.lines("distinct_pairs.jsonl")
    emb.encode([t for texts in sets.values() for t in texts] + [p[k] for p in paraphrases + distinct for k in "ab"])
    return emb, sets, paraphrases, distinct


@pytest.mark.calibration
def test_the_weights_are_the_logistic_fit_of_the_training_half(bench, quality):
    """`bench/calibrate_embed.py --fit` on the committed data gives the shipped weights."""
    from generators.core.embeddings import SEMANTIC_THRESHOLD

    emb, sets, paraphrases, distinct = quality
    fitted = bench.fit(emb, sets, paraphrases, distinct, SEMANTIC_THRESHOLD)
    assert isinstance(fitted, PairWeights)
    for name in ("bias", "cosine", "overlap", "swap", "marker"):
        assert getattr(fitted, name) == pytest.approx(getattr(WEIGHTS, name), abs=0.01), name


@pytest.mark.calibration
def test_the_default_rule_on_the_held_out_half(bench, quality):
    """The calibration of docs/filters.md at the defaults, on the half not fitted on: paraphrases
    caught, hard distinct pairs and distinct real questions rarely dropped (Stack Overflow's
    short titles are the stated gap: more than 1%, bounded here at its measured 2.2%)."""
    from generators.core.embeddings import SEMANTIC_THRESHOLD as floor

    emb, sets, paraphrases, distinct = quality
    held = [p for p in paraphrases if bench.held_out(p["id"])]
    caught, n = bench.pair_share(emb, held, floor)
    assert caught >= 0.85 * n
    wrong, n = bench.pair_share(emb, [p for p in distinct if bench.held_out(p["id"])], floor)
    assert wrong <= 0.05 * n
    for name, texts in sets.items():
        test = [t for t in texts if bench.held_out(t)]
        dropped = bench.false_duplicates(emb, test, floor)
        assert dropped <= (0.025 if name == "Stack Overflow" else 0.01) * len(test), name


@pytest.mark.calibration
def test_on_topic_dialogs_pass_the_topic_check(quality):
    from generators.core.embeddings import TOPIC_THRESHOLD
    from generators.selfchat.filters import topic_cosine
    from tests.helpers import REPO

    emb = quality[0]
    path = REPO / "tests" / "data" / "quality" / "teacher_dialogs.jsonl"
    dialogs = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    assert all(topic_cosine(emb, d["seed"], d["messages"]) >= TOPIC_THRESHOLD for d in dialogs)
