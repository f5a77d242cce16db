"""Dialog filters: one test per reason, plus overrides and resumed-run dedup."""
from __future__ import annotations

import json

import pytest

from generators.errors import UsageError
from generators.selfchat.filters import DialogFilter, DialogFilterConfig

GOOD_ANSWER = "Boil it for nine minutes, then cool it in cold water."


def dialog(*turns: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


@pytest.fixture
def check():
    return DialogFilter(DialogFilterConfig()).check


def test_good_dialog_is_kept(check):
    assert check(dialog("How do I boil an egg?", GOOD_ANSWER)) is None


def test_empty(check):
    assert check([]) == "empty"
    assert check([{"role": "system", "content": "be nice"}]) == "empty"


def test_one_sided(check):
    assert check([{"role": "user", "content": "q"}, {"role": "user", "content": "q2"}]) == "one_sided"
    assert check([{"role": "assistant", "content": GOOD_ANSWER}]) == "one_sided"


def test_system_turns_are_ignored(check):
    messages = [{"role": "system", "content": "You are ChatGPT"}] + dialog("Tell me about eggs.", GOOD_ANSWER)
    assert check(messages) is None


@pytest.mark.parametrize("leak", [
    GOOD_ANSWER + " [Human] and what about ducks?",
    GOOD_ANSWER + "\n[|Human|] next question",
    GOOD_ANSWER + "\nHuman: next question",
    GOOD_ANSWER + "\n**User:** next question",
    "[AI] " + GOOD_ANSWER,
])
def test_role_leak_in_answer(check, leak):
    assert check(dialog("How do I boil an egg?", leak)) == "role_leak"


def test_role_leak_in_question(check):
    assert check(dialog("How do I boil an egg? [|AI|] You boil it.", GOOD_ANSWER)) == "role_leak"


def test_role_leak_ignores_mid_line_colon_words(check):
    answer = "In a chat log, the line that says Human: hi belongs to the person, not the model."
    assert check(dialog("Explain chat logs.", answer)) is None


def test_role_leak_can_be_turned_off():
    config = DialogFilterConfig(role_leak=False)
    assert DialogFilter(config).check(dialog("q?", GOOD_ANSWER + "\n[Human] more")) is None


@pytest.mark.parametrize("answer", [
    "As an AI language model, I do not have opinions, but here are some views on it.",
    "I'm sorry, but I cannot help with that request, it is against the rules here.",
    "I\u2019m sorry, but I can\u2019t share that information with you right now at all.",
    "Sorry, but I am unable to give medical advice; please see a doctor about it.",
    "I am unable to provide a diagnosis, but you may wish to consult a physician.",
    "As a language model I have no feelings, yet the topic is interesting for sure.",
])
def test_refusal(check, answer):
    assert check(dialog("What do you think?", answer)) == "refusal"


def test_refusal_is_checked_on_assistant_turns_only(check):
    question = "I'm sorry, but I can't make it to the party. How do I apologise nicely?"
    assert check(dialog(question, "Send a short, warm note and offer to meet another day.")) is None


@pytest.mark.parametrize("answer", [
    "I was trained by OpenAI to help with questions like this one, so here goes.",
    "ChatGPT says the answer is forty-two, which is a joke from a famous novel.",
    "This reply comes from GPT-4, a large model that knows a lot about many things.",
    "Models such as gpt-3.5-turbo can write this kind of summary for you quickly.",
    "I am a language model trained by a research lab, and I can help you with that.",
    "I am an AI assistant created by a team of engineers, here to help you today.",
])
def test_identity_in_answer(check, answer):
    assert check(dialog("Who are you?", answer)) == "identity"


def test_identity_is_checked_on_the_user_side_too(check):
    assert check(dialog("How does ChatGPT work?", GOOD_ANSWER)) == "identity"


def test_identity_words_inside_other_words_do_not_match(check):
    answer = "Use the openair market on Sunday; the cryptographic gptools are unrelated here."
    assert check(dialog("Where to shop?", answer)) is None


def test_short_answer(check):
    assert check(dialog("q?", "Yes.")) == "short_answer"
    assert check(dialog("q?", GOOD_ANSWER, "and?", "  ok   ")) == "short_answer"


def test_short_answer_is_not_applied_to_user_turns(check):
    assert check(dialog("Why?", GOOD_ANSWER)) is None


def test_duplicate_after_normalization(check):
    assert check(dialog("How do I boil an egg?", GOOD_ANSWER)) is None
    again = dialog("how do I  boil an EGG", GOOD_ANSWER.upper() + "  ")
    assert check(again) == "duplicate"
    assert check(dialog("How do I fry an egg?", GOOD_ANSWER)) is None


def test_rejected_dialogs_are_not_remembered(check):
    short = dialog("q?", "Yes.")
    assert check(short) == "short_answer"
    assert check(short) == "short_answer"


def test_remember_primes_dedup_from_a_resumed_run(tmp_path):
    earlier = tmp_path / "data.jsonl"
    earlier.write_text(json.dumps({"messages": dialog("How do I boil an egg?", GOOD_ANSWER)}) + "\n")
    dialog_filter = DialogFilter(DialogFilterConfig())
    for line in earlier.read_text().splitlines():
        dialog_filter.remember(json.loads(line)["messages"])
    assert dialog_filter.check(dialog("How do I boil an egg?", GOOD_ANSWER)) == "duplicate"


def test_no_dedup_keeps_repeats():
    dialog_filter = DialogFilter(DialogFilterConfig.with_overrides(no_dedup=True))
    assert dialog_filter.check(dialog("q?", GOOD_ANSWER)) is None
    assert dialog_filter.check(dialog("q?", GOOD_ANSWER)) is None


def test_override_min_answer_chars():
    dialog_filter = DialogFilter(DialogFilterConfig.with_overrides(min_answer_chars=2))
    assert dialog_filter.check(dialog("q?", "Yes.")) is None
    dialog_filter = DialogFilter(DialogFilterConfig.with_overrides(min_answer_chars=200))
    assert dialog_filter.check(dialog("q?", GOOD_ANSWER)) == "short_answer"


def test_override_extra_block_applies_to_both_sides():
    dialog_filter = DialogFilter(DialogFilterConfig.with_overrides(extra_block=[r"\bcasino\b"]))
    assert dialog_filter.check(dialog("Best casino tips?", GOOD_ANSWER)) == "blocked"
    assert dialog_filter.check(dialog("Tips?", GOOD_ANSWER + " Try a casino.")) == "blocked"
    assert dialog_filter.check(dialog("As an AI language model, what?", GOOD_ANSWER)) is None
    assert dialog_filter.check(dialog("q?", "As an AI language model, I think it is fine.")) == "refusal"


def test_override_drop_defaults():
    config = DialogFilterConfig.with_overrides(drop_defaults=True)
    assert config.block_patterns == {}
    dialog_filter = DialogFilter(config)
    assert dialog_filter.check(dialog("About ChatGPT?", "As an AI language model, ChatGPT is me.")) is None
    config = DialogFilterConfig.with_overrides(drop_defaults=True, extra_block=["forbidden"])
    assert list(config.block_patterns) == ["blocked"]
    assert DialogFilter(config).check(dialog("q?", "this is forbidden knowledge indeed")) == "blocked"


def test_with_overrides_leaves_class_defaults_alone():
    DialogFilterConfig.with_overrides(drop_defaults=True, extra_block=["x"], min_answer_chars=1)
    fresh = DialogFilterConfig()
    assert fresh.min_answer_chars == 20 and "refusal" in fresh.block_patterns and "blocked" not in fresh.block_patterns


def test_bad_regex_is_a_usage_error():
    with pytest.raises(UsageError, match=r"not a valid regex"):
        DialogFilter(DialogFilterConfig.with_overrides(extra_block=["(unclosed"]))


def test_negative_min_answer_chars_is_a_usage_error():
    with pytest.raises(UsageError, match="min-answer-chars"):
        DialogFilter(DialogFilterConfig.with_overrides(min_answer_chars=-1))


def test_describe_is_json_ready():
    described = DialogFilterConfig.with_overrides(extra_block=["x"]).describe()
    assert json.loads(json.dumps(described)) == described
    assert described["block_patterns"]["blocked"] == ["x"]


def test_order_role_leak_before_refusal_before_short(check):
    assert check(dialog("q?", "As an AI language model [Human] no")) == "role_leak"
    assert check(dialog("q?", "As an AI language model.")) == "refusal"


def test_a_turn_repeating_an_earlier_one_is_repetitive(check):
    answer2 = "A different and complete answer that talks about another aspect in some detail."
    assert check(dialog("What is rust?", GOOD_ANSWER, "What is rust?", answer2)) == "repetitive"
    assert check(dialog("What is rust?", GOOD_ANSWER, "And why does it form?", GOOD_ANSWER)) == "repetitive"
    assert check(dialog("What is rust?", GOOD_ANSWER, "And why does it form?", answer2)) is None
