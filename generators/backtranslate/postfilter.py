"""Checks on the instruction the backward model wrote, before a pair is kept.

A backward model trained on few seed pairs (or not trained at all) often answers with a label
("Instruction: ..."), quotes, talk about the text it was shown ("This text is an excellent answer
to the question: ..."), a copy or a restatement of that text. Labels and quotes are stripped
(`clean_instruction`); meta-text that quotes a real question gives that question back (salvaged);
the rest is rejected under one reason each, by one small filter class per check
(INSTRUCTION_FILTERS, in this order; the first reason wins):

  empty_instruction      nothing left after cleaning
  instruction_truncated  generation hit max_tokens, so the request is cut off
  instruction_too_long   longer than max_chars
  meta_instruction       talks about the text, the answer, the user or the task ("This text ...",
                         "Here is a question ...", "The user asks ...", "What is the user's
                         question?") instead of asking, and quotes no question that could be salvaged
  copies_segment         a long word run copied from the segment's body, or most of the
                         instruction's word 4-grams found in it (the header, or a short heading
                         line that opens the segment, is not counted: a title turned into a request
                         is a fair instruction)
  restates_answer        asks nothing and most of its content words come from the segment: a
                         paraphrase of the answer ("I have X, a rare disorder that ..."), not a request
  not_a_request          a finished statement that asks nothing: one paragraph ending in a full
                         stop that opens with a subject ("I like eggs.", "It is a disease."); can be
                         turned off. Titles, problem statements and tasks with their input pass:
                         real users write "SQL query to select the latest row per group".
  options_missing        "Which of the following ...?" with no options (`shape.py`)
  verbless_question      "How is Fanconi anemia ?": a name from the segment and no verb
  statement_as_question  a sentence of the segment with a question mark put after it
  garbled_term           with --meaning-checks: a rare word (by the embedder's WordPiece vocabulary)
                         the segment lacks but has one beginning like it, the page's name
                         garbled (`terms.py`)
  assistant_chatter      by meaning (the `baleen[embed]` extra): a classifier on the instruction's
                         embedding says it is no request a user would send (assistant chatter, a
                         self-description, a question about "this text", a statement from the answer)
  unrelated_instruction  by meaning: the cosine of the instruction's and the segment's embeddings
                         is under --min-relevance, so it asks about something else

The two checks by meaning (`relevance.py`), and garbled_term with them (it reads the embedder's
vocabulary), are off unless asked for: --meaning-checks on (refused without the extra, naming it)
or auto (on where the extra is installed, skipped elsewhere). The two by meaning embed with
--embed-model through the run's cache (the stage passes its `Embeddings` as the value
`embeddings`); the classifier belongs to the embedder it was trained with, so with another model
only unrelated_instruction runs, at the --min-relevance the user must give.

The flags (--max-instruction-chars, --max-copied-words, --allow-non-requests, --meaning-checks,
--min-relevance) are declared on their classes. `judge_instruction` runs all of it (clean,
salvage, filter) in one place, for every caller. The parts live beside this module:
`cleaning.py` (labels, quotes), `asking.py` (does a text ask anything), `meta.py` (meta-text and
the question it quotes), `shape.py` (questions with no question in them), `terms.py` (garbled
names), `relevance.py` (the checks by meaning).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import click

from generators.core.embeddings import Embeddings, extra_installed, missing_extra
from generators.core.errors import UsageError
from generators.core.filtering import FilterBase, FilterChain, build_chain, family_reasons
from generators.core.text import content_words, coverage, words
from generators.backtranslate.asking import is_request, is_statement
from generators.backtranslate.cleaning import clean_instruction
from generators.backtranslate.meta import is_meta, salvage_question
from generators.backtranslate.relevance import default_embeddings, load_weights, relevance_model, trained_embedder
from generators.backtranslate.shape import (is_statement_as_question, is_verbless_question, lacks_options,
                                            longest_common_run)
from generators.backtranslate.terms import garbled_terms

__all__ = ["INSTRUCTION_FILTERS", "INSTRUCTION_REASONS", "AssistantChatter", "Candidate", "GarbledTerm",
           "InstructionVerdict", "UnrelatedInstruction", "clean_instruction",
           "copies_segment", "instruction_chain", "is_meta", "is_request", "is_statement", "judge_instruction",
           "longest_common_run", "restates_answer", "salvage_question", "split_heading"]


def _heading_line(first: str) -> bool:
    """A short opening line with no full stop: a title or the question the page answers."""
    first = first.strip()
    return bool(first) and len(first.split()) <= 25 and not first.endswith(".")


_OPENING_QUESTION = re.compile(r"^[^.!?\n]{3,250}\?\s")


def split_heading(segment_text: str, header: str) -> tuple[str, str]:
    """(heading, body): the heading is the first line when it is the header or reads as one, or
    an opening question (FAQ pages start with the question they answer); else empty."""
    text = segment_text.strip()
    first, newline, rest = text.partition("\n")
    if newline and ((header and first.strip().lstrip("#").strip() == header.strip()) or _heading_line(first)):
        return first, rest
    question = _OPENING_QUESTION.match(text)
    if question:
        return text[:question.end()], text[question.end():]
    return header, segment_text


def copies_segment(instruction: str, segment_text: str, header: str, *, run: int = 12, fraction: float = 0.6,
                   min_words: int = 12) -> bool:
    """A run of `run` of the body's words, or `fraction` of its 4-grams found in it (instructions of
    `min_words` or more); the heading's words are free."""
    heading, body_text = split_heading(segment_text, header)
    mine, body, free = words(instruction), words(body_text), frozenset(words(heading))
    if longest_common_run(mine, body, free) >= run:
        return True
    if len(mine) < min_words:
        return False
    grams = [tuple(mine[i:i + 4]) for i in range(len(mine) - 3)]
    theirs = {tuple(body[i:i + 4]) for i in range(len(body) - 3)}
    copied = sum(g in theirs and not free.issuperset(g) for g in grams)
    return copied >= fraction * len(grams)


