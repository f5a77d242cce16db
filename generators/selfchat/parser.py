"""Turn one Baize-style self-chat transcript into alternating user/assistant messages.

Baize's own parser drops the final exchange and stops at the first malformed turn; this one keeps
every complete exchange, the last included, and repairs what models commonly get wrong: text
before the first marker, marker variants ([Human], [|Human|], Human:, User:, **[AI]**, ### AI:),
two turns of one speaker in a row, a marker written inline after the previous turn
("... done. [|Human|] next"), CRLF line ends, stray end tokens, and a reply cut by max tokens.
What was repaired is listed in `notes`; a transcript with nothing usable gets a `reject` code:
  no_markers  no speaker marker found at all
  one_sided   markers found, but no complete user -> assistant exchange is left
  truncated_reasoning  the first assistant turn's `<think>` never closed
A reasoning model may think inside a turn (`[AI] <think>...</think> answer`): the think block
is taken out of the turn (generators/core/reasoning.py), an assistant turn's thinking kept in
`reasoning`, aligned with the assistant turns; a turn whose thinking never closed ends the
dialog there (that exchange and everything after it are dropped).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from generators.core.reasoning import split

_USER = ("human", "user")
_NAMES = r"human|user|ai|assistant"
# [Human] [|Human|] [ AI ] -- accepted anywhere, models often write them inline.
_BRACKET = rf"\[[ \t]*\|?[ \t]*(?P<b>{_NAMES})[ \t]*\|?[ \t]*\]"
# Human: / **User:** / ### Assistant: -- accepted only at the start of a line.
_COLON = rf"(?P<c>{_NAMES})[ \t]*(?:\*\*)?[ \t]*:"
_AFTER = r"(?:[ \t]*\*\*)?(?:[ \t]*:)?(?:[ \t]*\*\*)?"
MARKER_RE = re.compile(
    rf"(?:^[ \t]*(?:\#{{1,6}}[ \t]*)?(?:\*\*)?[ \t]*{_COLON}{_AFTER})"
    rf"|(?:(?:\*\*)?{_BRACKET}{_AFTER})",
    re.IGNORECASE | re.MULTILINE,
)
# The model's own end-of-text tokens; nothing after one belongs to the dialog.
END_TOKEN_RE = re.compile(
    r"\[\s*end\s*\]|\[\s*done\s*\]|<\|endoftext\|>|<\|im_end\|>|<\|eot_id\|>|<\|end\|>|</s>",
    re.IGNORECASE,
)


@dataclass
class ParsedDialog:
    messages: list[dict[str, str]]   # alternating user/assistant, starting with user, ending with assistant
    reject: str | None               # None when usable, else a reason code
    notes: list[str] = field(default_factory=list)  # what was repaired
    reasoning: list[str | None] = field(default_factory=list)  # per assistant turn: its think block

    def note(self, what: str) -> None:
        if what not in self.notes:
            self.notes.append(what)


def role_of(marker: re.Match[str]) -> str:
    name = (marker.group("b") or marker.group("c")).lower()
    return "user" if name in _USER else "assistant"


def parse_transcript(text: str, *, truncated: bool = False) -> ParsedDialog:
    """Split `text` on speaker markers and repair it into a clean dialog.

    `truncated`: the model stopped at max tokens, so the last turn it wrote is cut mid-text; a cut
    assistant turn is dropped with its question (a cut user turn is dropped as unanswered).
    """
    out = ParsedDialog(messages=[], reject=None)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    end = END_TOKEN_RE.search(text)
    if end:
        out.note("stripped_end_token")
        if END_TOKEN_RE.sub("", text[end.end():]).strip():
            out.note("dropped_after_end_token")
        text = text[:end.start()]
        truncated = False  # the model ended on its own, so nothing before the token is cut

    markers = list(MARKER_RE.finditer(text))
    if not markers:
        out.reject = "no_markers"
        return out
    if text[:markers[0].start()].strip():
        out.note("dropped_preamble")
    raw = [(role_of(m), text[m.end():(markers[i + 1].start() if i + 1 < len(markers) else len(text))]
            .strip()) for i, m in enumerate(markers)]
    raw, cut_thinking = _without_thinking(raw)
    if cut_thinking:
        out.note("dropped_truncated_reasoning")

    # a turn cut by max tokens (one whose thinking was cut is gone already)
    cut_last = truncated and not cut_thinking and bool(raw) and bool(raw[-1][1]) and raw[-1][0] == "assistant"
    turns: list[list] = []
    for role, content, reasoning in raw:
        if not content:
            out.note("dropped_empty_turn")
        elif turns and turns[-1][0] == role:
            turns[-1][1] += "\n\n" + content
            turns[-1][2] = "\n\n".join(r for r in (turns[-1][2], reasoning) if r) or None
            out.note("merged_turns")
        else:
            turns.append([role, content, reasoning])

    if turns and turns[0][0] == "assistant":
        turns.pop(0)
        out.note("dropped_leading_assistant")
    if cut_last and turns and turns[-1][0] == "assistant":
        del turns[-2:]
        out.note("dropped_truncated_turn")
    if turns and turns[-1][0] == "user":
        turns.pop()
        out.note("dropped_unanswered_turn")

    out.messages = [{"role": role, "content": content} for role, content, _ in turns]
    out.reasoning = [reasoning for role, _, reasoning in turns if role == "assistant"]
    if not out.messages:
        out.reject = "truncated_reasoning" if cut_thinking else "one_sided"
    return out


def _without_thinking(raw: list[tuple[str, str]]) -> tuple[list[tuple[str, str, str | None]], bool]:
    """Each turn with its think block taken out and kept beside it, up to a turn whose thinking
    never closed (True: there was one; it and every turn after it are dropped)."""
    kept: list[tuple[str, str, str | None]] = []
    for role, content in raw:
        visible, reasoning, closed = split(content)
        if not closed:
            return kept, True
        kept.append((role, visible.strip(), reasoning or None if role == "assistant" else None))
    return kept, False
