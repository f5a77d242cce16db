"""The strict "Score: N" parser on adversarial rater outputs, and the expected score."""
from __future__ import annotations

import math

import pytest

from curation.expected import expected_score
from curation.score_parse import parse_score, reasoning_of


@pytest.mark.parametrize("text,score", [
    ("Clear and complete.\nScore: 5", 5),
    ("Good answer.\nscore: 4", 4),                      # case does not matter
    ("SCORE: 3", 3),
    ("Reasoning here.\n**Score:** 4", 4),               # markdown bold label
    ("Reasoning.\n**Score: 2**", 2),
    ("## Score: 1", 1),
    ("Reasoning.\nScore: 5/5", 5),                      # "/5" accepted: same scale
    ("Reasoning.\nScore: 4 out of 5", 4),
    ("Reasoning.\nScore: [3]", 3),
    ("Reasoning.\nScore: 4.", 4),                       # a full stop is not a decimal
    ("Reasoning.\nScore: 4 (minor issues with focus)", 4),
    ("Score: 2\nActually, on reflection...\nScore: 4", 4),  # several: the last one wins
    ("Score: 4\n\nThe answer is clear and well organised.", 4),  # score line, then more text
    ("Reasoning.\nFinal score: 3", 3),
    ("Reasoning.\n  - Score: 2", 2),
])
def test_valid_scores(text, score):
    parsed = parse_score(text)
    assert parsed.ok and parsed.score == score, parsed


@pytest.mark.parametrize("text,problem", [
    ("Great.\nScore: 10", "out_of_range"),              # never read as 1
    ("Great.\nScore: 10502", "out_of_range"),
    ("Great.\nScore: 0", "out_of_range"),
    ("Great.\nScore: 6", "out_of_range"),
    ("Great.\nScore: 05", "out_of_range"),
    ("Good.\nScore: 4.5", "not_integer"),
    ("Good.\nScore: 4,5", "not_integer"),
    ("Good.\nScore: 4-5", "range"),
    ("Good.\nScore: 4 or 5", "range"),
    ("Good.\nScore: 4/10", "bad_scale"),
    ("Good.\nScore: five", "not_a_number"),
    ("Good.\nScore: \uff15", "not_a_number"),           # fullwidth 5: off-format, resampled
    ("Good.\nScore: \u0665", "not_a_number"),           # Arabic-Indic 5
    ("I would give it a score: 4 because it is fine.", "no_score"),  # mid-sentence, no score line
    ("No rating at all.", "no_score"),
    ("", "no_score"),
    ("Score: 5\nOn second thought\nScore: 10", "out_of_range"),  # the last statement decides
])
def test_unparsed_scores(text, problem):
    parsed = parse_score(text)
    assert parsed.score is None and parsed.problem == problem, parsed


def test_reasoning_drops_the_score_line_only():
    text = "It answers the question.\nIt is well organised.\nScore: 4\nMinor nit."
    assert reasoning_of(text, parse_score(text)) == "It answers the question.\nIt is well organised.\nMinor nit."


def _entry(token, logprob, top):
    return {"token": token, "logprob": logprob, "top": top}


def test_expected_score_weights_the_digit_alternatives():
    p5, p4, p3 = 0.6, 0.3, 0.05
    logprobs = [_entry("Good", -0.1, {}), _entry(".\n", -0.1, {}), _entry("Score", -0.01, {}),
                _entry(":", -0.01, {}),
                _entry(" 5", math.log(p5), {" 5": math.log(p5), " 4": math.log(p4), "4": math.log(p3),
                                             " ten": -3.0, " 9": -4.0})]
    expected = (5 * p5 + 4 * (p4 + p3)) / (p5 + p4 + p3)  # " 4" and "4" add up; "9" and words ignored
    assert expected_score(logprobs, 5) == pytest.approx(expected, abs=1e-4)


def test_expected_score_without_logprobs_or_position():
    assert expected_score(None, 5) is None
    assert expected_score([_entry("Score", 0, {}), _entry(":", 0, {}), _entry(" 3", 0, {" 3": 0})], 5) is None


def test_expected_score_token_holding_colon_and_digit():
    logprobs = [_entry("Score", 0, {}), _entry(": 2", math.log(0.5), {": 2": math.log(0.5), ": 1": math.log(0.5)})]
    assert expected_score(logprobs, 2) == pytest.approx(1.5)


def test_expected_score_of_a_json_answer():
    """--constrained auto on an OpenAI-compatible server answers {"reason": ..., "score": N}: the
    digit after `"score":` carries the distribution, whether or not the brace shares its token."""
    p4, p5 = 0.7, 0.3
    tokens = ['{"', "reason", '":', ' "', "Clear", '",', ' "', "score", '":', " "]
    for last in ("4", "4}"):
        logprobs = [_entry(t, -0.01, {}) for t in tokens]
        logprobs += [_entry(last, math.log(p4), {last: math.log(p4), last.replace("4", "5"): math.log(p5)})]
        if last == "4":
            logprobs.append(_entry("}", -0.01, {}))
        text = "".join(e["token"] for e in logprobs)
        assert parse_score(text).score == 4
        assert expected_score(logprobs, 4) == pytest.approx(4 * p4 + 5 * p5, abs=1e-4)
