"""The rating request for one record: the rubric template rendered with all its turns."""
from __future__ import annotations

import prompts
from generators.errors import UsageError

from .text import Record, turns

TEMPLATE = "curate_rubric"


SCORE_PREFIX = "Score:"


def rubric_messages(record: Record, template: str = TEMPLATE, *, direct: bool = False) -> list[dict[str, str]]:
    """One user message holding the rubric and the whole dialog (self-chat dialogs are rated
    as a whole: every turn is shown). `direct` asks for the score alone and prefills the answer
    with "Score:", so the very next token is the rating."""
    shown = [m for m in turns(record) if m["role"] != "system"]
    multi = sum(1 for m in shown if m["role"] == "user") > 1
    messages = [{"role": "user", "content": prompts.render(template, turns=shown, multi=multi, direct=direct)}]
    if direct:
        messages.append({"role": "assistant", "content": SCORE_PREFIX})
    return messages


RUBRIC_VARIABLES = frozenset({"turns", "multi", "direct"})


def check_template(template: str) -> None:
    """--template must name a template in prompts/ that uses only the variables a rubric gets."""
    try:
        prompts.check(template, RUBRIC_VARIABLES)
    except KeyError as exc:
        raise UsageError(f"--template {template}: {exc.args[0]}") from None


def template_id(template: str = TEMPLATE) -> str:
    """'name@hash' of the rubric; an unknown name is a usage error."""
    check_template(template)
    return prompts.template_id(template)