def restates_answer(instruction: str, segment_text: str, header: str, *, share: float = 0.6,
                    min_words: int = 5) -> bool:
    """Asks nothing and takes `share` or more of its content words (at least `min_words`, the
    heading's not counted: a title is a fair instruction) from the segment's body."""
    heading, body = split_heading(segment_text, header)
    mine = set(content_words(instruction)) - set(content_words(heading))
    if len(mine) < min_words or is_request(instruction):
        return False
    return coverage(list(mine), set(content_words(body))) >= share


@dataclass(frozen=True)
class Candidate:
    """One generated instruction with what it is checked against: the subject of the filters."""

    instruction: str
    segment_text: str
    header: str = ""
    finish: str = "stop"


# -- the filters, in the order they run ---------------------------------------------------------

class EmptyInstruction(FilterBase):
    name = "empty_instruction"
    reasons = {"empty_instruction": "nothing left of the instruction after cleaning"}

    def check(self, c: Candidate) -> str | None:
        return None if c.instruction.strip() else "empty_instruction"


class TruncatedInstruction(FilterBase):
    name = "instruction_truncated"
    reasons = {"instruction_truncated": "the instruction ran out of --max-tokens"}

    def check(self, c: Candidate) -> str | None:
        return "instruction_truncated" if c.finish == "length" else None


@dataclass
class TooLongInstruction(FilterBase):
    name = "instruction_too_long"
    reasons = {"instruction_too_long": "the instruction is longer than --max-instruction-chars"}
    options = (click.option("--max-instruction-chars", type=click.IntRange(1), default=1000, show_default=True,
                            help="Reject longer instructions (instruction_too_long)."),)
    max_chars: int = 1000

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise UsageError(f"--max-instruction-chars {self.max_chars}: must be 1 or more")

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "TooLongInstruction":
        return cls(values["max_instruction_chars"])

    def check(self, c: Candidate) -> str | None:
        return "instruction_too_long" if len(c.instruction) > self.max_chars else None


class MetaInstruction(FilterBase):
    name = "meta_instruction"
    reasons = {"meta_instruction": "the instruction talks about the text, answer or user (\"This text is ...\") and "
                                   "quotes no question"}

    def check(self, c: Candidate) -> str | None:
        return "meta_instruction" if is_meta(c.instruction) else None


@dataclass
class CopiesSegment(FilterBase):
    name = "copies_segment"
    reasons = {"copies_segment": "the instruction copies a long run of the segment's words"}
    options = (click.option("--max-copied-words", type=click.IntRange(1), default=11, show_default=True,
                            help="Reject instructions copying more consecutive words of the text they answer "
                                 "(copies_segment)."),)
    run: int = 12            # this many consecutive words copied from the body: a copy
    fraction: float = 0.6    # ... or this share of the instruction's word 4-grams
    min_words: int = 12      # the share test only applies to instructions this long

    def __post_init__(self) -> None:
        if self.run < 2:
            raise UsageError(f"--max-copied-words {self.run - 1}: must be 1 or more")
        if not 0.0 < self.fraction <= 1.0:
            raise UsageError(f"copy fraction {self.fraction}: must be in (0, 1]")

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "CopiesSegment":
        return cls(run=values["max_copied_words"] + 1)

    def check(self, c: Candidate) -> str | None:
        copied = copies_segment(c.instruction, c.segment_text, c.header, run=self.run, fraction=self.fraction,
                                min_words=self.min_words)
        return "copies_segment" if copied else None


