"""Read a pairwise judge's "Winner: 1 | 2 | tie" strictly: the last Winner line decides, and
anything else there (a 3, "both", "Answer 1 is better") is unparsed and resampled. A judge under
a JSON-schema guide (--constrained auto on an OpenAI-compatible server) answers
{"reason": text, "winner": "1" | "2" | "tie"}, read as strictly."""
from __future__ import annotations

import re
from typing import Any

from generators.core.guides import json_object

_STATEMENT = re.compile(r"^[ \t>#*_\-]*(?:final[ \t]+)?(?:winner|verdict)[ \t*_]*:[ \t*_]*(?P<rest>[^\n]*)$",
                        re.IGNORECASE | re.MULTILINE)
_VALUE = re.compile(r"^[\[(\"']?(?:answer[ \t]*)?(?P<value>1|2|tie)[\])\"']?[ \t*_.!]*$", re.IGNORECASE)


VERDICTS = ("1", "2", "tie")
VERDICT_LINE = "Winner: (?:1|2|tie)"  # the regex guide's last line
VERDICT_FORM = ('one to three sentences of reasoning, then the verdict alone on the last line as "Winner: 1", '
                '"Winner: 2" or "Winner: tie"')
VERDICT_SCHEMA: dict[str, Any] = {
    "title": "verdict", "type": "object", "additionalProperties": False, "required": ["reason", "winner"],
    "properties": {"reason": {"type": "string"}, "winner": {"type": "string", "enum": list(VERDICTS)}}}


def parse_verdict(text: str) -> str | None:
    """'1', '2' or 'tie', or None when the last Winner line says something else (or there is none)."""
    answer = json_object(text)
    if answer is not None:
        winner = answer.get("winner")
        return winner.lower() if isinstance(winner, str) and winner.lower() in VERDICTS else None
    statements = list(_STATEMENT.finditer(text or ""))
    if not statements:
        return None
    match = _VALUE.match(statements[-1].group("rest").strip())
    return match.group("value").lower() if match else None


def outcome(first_order: str, swapped_order: str) -> float:
    """The candidate's result over both orders (candidate shown first, then second): 1 win,
    0.5 tie, 0 loss in each, averaged; a judge that always picks one position scores 0.5."""
    a = {"1": 1.0, "2": 0.0, "tie": 0.5}[first_order]
    b = {"1": 0.0, "2": 1.0, "tie": 0.5}[swapped_order]
    return (a + b) / 2
