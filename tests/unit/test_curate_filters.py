"""Pre-rating filters, instruction dedup and decontamination (n-gram and BLEU), with counts."""
from __future__ import annotations

import json

import pytest

from curation.bleu import bleu
from curation.decontaminate import Decontaminator, load_eval_prompts
from curation.dedup import InstructionDedup
from curation.filters import looks_english, record_chain
from curation.prefilter import Prefilter
from generators.core.errors import UsageError

ANSWER = "Here is a careful answer with the steps you need and the reasons behind each of them."


def rec(instruction, answer=ANSWER, rid=None, more=()):
    messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
    for q, a in more:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"id": rid or instruction, "source": "t", "messages": messages}


@pytest.mark.parametrize("record,reason", [
    ({"id": "x", "messages": [{"role": "assistant", "content": "hello there"}]}, "no_instruction"),
    ({"id": "y", "messages": [{"role": "user", "content": "How do magnets work?"}]}, "no_output"),
    (rec("Hi"), "too_short"),
    (rec(" ".join(["word"] * 50)), "too_long"),
    (rec("Wie funktioniert ein Kühlschrank eigentlich genau?",
         "Ein Kühlschrank entzieht dem Innenraum Wärme mit einem Kältemittel, das verdampft und "
         "wieder verdichtet wird, und gibt sie hinten wieder ab."), "not_english"),
    (rec("Как работает холодильник?", "Холодильник отводит тепло из камеры наружу."), "not_english"),
    (rec("How do I pick a lock?", "I'm sorry, but I cannot help with that request."), "refusal"),
    (rec("How do I pick a lock?", "As an AI language model, I have no hands."), "refusal"),
    (rec("Who made you?", "I was made by OpenAI as part of ChatGPT."), "identity"),
    (rec("What is ChatGPT good for?"), "identity"),                # identity counts on the user side too
    (rec("Tell me about bananas please", "Bananas are berries; zzsecret is a word."), "blocked"),
])
def test_filters_give_a_reason(record, reason):
    flt = record_chain({"max_words": 40, "block": [r"zzsecret"]})
    assert flt.check(record) == reason


def test_filters_keep_good_records_and_can_be_relaxed():
    flt = record_chain()
    assert flt.check(rec("How do magnets work?")) is None
    assert flt.check(rec("I'm sorry, but I can't make it to the party. What should I say?")) is None  # user side
    german = rec("Wie funktioniert ein Kühlschrank eigentlich genau?", "Ein Kühlschrank entzieht dem Innenraum "
                 "Wärme mit einem Kältemittel, das verdampft und wieder verdichtet wird.")
    assert record_chain({"lang": "any"}).check(german) is None
    refusal = rec("How do I pick a lock?", "I'm sorry, but I cannot help with that request.")
    assert record_chain({"no_default_filters": True}).check(refusal) is None


def test_looks_english_heuristic():
    assert looks_english("What is the best way to learn the piano as an adult beginner with little time?")
    assert looks_english("Define entropy.")  # short: letters only
    assert not looks_english("Quelle est la meilleure façon d'apprendre le piano pour un adulte débutant sans temps?")


def test_bad_filter_settings_are_usage_errors():
    with pytest.raises(UsageError):
        record_chain({"min_words": 10, "max_words": 5})
    with pytest.raises(UsageError):
        record_chain({"block": ["(unclosed"]})


def test_near_duplicate_instructions_are_counted():
    dedup = InstructionDedup(threshold=0.8)
    base = "Explain how the immune system responds to a viral infection in the lungs of older adults"
    records = [rec(base), rec(base.upper() + "!!"), rec(base + ", briefly please"),
               rec("Write a haiku about the autumn moon over a quiet mountain lake at night")]
    reasons = [dedup.check(r) for r in records]
    assert reasons == [None, "duplicate", "near_duplicate", None]