@dataclass
class RestatesAnswer(FilterBase):
    name = "restates_answer"
    reasons = {"restates_answer": "the instruction asks nothing and takes most of its content words from the segment"}
    share: float = 0.6       # a non-request with this share of its content words in the segment
    min_words: int = 5       # ... and at least this many content words restates it

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise UsageError(f"restate share {self.share}: must be in (0, 1]")

    def check(self, c: Candidate) -> str | None:
        restates = restates_answer(c.instruction, c.segment_text, c.header, share=self.share,
                                   min_words=self.min_words)
        return "restates_answer" if restates else None


class NotARequest(FilterBase):
    name = "not_a_request"
    reasons = {"not_a_request": "the instruction is a finished statement that asks nothing (\"I like eggs.\")"}
    options = (click.option("--allow-non-requests", is_flag=True, help="Turn off the not_a_request check."),)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "NotARequest | None":
        return None if values["allow_non_requests"] else cls()

    def check(self, c: Candidate) -> str | None:
        return "not_a_request" if is_statement(c.instruction) else None


class OptionsMissing(FilterBase):
    name = "options_missing"
    reasons = {"options_missing": "the instruction asks \"which of the following\" (these, those) and lists no "
                                  "options"}

    def check(self, c: Candidate) -> str | None:
        return "options_missing" if lacks_options(c.instruction) else None


class VerblessQuestion(FilterBase):
    name = "verbless_question"
    reasons = {"verbless_question": "the instruction is \"How is X ?\" with X a name from the segment and no verb "
                                    "saying what is asked (\"How is Fanconi anemia ?\")"}

    def check(self, c: Candidate) -> str | None:
        return "verbless_question" if is_verbless_question(c.instruction, c.segment_text) else None


class StatementAsQuestion(FilterBase):
    name = "statement_as_question"
    reasons = {"statement_as_question": "the instruction is a sentence of the segment with a question mark put "
                                        "after it (\"Diverticular disease affects the colon?\")"}

    def check(self, c: Candidate) -> str | None:
        return "statement_as_question" if is_statement_as_question(c.instruction, c.segment_text) else None


def _meaning_checks_on(values: Mapping[str, Any]) -> bool:
    """--meaning-checks auto: on where `baleen[embed]` is installed; on: refused without it."""
    mode = values["meaning_checks"]
    if mode == "on" and not extra_installed():
        raise missing_extra("--meaning-checks on")
    return mode == "on" or (mode == "auto" and extra_installed())


def _embeddings(values: Mapping[str, Any]) -> Embeddings:
    """The run's embeddings (model and cache), which the stage passes as `embeddings`; without a
    run, the trained embedder with no cache."""
    return values.get("embeddings") or default_embeddings()


def _trained_model_used(values: Mapping[str, Any]) -> bool:
    """Whether --embed-model is the embedder the classifier and the calibrated threshold belong
    to. Another one runs only unrelated_instruction, at the --min-relevance the user gives: its
    cosines are on another scale, and the classifier reads vectors of another space. Without
    --min-relevance, one line (exit 2)."""
    model, trained = _embeddings(values).model, trained_embedder()
    if model == trained:
        return True
    if values.get("min_relevance") is None:
        raise UsageError(f"--embed-model {model}: the checks by meaning were trained and calibrated on {trained}; "
                         f"use --embed-model {trained}, or give --min-relevance COSINE to check relevance alone "
                         f"with {model} (assistant_chatter is then off)")
    return False


