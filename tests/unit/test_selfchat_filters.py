"""Dialog filters: one test per reason, plus flags and resumed-run dedup."""
from __future__ import annotations

import json

import pytest

from generators.core.errors import UsageError
from generators.core.filtering import FilterChain, option_names
from generators.core.blocks import DEFAULT_BLOCK_PATTERNS
from generators.selfchat.filters import DIALOG_FILTERS, Chat, OffTopic, dialog_chain

GOOD_ANSWER = "Boil it for nine minutes, then cool it in cold water."


def dialog(*turns: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


def checker(values: dict | None = None, without: tuple[str, ...] = ()):
    """The dialog chain as flag values ask for it (less the filters named), as a function."""
    chain = dialog_chain(values)
    chain = FilterChain([f for f in chain.filters if f.name not in without])
    return lambda messages, seed=None: chain.check(Chat(messages, seed))


@pytest.fixture
def check():
    return checker()


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


def test_role_leak_can_be_left_out():
    assert checker(without=("role_leak",))(dialog("q?", GOOD_ANSWER + "\n[Human] more")) is None


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
    chain = dialog_chain()
    for line in earlier.read_text().splitlines():
        chain.remember(Chat(json.loads(line)["messages"]))
    assert chain.check(Chat(dialog("How do I boil an egg?", GOOD_ANSWER))) == "duplicate"


def test_no_dedup_keeps_repeats():
    check = checker({"keep_duplicates": True})
    assert check(dialog("q?", GOOD_ANSWER)) is None
    assert check(dialog("q?", GOOD_ANSWER)) is None


def test_override_min_answer_chars():
    assert checker({"min_answer_chars": 2})(dialog("q?", "Yes.")) is None
    assert checker({"min_answer_chars": 200})(dialog("q?", GOOD_ANSWER)) == "short_answer"


def test_override_extra_block_applies_to_both_sides():
    check = checker({"block": [r"\bcasino\b"]})
    assert check(dialog("Best casino tips?", GOOD_ANSWER)) == "blocked"
    assert check(dialog("Tips?", GOOD_ANSWER + " Try a casino.")) == "blocked"
    assert check(dialog("As an AI language model, what?", GOOD_ANSWER)) is None
    assert check(dialog("q?", "As an AI language model, I think it is fine.")) == "refusal"


def test_override_drop_defaults():
    assert dialog_chain({"no_default_filters": True}).settings()["block_patterns"]["patterns"] == {}
    check = checker({"no_default_filters": True})
    assert check(dialog("About ChatGPT?", "As an AI language model, ChatGPT is me.")) is None
    values = {"no_default_filters": True, "block": ["forbidden"]}
    assert list(dialog_chain(values).settings()["block_patterns"]["patterns"]) == ["blocked"]
    assert checker(values)(dialog("q?", "this is forbidden knowledge indeed")) == "blocked"


def test_flags_leave_the_defaults_alone():
    dialog_chain({"no_default_filters": False, "block": ["x"], "min_answer_chars": 1})
    fresh = dialog_chain().settings()
    assert fresh["short_answer"] == {"min_chars": 20} and "blocked" not in fresh["block_patterns"]["patterns"]
    assert "blocked" not in DEFAULT_BLOCK_PATTERNS and "refusal" in fresh["block_patterns"]["patterns"]


def test_every_filter_flag_is_declared_on_its_class():
    by_class = {cls.__name__: option_names([cls]) for cls in DIALOG_FILTERS if cls.options}
    assert by_class == {"BlockPatterns": ["block", "no_default_filters"], "ShortAnswer": ["min_answer_chars"],
                        "DuplicateDialogs": ["keep_duplicates"], "OffTopic": ["topic_by_meaning", "topic_threshold"]}


def test_bad_regex_is_a_usage_error():
    with pytest.raises(UsageError, match=r"not a valid regex"):
        dialog_chain({"block": ["(unclosed"]})


def test_negative_min_answer_chars_is_a_usage_error():
    with pytest.raises(UsageError, match="min-answer-chars"):
        dialog_chain({"min_answer_chars": -1})


def test_settings_are_json_ready():
    described = dialog_chain({"block": ["x"]}).settings()
    assert json.loads(json.dumps(described)) == described
    assert described["block_patterns"]["patterns"]["blocked"] == ["x"]


def test_order_role_leak_before_refusal_before_short(check):
    assert check(dialog("q?", "As an AI language model [Human] no")) == "role_leak"
    assert check(dialog("q?", "As an AI language model.")) == "refusal"


def test_a_turn_repeating_an_earlier_one_is_repetitive(check):
    answer2 = "A different and complete answer that talks about another aspect in some detail."
    assert check(dialog("What is rust?", GOOD_ANSWER, "What is rust?", answer2)) == "repetitive"
    assert check(dialog("What is rust?", GOOD_ANSWER, "And why does it form?", GOOD_ANSWER)) == "repetitive"
    assert check(dialog("What is rust?", GOOD_ANSWER, "And why does it form?", answer2)) is None


def test_a_near_repeat_with_a_few_words_changed_is_repetitive(check):
    first = ("Diabetes is a condition in which blood sugar stays too high because the body makes too little "
             "insulin or cannot use it well.")
    again = ("Diabetes is a condition where the blood sugar stays too high, because the body makes too little "
             "insulin or cannot use it properly.")
    assert check(dialog("What is diabetes?", first, "And what are its types?", again)) == "repetitive"


def test_the_prompts_own_example_lines_are_a_template_echo(check):
    assert check(dialog("Hi there!", "Hello! What would you like to talk about?")) == "template_echo"
    assert check(dialog("How do I boil an egg?", GOOD_ANSWER, "hi there", GOOD_ANSWER + " Then peel it.")) \
        == "template_echo"


def test_the_prompts_rules_given_back_are_a_template_echo(check):
    rule = ("The assistant gives complete, accurate and friendly answers and does not ask the person "
            "questions.")
    assert check(dialog("How do I boil an egg?", rule)) == "template_echo"


def test_echo_can_be_left_out():
    assert checker(without=("template_echo",))(dialog("Hi there!", "Hello! What would you like to talk about?")) is None


@pytest.mark.parametrize("turn", [
    "You've already answered the first question. The next question is: how long do eggs keep?",
    "Let's continue the conversation with another question about eggs.",
    "Next question: how long do eggs keep?",
    "As the person in this chat, I would ask how long eggs keep.",
    "This conversation is about eggs, so how long do they keep?",
    "You've got the right answer. Here's a continuation of your question: how long do eggs keep?",
])
def test_a_person_turn_about_the_conversation_is_a_meta_turn(check, turn):
    assert check(dialog("How do I boil an egg?", GOOD_ANSWER, turn, GOOD_ANSWER + " Keep them cold.")) \
        == "meta_turn"


@pytest.mark.parametrize("turn", [
    "You mentioned cold water. Why does that matter?",
    "Thanks, that helps! And how long do boiled eggs keep?",
    "My question is simple: can I boil eggs in a kettle?",
])
def test_ordinary_follow_ups_are_not_meta_turns(check, turn):
    assert check(dialog("How do I boil an egg?", GOOD_ANSWER, turn,
                        "They keep for about a week in the fridge, in their shells.")) is None


def test_meta_turns_are_checked_on_the_person_side_only(check):
    answer = "The next question is a good one: boiled eggs keep for about a week in the fridge."
    assert check(dialog("How long do eggs keep?", answer)) is None


def test_off_topic_needs_the_seed():
    about_cats = dialog("What do cats eat?", "Cats eat meat: commercial cat food, cooked chicken or fish.")
    assert checker()(about_cats) is None
    assert checker()(about_cats, seed="How do I boil an egg?") == "off_topic"


def test_a_dialog_that_takes_up_its_seed_is_on_topic():
    talk = dialog("My eggs crack when I boil them. What am I doing wrong?",
                  "Lower them gently into simmering water, and start with eggs at room temperature.")
    assert checker()(talk, seed="How to boil eggs without cracking") is None


def test_a_seed_without_content_words_is_never_off_topic():
    assert checker()(dialog("What do cats eat?", "Cats eat meat, mostly."), seed="Hi!") is None


def test_topic_share_is_checked():
    with pytest.raises(UsageError, match="topic share"):
        OffTopic(1.5)
    loose = FilterChain([OffTopic(0)])
    assert loose.check(Chat(dialog("What do cats eat?", "Cats eat meat, mostly."), seed="Boiling eggs")) is None


def test_short_follow_ups_sharing_a_word_are_not_repeats(check):
    answer2 = "Children usually get a lower dose, worked out from their weight by the doctor."
    assert check(dialog("What about children?", GOOD_ANSWER, "And in children?", answer2)) is None


def test_a_person_turn_parroting_the_answer_is_repetitive(check):
    answer = "Methylmalonic acidemia with homocystinuria is inherited in an autosomal recessive pattern."
    parrot = "Yes, methylmalonic acidemia with homocystinuria is inherited in an autosomal recessive pattern."
    assert check(dialog("Is methylmalonic acidemia inherited?", answer, parrot,
                        "Both parents carry one altered copy of the gene, usually without signs.")) == "repetitive"


def test_a_dialog_that_only_restates_its_seed_is_off_topic():
    seed = "What should I know about storage and disposal of Simeprevir ?"
    talk = dialog(seed, "Recycling means reusing materials such as paper and glass instead of throwing them away.")
    assert checker()(talk, seed=seed) == "off_topic"
