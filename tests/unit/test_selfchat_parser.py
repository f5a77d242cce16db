"""The Baize transcript parser on hand-written transcripts, clean and odd."""
from __future__ import annotations

import pytest

from generators.selfchat.parser import MARKER_RE, ParsedDialog, parse_transcript


def pairs(parsed: ParsedDialog) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in parsed.messages]


def test_clean_baize_transcript_keeps_every_exchange_including_the_last():
    text = ("[Human] How do I boil an egg?\n"
            "[AI] Put it in boiling water for about nine minutes.\n"
            "[Human] And a soft one?\n"
            "[AI] Six minutes, then cool it in cold water.\n")
    parsed = parse_transcript(text)
    assert parsed.reject is None
    assert parsed.notes == []
    assert pairs(parsed) == [
        ("user", "How do I boil an egg?"),
        ("assistant", "Put it in boiling water for about nine minutes."),
        ("user", "And a soft one?"),
        ("assistant", "Six minutes, then cool it in cold water."),
    ]


def test_no_final_newline():
    parsed = parse_transcript("[Human] hi there\n[AI] hello, how can I help?")
    assert pairs(parsed)[-1] == ("assistant", "hello, how can I help?")
    assert parsed.reject is None


def test_multiline_turns_keep_their_inner_lines():
    text = "[Human] Show me a loop.\n[AI] Here:\n\n    for i in range(3):\n        print(i)\n\nDone.\n"
    parsed = parse_transcript(text)
    assert parsed.messages[1]["content"] == "Here:\n\n    for i in range(3):\n        print(i)\n\nDone."


@pytest.mark.parametrize("user, ai", [
    ("[Human]", "[AI]"),
    ("[|Human|]", "[|AI|]"),
    ("Human:", "AI:"),
    ("[User]", "[Assistant]"),
    ("User:", "Assistant:"),
    ("[human]", "[ai]"),
    ("HUMAN:", "ASSISTANT:"),
    ("**[Human]**", "**[AI]**"),
    ("**Human:**", "**AI:**"),
    ("**User**:", "**Assistant**:"),
    ("[ Human ]", "[ | AI | ]"),
    ("Human :", "AI :"),
    ("[Human]:", "[AI]:"),
    ("### Human:", "### Assistant:"),
])
def test_marker_styles(user, ai):
    parsed = parse_transcript(f"{user} What is rust?\n{ai} A systems programming language.\n")
    assert pairs(parsed) == [("user", "What is rust?"), ("assistant", "A systems programming language.")]


def test_markers_with_leading_whitespace_and_extra_spaces():
    parsed = parse_transcript("   [Human]    spaced out?   \n\t[AI]\t  yes, quite spaced.  \n")
    assert pairs(parsed) == [("user", "spaced out?"), ("assistant", "yes, quite spaced.")]


def test_mixed_marker_styles_in_one_transcript():
    text = "[Human] one?\nAI: first answer\n[|Human|] two?\n**[Assistant]** second answer\n"
    parsed = parse_transcript(text)
    assert [m["role"] for m in parsed.messages] == ["user", "assistant", "user", "assistant"]
    assert parsed.messages[3]["content"] == "second answer"


def test_crlf_and_lone_cr_line_ends():
    parsed = parse_transcript("[Human] first\r\nline two\r\n[AI] answer here\r\n")
    assert pairs(parsed) == [("user", "first\nline two"), ("assistant", "answer here")]
    assert "\r" not in parsed.messages[0]["content"]
    parsed = parse_transcript("[Human] q\r[AI] a\r")
    assert pairs(parsed) == [("user", "q"), ("assistant", "a")]


def test_preamble_is_dropped_and_noted():
    text = "Sure! Here is the conversation you asked for:\n\n[Human] Why is the sky blue?\n[AI] Rayleigh scattering.\n"
    parsed = parse_transcript(text)
    assert parsed.messages[0] == {"role": "user", "content": "Why is the sky blue?"}
    assert "dropped_preamble" in parsed.notes