@dataclass
class UnrelatedInstruction(FilterBase):
    name = "unrelated_instruction"
    reasons = {"unrelated_instruction": "the instruction is not about its segment: the cosine of their embeddings "
                                        "is under --min-relevance (baleen[embed])"}
    options = (click.option("--meaning-checks", type=click.Choice(["off", "auto", "on"]), default="off",
                            show_default=True,
                            help="The post-filters by meaning (unrelated_instruction, assistant_chatter): on (needs "
                                 "baleen[embed]), auto (on where it is installed) or off. They use --embed-model; "
                                 "with another model than minilm, only unrelated_instruction runs, and "
                                 "--min-relevance is required."),
               click.option("--min-relevance", type=click.FloatRange(-1.0, 1.0), default=None,
                            help="Reject instructions whose embedding's cosine with their segment's is lower "
                                 "(unrelated_instruction; default: the threshold calibrated for minilm)."))
    min_relevance: float | None = None   # None: the calibrated threshold in the weights
    on: bool = True
    embeddings: Embeddings | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "UnrelatedInstruction":
        on = _meaning_checks_on(values)
        if on:
            _trained_model_used(values)
        return cls(values["min_relevance"], on, _embeddings(values) if on else None)

    def settings(self) -> dict[str, Any]:
        if not self.on:
            return {"on": False}
        threshold = load_weights()["min_relevance"] if self.min_relevance is None else self.min_relevance
        return {"on": True, "model": _model_name(self.embeddings), "min_relevance": threshold}

    def check(self, c: Candidate) -> str | None:
        if not self.on:
            return None
        model = relevance_model(self.embeddings)
        threshold = model.min_relevance if self.min_relevance is None else self.min_relevance
        return "unrelated_instruction" if model.relevance(c.instruction, c.segment_text) < threshold else None


def _model_name(embeddings: Embeddings | None) -> str:
    return (embeddings or default_embeddings()).model


@dataclass
class GarbledTerm(FilterBase):
    name = "garbled_term"
    reasons = {"garbled_term": "the instruction names a rare word the segment does not have but that begins like "
                               "one of its words: the page's name garbled or made up (\"myelofibrosinne\"; with "
                               "--meaning-checks, baleen[embed])"}
    on: bool = True

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "GarbledTerm":
        return cls(_meaning_checks_on(values))

    def check(self, c: Candidate) -> str | None:
        if not self.on:
            return None
        return "garbled_term" if garbled_terms(c.instruction, c.segment_text, c.header) else None


@dataclass
class AssistantChatter(FilterBase):
    name = "assistant_chatter"
    reasons = {"assistant_chatter": "no request a user would send: assistant chatter, a self-description, a "
                                    "question about the text itself, a statement from the answer (a classifier on "
                                    "embeddings; baleen[embed])"}
    on: bool = True
    embeddings: Embeddings | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "AssistantChatter":
        on = _meaning_checks_on(values) and _trained_model_used(values)
        return cls(on, _embeddings(values) if on else None)

    def settings(self) -> dict[str, Any]:
        if not self.on:
            return {"on": False}
        return {"on": True, "model": _model_name(self.embeddings), "threshold": load_weights()["chatter_threshold"]}

    def check(self, c: Candidate) -> str | None:
        if not self.on:
            return None
        model = relevance_model(self.embeddings)
        return "assistant_chatter" if model.chatter(c.instruction) >= model.chatter_threshold else None


INSTRUCTION_FILTERS: tuple[type[FilterBase], ...] = (
    EmptyInstruction, TruncatedInstruction, TooLongInstruction, MetaInstruction, CopiesSegment, RestatesAnswer,
    NotARequest, OptionsMissing, VerblessQuestion, StatementAsQuestion, GarbledTerm, AssistantChatter,
    UnrelatedInstruction)
INSTRUCTION_REASONS = family_reasons(INSTRUCTION_FILTERS)


def instruction_chain(values: Mapping[str, Any] | None = None) -> FilterChain[Candidate]:
    """The instruction filters as the flag values ask for them (defaults where none given)."""
    return build_chain(INSTRUCTION_FILTERS, values)


@dataclass(frozen=True)
class InstructionVerdict:
    """What became of one raw backward output: the instruction to keep (cleaned, or the question
    salvaged from meta-text), the reason it is rejected (None: kept), and whether it was salvaged."""

    instruction: str
    reason: str | None
    salvaged: bool = False


def judge_instruction(raw_text: str, segment_text: str, header: str = "", finish: str = "stop",
                      filters: FilterChain[Candidate] | None = None, *, salvage: bool = True) -> InstructionVerdict:
    """Clean, salvage and filter one raw backward output in the one place every caller shares
    (`gen backtranslate`, its re-judgement of stored lines, and `gen eval backward` must judge
    alike). A salvaged question goes through every check again; if it fails one, that reason is
    the verdict."""
    flt = filters if filters is not None else instruction_chain()
    instruction = clean_instruction(raw_text)
    reason = flt.check(Candidate(instruction, segment_text, header, finish))
    if reason != "meta_instruction" or not salvage:
        return InstructionVerdict(instruction, reason, False)
    question = salvage_question(instruction)
    if question is None:
        return InstructionVerdict(instruction, reason, False)
    again = flt.check(Candidate(question, segment_text, header, finish))
    return InstructionVerdict(question, again, again is None)