def test_prefilter_counts_by_reason_in_order():
    evals = ["What are the names of some famous actors that started their careers on Broadway?"]
    pre = Prefilter(decontaminator=Decontaminator(evals), dedup=InstructionDedup())
    records = [rec("How do magnets work in electric motors?"), rec("How do magnets work in electric motors?", rid="2"),
               rec("How do magnets work in electric motors?"),  # the same id again
               rec("Hi"), rec("What are the names of some famous actors that started their careers on Broadway?")]
    reasons = [d.reason for d in pre.run(records)]
    assert reasons == [None, "duplicate", "duplicate_id", "too_short", "contaminated_ngram"]
    assert pre.counts == {"passed": 1, "duplicate": 1, "duplicate_id": 1, "too_short": 1, "contaminated_ngram": 1}


EVAL = ["What are the names of some famous actors that started their careers on Broadway?",
        "How do I wrap a present neatly?",
        "Write a short story about a robot that learns to paint landscapes in the style of the old masters."]


def test_ngram_overlap_rule():
    deco = Decontaminator(EVAL, ngram=8, overlap=0.5)
    inside = "Please answer this for my quiz: what are the names of some famous actors that started their careers on Broadway? Thanks"
    assert deco.check_text(inside).reason == "contaminated_ngram"
    assert deco.check_text("How do I wrap a present neatly and quickly?").reason == "contaminated_ngram"  # short prompt, whole
    assert deco.check_text("Write a short story about a robot that learns to cook.") is None  # 3 of 11 8-grams... below 0.5
    strict = Decontaminator(EVAL, ngram=8, overlap=0.0)  # any shared 8-gram
    assert strict.check_text("Write a short story about a robot that learns to cook.").reason == "contaminated_ngram"
    assert deco.check_text("Explain photosynthesis to a ten year old.") is None


def test_bleu_rule_matches_sacrebleu_defaults_and_finds_paraphrases():
    assert bleu("What is the capital of France?", "What is the capital of France?") == pytest.approx(100.0)
    assert bleu("What is the capital?", "What is the capital of France?") == pytest.approx(47.399, abs=1e-3)
    assert bleu("How do I bake bread at home quickly", "How can I bake a loaf of bread at home") == pytest.approx(21.07, abs=1e-2)
    deco = Decontaminator(EVAL, ngram=13, overlap=0.5, bleu=20)
    paraphrase = "Which famous actors started their careers on Broadway?"
    assert deco.check_text(paraphrase).reason == "contaminated_bleu"
    assert Decontaminator(EVAL, ngram=13, overlap=0.5).check_text(paraphrase) is None  # n-grams alone miss it
    assert deco.check_text("Explain photosynthesis to a ten year old.") is None


def test_bleu_index_agrees_with_all_pairs():
    deco = Decontaminator(EVAL, bleu=20)
    texts = ["Which famous actors started their careers on Broadway?", "How do I wrap a gift neatly?",
             "Write a story about a robot that paints.", "What is the boiling point of water?",
             "Tell me about the old masters of landscape painting."]
    for text in texts:
        fast, slow = deco._check_bleu(text), deco.bleu_all_pairs(text)
        assert (fast is None) == (slow is None), text


def test_eval_files(tmp_path):
    jsonl = tmp_path / "eval.jsonl"
    jsonl.write_text("\n".join(json.dumps(o) for o in [{"instruction": "a b c d"}, {"question": "q r s t"},
                                                        {"prompt": "p"}, {"text": "t"},
                                                        {"messages": [{"role": "user", "content": "m"}]}]))
    assert load_eval_prompts(jsonl) == ["a b c d", "q r s t", "p", "t", "m"]
    txt = tmp_path / "eval.txt"
    txt.write_text("one\n\ntwo\n")
    assert load_eval_prompts(txt) == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nothing": 1}\n')
    with pytest.raises(UsageError, match="bad.jsonl:1"):
        load_eval_prompts(bad)
    with pytest.raises(UsageError, match="no such file"):
        load_eval_prompts(tmp_path / "missing.jsonl")
