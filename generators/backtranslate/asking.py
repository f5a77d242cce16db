"""Does a text ask for something? Real users ask in many shapes: questions, imperatives, titles
("SQL query to select the latest row per group"), problem statements ("FULL JOIN doesn't use
indexes"), tasks followed by their input. Only a finished statement ("I like eggs.") asks nothing."""
from __future__ import annotations

import re

from generators.core.text import words


# Words a request usually opens with: question words, auxiliaries, polite forms, imperatives.
REQUEST_STARTS = frozenset("""
what whats what's how hows how's why when where which who whom whose is are am was were do does
did can could would will should shall may might must have has had isn't aren't don't doesn't
didn't can't couldn't wouldn't won't shouldn't
please kindly help let let's lets tell give write explain
describe list summarize summarise create make provide generate compose draft suggest recommend
compare contrast define translate find show outline discuss analyze analyse calculate compute
convert name identify classify design plan develop build implement rewrite edit correct fix
solve prepare teach share propose evaluate review assess estimate predict elaborate clarify
illustrate detail state mention enumerate rank sort organize organise format paraphrase
rephrase simplify expand shorten continue complete finish fill answer respond reply brainstorm
imagine pretend act play consider think choose select pick determine check verify prove derive
express convince persuade argue debate justify demonstrate walk guide instruct advise recount
narrate report note highlight point offer present produce draw sketch code program debug
optimize optimise refactor install configure set setup use apply add remove delete update
change modify improve fix craft devise invent come look search read study learn introduce
given assuming suppose using based according
""".split())
REQUEST_PHRASES = ("i need", "i want", "i would like", "i'd like", "i am looking", "i'm looking",
                   "i am trying", "i'm trying", "i have a question", "i wonder", "i was wondering",
                   "we need", "we want", "we would like", "we'd like", "my question")

# A sentence opening with one of these and no request in it states something ("I like eggs.").
SUBJECTS = frozenset("""
i we it he she they this that these those there the a an my our his her their its one
""".split())
# Asking for something in the middle of a sentence ("..., so let's list some of them").
_REQUEST_INSIDE = re.compile(
    r"\b(?:please|kindly|let's|let us|can you|could you|would you|will you|help me|i need|i want|"
    r"i'd like|i would like|i'm looking for|i am looking for|i wonder|we need)\b"
    # a problem put forward is a request for help: "I can't make field changes after syncdb."
    r"|\b(?:can't|cannot|unable|not working|doesn't work|does not work|fails?|failing|error|problem|"
    r"issue|trouble|stuck|confused)\b", re.I)
# "You will simulate an SEO expert", "You should write ...": a task given to the assistant.
_YOU_TASK = re.compile(r"^(?:you|your task|your job|your goal)\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.?!\uff1f])\s+|\n+")


def sentences(text: str) -> list[str]:
    """Sentences and lines, stripped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def asks(sentence: str) -> bool:
    """One sentence asks or tells: a question mark, a request word first (after list marks or a
    short lead such as "In 100 words,"), a task for "you", or a request phrase inside."""
    if "?" in sentence or "\uff1f" in sentence:
        return True
    text = re.sub(r"^[\s\-*\d.)]+", "", sentence).lower()
    tokens = words(text)
    if not tokens:
        return False
    if tokens[0] in REQUEST_STARTS or " ".join(tokens[:5]).startswith(REQUEST_PHRASES):
        return True
    if _YOU_TASK.match(text) or _REQUEST_INSIDE.search(text):
        return True
    lead, comma, rest = text[:80].partition(",")
    after = words(rest)
    return bool(comma and after and after[0] in REQUEST_STARTS and len(words(lead)) <= 8)


def is_request(instruction: str) -> bool:
    """Some sentence asks or tells (see `asks`), or the text ends in a colon that leads into
    its input."""
    parts = sentences(instruction)
    if any(asks(s) for s in parts):
        return True
    return instruction.rstrip().endswith((":", "\uff1a"))


def is_statement(instruction: str) -> bool:
    """A finished statement that asks nothing: one paragraph, a full stop at the end, a subject
    first ("I like eggs.", "It is a rare disease."). Titles and problem statements do not count
    ("Merge two MySQL tables", "FULL JOIN with =any doesn't use indexes")."""
    text = instruction.strip()
    if "\n" in text or not text.endswith((".", "!")) or is_request(text):
        return False
    tokens = words(text)
    return bool(tokens) and tokens[0] in SUBJECTS