def test_inline_bracket_marker_after_previous_turn():
    text = "[|Human|] What is 2+2? [|AI|] It is 4. [|Human|] And 3+3? [|AI|] It is 6."
    parsed = parse_transcript(text)
    assert pairs(parsed) == [("user", "What is 2+2?"), ("assistant", "It is 4."),
                             ("user", "And 3+3?"), ("assistant", "It is 6.")]


def test_inline_marker_without_space():
    parsed = parse_transcript("[Human] hi?\n[AI] end of answer.[Human] next question\n[AI] next answer")
    assert pairs(parsed)[1:] == [("assistant", "end of answer."), ("user", "next question"),
                                 ("assistant", "next answer")]


def test_colon_marker_mid_line_is_not_a_turn():
    parsed = parse_transcript("[Human] Explain roles.\n[AI] In chat logs a line like Human: hello is the user.\n")
    assert len(parsed.messages) == 2
    assert "Human: hello" in parsed.messages[1]["content"]


def test_words_that_start_like_markers_are_not_markers():
    text = "[Human] q\n[AI] Usernames:\nUsers: many\nAIDS: a disease\nAssistant professor: a title\n"
    parsed = parse_transcript(text)
    assert len(parsed.messages) == 2
    assert parsed.messages[1]["content"].startswith("Usernames:")
    assert "Assistant professor: a title" in parsed.messages[1]["content"]


def test_consecutive_same_role_turns_are_merged():
    text = "[Human] part one\n[Human] part two\n[AI] answer a\n[AI] answer b\n"
    parsed = parse_transcript(text)
    assert pairs(parsed) == [("user", "part one\n\npart two"), ("assistant", "answer a\n\nanswer b")]
    assert "merged_turns" in parsed.notes


def test_empty_turns_are_dropped():
    parsed = parse_transcript("[Human]\n[Human] real question\n[AI]   \n[AI] real answer\n")
    assert pairs(parsed) == [("user", "real question"), ("assistant", "real answer")]
    assert "dropped_empty_turn" in parsed.notes
    assert "merged_turns" not in parsed.notes


def test_leading_assistant_turn_is_dropped():
    parsed = parse_transcript("[AI] Hello! How can I help?\n[Human] Tell me a fact.\n[AI] Honey never spoils.\n")
    assert pairs(parsed) == [("user", "Tell me a fact."), ("assistant", "Honey never spoils.")]
    assert "dropped_leading_assistant" in parsed.notes


def test_trailing_user_turn_without_answer_is_dropped():
    parsed = parse_transcript("[Human] q1\n[AI] a1\n[Human] q2 with no answer\n")
    assert pairs(parsed) == [("user", "q1"), ("assistant", "a1")]
    assert "dropped_unanswered_turn" in parsed.notes


def test_malformed_middle_does_not_cut_the_rest():
    # Baize stopped at the first turn it could not read; we keep going.
    text = "[Human] q1\n[AI] a1\n[AI] more of a1\n[Human]\n[Human] q2\n[AI] a2\n"
    parsed = parse_transcript(text)
    assert pairs(parsed) == [("user", "q1"), ("assistant", "a1\n\nmore of a1"), ("user", "q2"), ("assistant", "a2")]


def test_truncated_drops_the_cut_answer_and_its_question():
    text = "[Human] q1\n[AI] a1 complete.\n[Human] q2\n[AI] a2 is cut in the mid"
    parsed = parse_transcript(text, truncated=True)
    assert pairs(parsed) == [("user", "q1"), ("assistant", "a1 complete.")]
    assert "dropped_truncated_turn" in parsed.notes


def test_not_truncated_keeps_the_last_answer():
    text = "[Human] q1\n[AI] a1 complete.\n[Human] q2\n[AI] a2 complete too."
    assert len(parse_transcript(text).messages) == 4


