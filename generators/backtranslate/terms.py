"""Does the instruction name its subject with a word the segment does not have, one that begins
like a word of the segment but is not it? A trained backward model that half-remembers the page's
rare name writes a garbled or made-up one ("oculocycloidasis" on a page about ocular cicatricial
pemphigoid, "myelofibrosinne" beside "myeloproliferative"); the question then reads like a real
one and sits close to the page by meaning, so only the word itself gives it away.

A word is rare when the WordPiece vocabulary of all-MiniLM-L6-v2 (the `baleen[embed]` extra's
packaged folder) splits it into MIN_PIECES or more pieces: common words are one or two pieces,
names of rare diseases and made-up words many. A rare word of the instruction is garbled when

  - neither the segment nor its header has it (the case, a final "'s", another ending of the same
    stem, such as "diagnose" for "diagnostic", and near spellings within SIMILAR, such as
    "Displasia" for "dysplasia", do not count as different), nor does it spell,
    with its neighbours, an acronym the segment uses ("amyotrophic lateral sclerosis" for ALS),
  - and a word of the segment begins with the same PREFIX letters ("myelofibrosinne",
    "myeloproliferative"): the page's word misremembered. A rare word that begins like nothing on
    the page is left alone: a real user may name a condition a page answers without naming it.
"""
from __future__ import annotations

import os
import re
from difflib import SequenceMatcher
from functools import lru_cache

__all__ = ["garbled_terms", "wordpiece_count"]

MIN_PIECES = 3      # pieces from which a word counts as rare
PREFIX = 4          # letters a garbled word shares with the segment's word it comes from
SIMILAR = 0.8       # difflib ratio from which two spellings are one word
MIN_LETTERS = 5     # shorter words are never judged
ENDING = 2          # a word sharing all but this many last letters (and STEM or more) is the same word
STEM = 6
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_ACRONYM = re.compile(r"\b[A-Z][A-Za-z0-9]*[A-Z0-9]\b")
# words an acronym's expansion may hold without a letter of their own ("erythrokeratodermia
# variabilis et progressiva" for EKVP)
_JOINERS = frozenset("of et and with the de in to for a".split())


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    from generators.core.embeddings import packaged_model_dir

    return frozenset((packaged_model_dir() / "vocab.txt").read_text("utf-8").split("\n"))


def wordpiece_count(word: str) -> int:
    """How many pieces BERT's uncased WordPiece (greedy, longest match first) makes of one
    lower-case word of letters; a word it cannot cut counts as long as it is."""
    vocab, start, count = _vocabulary(), 0, 0
    while start < len(word):
        end = len(word)
        while end > start and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab:
            end -= 1
        if end == start:
            return len(word)
        start, count = end, count + 1
    return count


def _norm(word: str) -> str:
    word = word.lower()
    return word[:-2] if word.endswith("'s") else word


def _acronym_words(mine: list[str], text: str) -> set[int]:
    """Positions of the instruction's words that spell, in order, an acronym of the text."""
    spelled: set[int] = set()
    lower = [w.lower() for w in mine]
    for acronym in {a for a in _ACRONYM.findall(text) if 2 <= len(a) <= 8}:
        letters = [c.lower() for c in acronym if c.isalpha()]
        if len(letters) < 2:
            continue
        for first in range(len(lower)):
            used: list[int] = []
            at = first
            while at < len(lower) and len(used) < len(letters):
                if lower[at][0] == letters[len(used)]:
                    used.append(at)
                elif not (used and lower[at] in _JOINERS):
                    break
                at += 1
            if len(used) == len(letters):
                spelled.update(used)
    return spelled


def garbled_terms(instruction: str, segment_text: str, header: str = "") -> list[str]:
    """The instruction's rare words that the segment lacks but has a word beginning like (module
    docstring); empty: none."""
    text = f"{header}\n{segment_text}"
    theirs = {_norm(w) for w in _WORD.findall(text)}
    long_theirs = [w for w in theirs if len(w) >= MIN_LETTERS]
    mine = _WORD.findall(instruction)
    spelled = _acronym_words(mine, text)
    found = []
    for at, word in enumerate(mine):
        low = _norm(word)
        if at in spelled or len(low) < MIN_LETTERS or low in theirs or wordpiece_count(low) < MIN_PIECES:
            continue
        if not any(len(os.path.commonprefix([low, w])) >= PREFIX for w in long_theirs):
            continue
        if any(len(os.path.commonprefix([low, w])) >= max(STEM, len(low) - ENDING) for w in long_theirs):
            continue  # another ending of a word of the page
        if any(abs(len(w) - len(low)) <= 4 and SequenceMatcher(None, low, w).ratio() >= SIMILAR for w in long_theirs):
            continue
        found.append(word)
    return found
