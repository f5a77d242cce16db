"""Questions with the shape of a question but nothing a user could ask: three mistakes a backward
model makes once it has learned to write like its seed questions (a LoRA on MedQuAD pairs writes
"What is (are) X ?", "How is X diagnosed ?"), which read fluently and so pass the other checks.

  options_missing        "Which of the following describes X?" with no options after it
  verbless_question      "How is Fanconi anemia ?": "how is/are" and then only a name the
                         segment has, no verb ("diagnosed", "inherited") to say what is asked
  statement_as_question  "Diverticular disease affects the colon?": a sentence of the segment
                         with a question mark, opening with no question or request word

Each looks only at the instruction and its segment; none rejected any of 105,000 real requests
(AlpacaEval, MedQuAD questions with and without their pages, Stack Overflow titles) but one Stack
Overflow title whose options are in its body ("Which of these two sql joins will perform better?").
`longest_common_run` lives here too: `copies_segment` (postfilter.py) counts copied runs with it.
"""
from __future__ import annotations

import re

from generators.core.text import words
from generators.backtranslate.asking import REQUEST_STARTS

__all__ = ["is_statement_as_question", "is_verbless_question", "lacks_options", "longest_common_run"]

_WHICH = re.compile(r"\bwhich (?:one )?of (?:the following|these|those)\b(.*)", re.I | re.S)
# what a list of options looks like after "which of the following": a new line, a colon, "or",
# or a marker such as "a)", "(B)", "1."
_OPTIONS = re.compile(r"\n|:|\bor\b|\(?\b[a-dA-D1-4]\s*[).]")
_HOW_IS = re.compile(r"^\s*how (?:is|are|was|were) ([^?]+?)\s*\?\s*$", re.I)
_PARTICIPLE = re.compile(r"(?:ed|en|wn|ing)$")
MIN_STATEMENT_WORDS = 4


def longest_common_run(a: list[str], b: list[str], free: frozenset[str] | set[str] = frozenset()) -> int:
    """Length of the longest run of consecutive words shared by a and b (a is short). Words in
    `free` (the heading's) continue a run without adding to its length: asking about the page's
    own long title ("symptoms of X-linked Charcot-Marie-Tooth disease type 3") is no copy."""
    if not a or not b:
        return 0
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(b):
        positions.setdefault(word, []).append(j)
    best = 0
    previous: dict[int, int] = {}
    for word in a:
        current: dict[int, int] = {}
        step = 0 if word in free else 1
        for j in positions.get(word, ()):
            length = previous.get(j - 1, 0) + step
            current[j] = length
            if length > best:
                best = length
        previous = current
    return best


def lacks_options(instruction: str) -> bool:
    """Asks "which of the following / these / those" and lists nothing to choose from."""
    found = _WHICH.search(instruction)
    return bool(found) and not _OPTIONS.search(found.group(1))


def is_verbless_question(instruction: str, segment_text: str) -> bool:
    """"How is/are X ?" where X is a run of the segment's words that ends in no participle: the
    page's name for its subject with the verb left out ("How is Fanconi anemia ?"), where a
    request says what it wants to know ("How is Fanconi anemia inherited?")."""
    found = _HOW_IS.match(instruction)
    if not found:
        return False
    rest = words(found.group(1).replace("&", " and "))
    return bool(rest) and not _PARTICIPLE.search(rest[-1]) and \
        longest_common_run(rest, words(segment_text)) == len(rest)


def is_statement_as_question(instruction: str, segment_text: str) -> bool:
    """One line ending in "?" that opens with no question or request word, and whose words (all
    but one at most, and at least MIN_STATEMENT_WORDS) run on in the segment: a sentence taken
    from the page with a question mark put after it."""
    text = instruction.strip()
    if not text.endswith("?") or "\n" in text:
        return False
    mine = words(text)
    if len(mine) < MIN_STATEMENT_WORDS or mine[0] in REQUEST_STARTS:
        return False
    return longest_common_run(mine, words(segment_text)) >= max(MIN_STATEMENT_WORDS, len(mine) - 1)