def test_truncated_inside_a_user_turn_keeps_the_answer_before_it():
    text = "[Human] q1\n[AI] a1 complete.\n[Human] q2 is cu"
    parsed = parse_transcript(text, truncated=True)
    assert pairs(parsed) == [("user", "q1"), ("assistant", "a1 complete.")]
    assert "dropped_truncated_turn" not in parsed.notes
    assert "dropped_unanswered_turn" in parsed.notes


def test_truncated_right_after_a_marker_keeps_everything_before():
    parsed = parse_transcript("[Human] q1\n[AI] a1 complete.\n[Human]", truncated=True)
    assert pairs(parsed) == [("user", "q1"), ("assistant", "a1 complete.")]
    assert "dropped_truncated_turn" not in parsed.notes


def test_truncated_merged_answer_is_dropped_whole():
    text = "[Human] q0\n[AI] a0\n[Human] q1\n[AI] part one.\n[AI] part two is cu"
    parsed = parse_transcript(text, truncated=True)
    assert pairs(parsed) == [("user", "q0"), ("assistant", "a0")]


def test_truncated_single_exchange_is_one_sided():
    parsed = parse_transcript("[Human] q\n[AI] a cut answ", truncated=True)
    assert parsed.reject == "one_sided"
    assert parsed.messages == []


def test_end_tokens_are_stripped_and_what_follows_dropped():
    parsed = parse_transcript("[Human] q\n[AI] the answer. [END]")
    assert pairs(parsed) == [("user", "q"), ("assistant", "the answer.")]
    assert "stripped_end_token" in parsed.notes
    parsed = parse_transcript("[Human] q\n[AI] the answer.<|endoftext|>\n[Human] garbage\n[AI] more garbage")
    assert pairs(parsed) == [("user", "q"), ("assistant", "the answer.")]
    assert "dropped_after_end_token" in parsed.notes


def test_end_token_means_the_last_answer_is_not_cut():
    parsed = parse_transcript("[Human] q\n[AI] a whole answer.\n<|im_end|>", truncated=True)
    assert pairs(parsed) == [("user", "q"), ("assistant", "a whole answer.")]
    assert "dropped_after_end_token" not in parsed.notes


def test_no_markers_is_rejected():
    parsed = parse_transcript("I'm sorry, I can't write that conversation.")
    assert parsed.reject == "no_markers"
    assert parsed.messages == []


@pytest.mark.parametrize("text", ["", "   \n\n"])
def test_empty_text_is_no_markers(text):
    assert parse_transcript(text).reject == "no_markers"


def test_only_human_lines_is_one_sided():
    parsed = parse_transcript("[Human] q1\n[Human] q2\nHuman: q3\n")
    assert parsed.reject == "one_sided"
    assert parsed.messages == []


def test_only_ai_lines_is_one_sided():
    parsed = parse_transcript("[AI] a1\n[AI] a2\n")
    assert parsed.reject == "one_sided"
    assert "dropped_leading_assistant" in parsed.notes


def test_markers_with_no_content_is_one_sided():
    assert parse_transcript("[Human]\n[AI]\n").reject == "one_sided"


def test_result_always_alternates_user_first_assistant_last():
    text = ("preamble\n[AI] hi\n[AI] hello\n[Human] a\n[User] b\n[|AI|] c\n[Human] d\n"
            "Assistant: e\n[Human] f\n")
    parsed = parse_transcript(text)
    roles = [m["role"] for m in parsed.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert parsed.messages[0]["content"] == "a\n\nb"
    assert {"dropped_preamble", "dropped_leading_assistant", "merged_turns",
            "dropped_unanswered_turn"} <= set(parsed.notes)


def test_notes_are_not_repeated():
    parsed = parse_transcript("[Human] a\n[Human] b\n[AI] c\n[AI] d\n[Human] e\n[Human] f\n[AI] g\n")
    assert parsed.notes.count("merged_turns") == 1


def test_marker_regex_is_exported_for_the_filters():
    assert MARKER_RE.search("text [|AI|] more")
    assert MARKER_RE.search("line\nUser: hi")
    assert not MARKER_RE.search("the user: a person")
