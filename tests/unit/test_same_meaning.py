"""The pair test of semantic dedup (generators/core/same_meaning.py): its features on hand-made
pairs, its verdicts at a given cosine, and its weights refitted from the committed data."""
from __future__ import annotations

import json

import pytest

from generators.core.same_meaning import (DENSITY_NEIGHBOURS, MARGIN, WEIGHTS, PairWeights, density,
                                          pair_features, same_meaning, stands_out)


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


def test_density_is_the_mean_of_the_nearest_and_missing_neighbours_count_zero():
    assert density([0.9, 0.1, 0.5, 0.7, 0.3, 0.8], k=5) == pytest.approx((0.9 + 0.8 + 0.7 + 0.5 + 0.3) / 5)
    assert density([0.6], k=DENSITY_NEIGHBOURS) == pytest.approx(0.6 / DENSITY_NEIGHBOURS)
    assert density([], k=DENSITY_NEIGHBOURS) == 0.0


def test_a_pair_must_stand_out_of_both_neighbourhoods():
    # 0.81 between two titles that each lie at 0.6 from their nearest: no stand-out
    assert not stands_out(0.81, 0.6, 0.6)
    # the same cosine in a sparse neighbourhood stands out
    assert stands_out(0.81, 0.4, 0.45)
    assert stands_out(0.7, 0.7 - MARGIN, 0.7 - MARGIN)  # at the margin exactly


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
    """`bench/calibrate_embed.py --fit` on the committed data gives the shipped weights (fitted at
    the floor 0.72 of pair-logistic-v1; the margin and floor 0.65 were chosen after, by --cv)."""
    emb, sets, paraphrases, distinct = quality
    fitted = bench.fit(emb, sets, paraphrases, distinct, bench.PAIR_TEST_FLOOR)
    assert isinstance(fitted, PairWeights)
    for name in ("bias", "cosine", "overlap", "swap", "marker"):
        assert getattr(fitted, name) == pytest.approx(getattr(WEIGHTS, name), abs=0.01), name


@pytest.mark.calibration
def test_the_default_rule_on_the_whole_sets(bench, quality):
    """The calibration of docs/filters.md at the defaults: every distinct set deduplicated whole
    (at most 1% dropped: MedQuAD 0/200, AlpacaEval 1/250, Stack Overflow 3/300), paraphrases
    caught alone (136/150) and in the pool of all the distinct texts (125/150: under the 85%
    target, the stated gap), hard distinct pairs rarely caught."""
    emb, sets, paraphrases, distinct = quality
    found = bench.measure(emb, sets, paraphrases, distinct)
    for name, texts in sets.items():
        assert len(found[name]) <= 0.01 * len(texts), name
    assert len(found["paraphrases alone"]) >= 0.85 * len(paraphrases)
    assert len(found["paraphrases in pool"]) >= 0.83 * len(paraphrases)
    assert len(found["distinct pairs alone"]) <= 0.05 * len(distinct)
    assert len(found["distinct pairs in pool"]) <= 0.05 * len(distinct)


@pytest.mark.calibration
def test_on_topic_dialogs_pass_the_topic_check(quality):
    from generators.core.embeddings import TOPIC_THRESHOLD
    from generators.selfchat.filters import topic_cosine
    from tests.helpers import REPO

    emb = quality[0]
    path = REPO / "tests" / "data" / "quality" / "teacher_dialogs.jsonl"
    dialogs = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    assert all(topic_cosine(emb, d["seed"], d["messages"]) >= TOPIC_THRESHOLD for d in dialogs)


def test_the_bench_reads_other_data_files_given_by_flag(bench, tmp_path):
    """--distinct-sets NAME=PATH:FIELD (a path may hold ':'; the field is after the last one)."""
    path = tmp_path / "titles:fresh.jsonl"
    path.write_text('{"title": "How do I join two tables?"}\n\n{"title": "Why is my query slow?"}\n', "utf-8")
    name, texts = bench.distinct_set(f"SO fresh={path}:title")
    assert name == "SO fresh" and texts == ["How do I join two tables?", "Why is my query slow?"]
    with pytest.raises(ValueError):
        bench.distinct_set("no-path-or-field")
    assert len(bench.lines("paraphrase_pairs.jsonl")) == 150  # a bare name is read from tests/data/quality/
