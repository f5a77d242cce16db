"""Read a pairwise judge's "Winner: 1 | 2 | tie" strictly: the last Winner line decides, and
anything else there (a 3, "both", "Answer 1 is better") is unparsed and resampled."""
from __future__ import annotations

import re

_STATEMENT = re.compile(r"^[ \t>#*_\-]*(?:final[ \t]+)?(?:winner|verdict)[ \t*_]*:[ \t*_]*(?P<rest>[^\n]*)$",
                        re.IGNORECASE | re.MULTILINE)
_VALUE = re.compile(r"^[\[(\"']?(?:answer[ \t]*)?(?P<value>1|2|tie)[\])\"']?[ \t*_.!]*$", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """'1', '2' or 'tie', or None when the last Winner line says something else (or there is none)."""
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
