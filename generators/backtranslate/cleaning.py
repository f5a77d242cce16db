"""Strip what a backward model wraps around its request: lead-ins ("Sure! Here is the
question:"), labels ("Instruction:", "User's message:") and wrapping quotes."""
from __future__ import annotations

import re

_LABEL = re.compile(
    r"^\s*(?:[*_#>]+\s*)?(?:the\s+|a\s+|new\s+|generated\s+|likely\s+|most\s+likely\s+)*"
    r"(?:user(?:'s)?\s+)?(?:instruction|question|request|query|prompt|task|user|input|human|message)"
    r"(?:\s*\d+)?\s*(?:[*_]+\s*)?[:：]\s*(?:[*_]+\s*)?", re.I)
_LEAD_IN = re.compile(r"^\s*(?:sure|okay|ok|certainly|here(?:'s| is| are)?)\b[^\n]{0,80}[:：]\s*\n", re.I)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"),
           ("\u00ab", "\u00bb"), ("**", "**"))
INTERJECTION = re.compile(r"^(?:sure|certainly|of course|absolutely)\s*[!,.]\s*(?=\S)", re.I)


def clean_instruction(text: str) -> str:
    """The request alone: lead-ins ("Sure, here is the question:"), labels ("Instruction:",
    "**Question:**") and wrapping quotes removed, repeatedly, since models stack them."""
    text = text.strip()
    for _ in range(4):
        before = text
        text = _LEAD_IN.sub("", text, count=1).strip()
        text = INTERJECTION.sub("", text, count=1).strip()
        text = _LABEL.sub("", text, count=1).strip()
        for left, right in _QUOTES:
            if len(text) >= len(left) + len(right) + 1 and text.startswith(left) and text.endswith(right):
                inner = text[len(left):len(text) - len(right)]
                if left not in inner or left != right:  # "a" and "b" is not one quoted string
                    text = inner.strip()
        if text == before:
            break
    return text
