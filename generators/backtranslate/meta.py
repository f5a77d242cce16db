"""Meta-text: a backward model talking about the text, the answer, the user or the task
("This text is an excellent answer to the question: ...") instead of writing the request, and
the real question such text sometimes quotes (salvaged)."""
from __future__ import annotations

import re

from generators.backtranslate.asking import asks
from generators.backtranslate.cleaning import INTERJECTION, clean_instruction
from generators.core.text import words

_META_NOUN = (r"(?:text|passage|answer|article|response|document|excerpt|paragraph|content|information|"
              r"segment|piece|section|page|reply|output|explanation|summary|description|material|input|"
              r"above|following|example|message)")
_ASK_NOUN = r"(?:question|instruction|request|prompt|message)"  # not "query": SQL titles say it
_PERSON = r"(?:user|person|human|reader|customer|patient|client|someone|asker|author|writer|they)"
_META_PATTERNS = [re.compile(p, re.I) for p in (
    # "This text is an excellent answer ...", "The passage describes ...", "The above explains ..."
    rf"^(?:this|the|that|above|given|provided|following)\s+(?:[\w-]+\s+){{0,2}}{_META_NOUN}s?\b"
    r"(?!\s+(?:should|must|needs?|has to|have to|will need)\b)"
    r"\s+(?:\w+\s+){0,2}(?:is|was|are|were|seems|appears|describes|discusses|explains|provides|gives|"
    r"talks|contains|highlights|mentions|presents|covers|focuses|shows|offers|answers|reads|would|could|"
    r"might|can|does|lists|outlines|summarizes|summarises|serves|looks|has|makes)\b",
    # "Here is a question ...", "Here's the instruction: ..."
    rf"^here(?:'s|\s+is|\s+are)\s+(?:\w+\s+){{0,4}}{_ASK_NOUN}s?\b",
    # "The user asks ...", "A person might ask ...", "The user's question is ..."
    rf"^(?:the|a|an|this|that|one)\s+(?:\w+\s+){{0,1}}{_PERSON}(?:'s)?\s+(?:\w+\s+){{0,2}}"
    r"(?:asks?|asked|asking|wants?|wanted|wonders?|is asking|is looking|requests?|requested|sent|wrote|"
    rf"writes|needs?|question|instruction|request|query|message|would|might|could|may|likely)\b",
    rf"^(?:the|a|an|this|that)\s+{_PERSON}(?:'s)?\s+(?:{_ASK_NOUN}\s+)?(?:is|was)\b",
    # "The question is ...", "The most likely request would be ...", "A good question for this is"
    rf"^(?:the|a|an|my|this|one|your|possible|best)\s+(?:[\w-]+\s+){{0,3}}{_ASK_NOUN}s?\s+"
    r"(?:is|was|would be|could be|might be|that|for which|to which|this|for this|here|being|answered)\b",
    # "What is the user's question?", "What question would a user ask ...", "What is the answer to ..."
    rf"^(?=.*\b(?:{_PERSON}|text|passage|sent)\b)what\s+(?:is|was|would be|could be|might be|are)\s+"
    rf"(?:the|a|an|your|this|that|their)\s+(?:[\w'-]+\s+){{0,4}}(?:{_ASK_NOUN}s?|answer)\b",
    rf"^(?=.*\b(?:{_PERSON}|text|passage|sent)\b)what\s+(?:{_ASK_NOUN}|kind of {_ASK_NOUN})\s+"
    r"(?:would|could|might|did|does|is|was)\b",
    r"^what\s+is\s+the\s+answer\s+to\s+(?:the|this|that|your)\s+question\b",
    # "I would ask ...", "As a user, I would ...", "Based on the text, ..."
    r"^(?:i\s+would\s+ask|as\s+an?\s+(?:user|person|ai)\b|based\s+on\s+(?:the|this)\s+(?:text|passage|answer))",
    # The prompt's own words given back: "Write the single question or instruction ..."
    rf"^(?:write|reply|respond)\s+(?:with\s+)?(?:the|that)\s+(?:single\s+|most\s+likely\s+|user's\s+)?"
    rf"{_ASK_NOUN}\b",
)]
# Where a question run into a meta sentence may start ("... answers the question what is X?").
_QUESTION_WORD = re.compile(r"\b(?:what|how|why|when|where|which|who|explain|describe|list|give|tell)\b", re.I)
_AUXILIARY_START = re.compile(r"^(?:is|are|was|were|am|do|does|did|can|could|should|would|will|shall|may|might|"
                              r"must|has|have|had)\b", re.I)
_QUESTION_INSIDE = re.compile(r"[^.!?:;\"\u201c\u201d\n]*[?\uff1f]")
_AFTER_COLON = re.compile(r"[:\uff1a]\s*[\"\u201c']?\s*([^\n]+?)\s*[\"\u201d']?\s*$")


def is_meta(instruction: str) -> bool:
    """Talk about the text, the answer, the user or the task instead of a request."""
    text = INTERJECTION.sub("", re.sub(r"^[\s*_>#\"'\u201c]+", "", instruction))
    return any(p.match(text) for p in _META_PATTERNS)


def salvage_question(instruction: str) -> str | None:
    """The request that meta-text quotes ("This text is an answer to the question: Is X inherited?"
    -> "Is X inherited?"), if it holds one that is not meta itself; else None. Each question (or
    the text after the last colon) is tried whole, then from each question word on, so a question
    run into the meta sentence ("... answers the question what is X?") is found too."""
    candidates = [m.group(0) for m in _QUESTION_INSIDE.finditer(instruction)]
    colon = _AFTER_COLON.search(instruction)
    if colon:
        candidates.append(colon.group(1))
    for raw in candidates:
        starts = [0] + [m.start() for m in _QUESTION_WORD.finditer(raw) if m.start() > 0]
        for start in starts:
            candidate = clean_instruction(raw[start:].strip(" \t*_-\"'\u201c\u201d"))
            if (len(words(candidate)) >= 3 and asks(candidate) and not is_meta(candidate)
                    and not _mentions_task(candidate)
                    and (candidate.rstrip().endswith(("?", "\uff1f")) or not _AUXILIARY_START.match(candidate))):
                return candidate
    return None


def _mentions_task(text: str) -> bool:
    """A question about the question itself ("... a user who sent this text?"), or a meta clause
    left over ("is an excellent answer to the question what ...")."""
    return bool(re.search(rf"\b{_PERSON}\b.*\b(?:sent|asked|wrote)\b|\b(?:this|the|a) (?:text|passage)\b"
                          rf"|\b{_ASK_NOUN}s? or (?:an? )?{_ASK_NOUN}|\banswer to (?:the|this|that) question\b"
                          r"|\bthe question\b|\b(?:the|a) user\b|\bsent\b", text, re.I))
