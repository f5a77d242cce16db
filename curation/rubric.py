"""The rating request for one record: the rubric template rendered with all its turns."""
from __future__ import annotations

import prompts
from generators.core.errors import UsageError
from generators.core.records import Record, instruction, turns


TEMPLATE = "curate_rubric"
INSTRUCTION_TEMPLATE = "curate_instruction"
RATES = ("pair", "instruction")  # what the rater sees: the whole record, or the instruction alone


SCORE_PREFIX = "Score:"


def default_template(rate: str) -> str:
    """The rubric of a --rate mode when --template is not given."""
    return INSTRUCTION_TEMPLATE if rate == "instruction" else TEMPLATE


def rubric_messages(record: Record, template: str = TEMPLATE, *, direct: bool = False,
                    rate: str = "pair") -> list[dict[str, str]]:
    """One user message holding the rubric and the whole dialog (self-chat dialogs are rated
    as a whole: every turn is shown), or with rate="instruction" the first user turn alone.
    `direct` asks for the score alone and prefills the answer with "Score:", so the very next
    token is the rating."""
    shown = [m for m in turns(record) if m["role"] != "system"]
    if rate == "instruction":
        shown = [{"role": "user", "content": instruction(record)}]
    multi = sum(1 for m in shown if m["role"] == "user") > 1
    messages = [{"role": "user", "content": prompts.render(template, turns=shown, multi=multi, direct=direct,
                                                           instruction=instruction(record))}]
    if direct:
        messages.append({"role": "assistant", "content": SCORE_PREFIX})
    return messages


RUBRIC_VARIABLES = frozenset({"turns", "multi", "direct", "instruction"})


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
