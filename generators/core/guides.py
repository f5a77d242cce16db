"""Constrained output for raters and judges (--constrained auto|off): which `Sampling.guide` a
request carries, and the one follow-up that sends a still unreadable answer back.

A guide is ("regex", pattern), ("choice", "a|b|...") or ("json", canonical JSON schema). A stage
says which forms its answer may take; `pick` keeps the first the backend honours
(Capabilities.guides), so a stage asks the capability, never the backend's name. Local backends
(hf, vllm) take the "Score: N" text form as a regex, so the answer stays what the parsers read
today; OpenAI-compatible servers take a JSON schema (`response_format`), which the parsers read
too. A backend with no guide kind (anthropic) sends plain requests, as with --constrained off.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import prompts
from generators.backends.base import Capabilities, Sampling

CONSTRAINED_MODES = ("auto", "off")
RETRY_TEMPLATE = "constrained_retry"
# a reasoned answer's free text before the forced last line is bounded in characters (a token
# holds at least one), so the forced "\nScore: N" always fits in --max-tokens
FORCED_TOKENS = 16
MAX_REASON_CHARS = 1200
SCORE_LINE = "Score: [1-5]"


def json_guide(schema: dict[str, Any]) -> tuple[str, str]:
    """A JSON-schema guide: the schema as canonical JSON (hashable, a stable cache key)."""
    return ("json", json.dumps(schema, sort_keys=True, separators=(",", ":")))


def choice_guide(choices: list[str]) -> tuple[str, str]:
    return ("choice", "|".join(choices))


def choices_of(guide: tuple[str, str]) -> list[str]:
    return guide[1].split("|")


def choice_regex(choices: list[str]) -> str:
    """A choice as the regex a regex-only backend honours."""
    return "|".join(re.escape(c) for c in choices)


def score_schema(low: int = 1, high: int = 5, *, key: str = "score") -> dict[str, Any]:
    """{"reason": str, key: integer low..high}: what a JSON-guided rater answers."""
    return {"title": "rating", "type": "object", "additionalProperties": False, "required": ["reason", key],
            "properties": {"reason": {"type": "string"}, key: {"type": "integer", "minimum": low, "maximum": high}}}


def reasoned_regex(max_tokens: int | None, last_line: str = SCORE_LINE) -> str:
    """Free reasoning, then `last_line` as the last line; the reasoning is bounded so that the
    forced line fits in max_tokens."""
    budget = min(MAX_REASON_CHARS, (max_tokens or 512) - FORCED_TOKENS)
    if budget < 1:
        return last_line
    return "(?:[^\\n]|\\n){0,%d}\\n%s" % (budget, last_line)


def pick(capabilities: Capabilities, constrained: str, *, regex: str | None = None,
         choice: tuple[str, str] | None = None, json_schema: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """The guide for one request: the first form the backend honours (regex, then choice, then
    JSON), or None with --constrained off or when it honours none of them."""
    if constrained == "off":
        return None
    kinds = capabilities.guides
    if regex is not None and "regex" in kinds:
        return ("regex", regex)
    if choice is not None and "choice" in kinds:
        return choice
    if choice is not None and "regex" in kinds:
        return ("regex", choice_regex(choices_of(choice)))
    if json_schema is not None and "json" in kinds:
        return json_guide(json_schema)
    return None


def retry_messages(messages: list[dict[str, str]], answer: str, problem: str, form: str) -> list[dict[str, str]]:
    """The conversation for the one retry of an unreadable answer: the answer, then a user
    message saying what was wrong with it and which form is wanted."""
    follow_up = prompts.render(RETRY_TEMPLATE, problem=problem, form=form)
    return [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": follow_up}]


def form_of(guide: tuple[str, str] | None, plain: str) -> str:
    """How the wanted form is said in the retry message: the JSON shape under a JSON guide, else
    the plain form the prompt asked for."""
    if guide is not None and guide[0] == "json":
        schema = json.loads(guide[1])
        fields = ", ".join(f'"{name}": ' + _shape(spec) for name, spec in schema.get("properties", {}).items())
        return "a JSON object with " + fields
    return plain


def _shape(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(v) for v in spec["enum"])
    shape = str(spec.get("type", "value"))
    if "minimum" in spec and "maximum" in spec:
        shape += f' from {spec["minimum"]} to {spec["maximum"]}'
    return shape


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object an answer is (a JSON-guided answer), or None when it is not one: whitespace
    around it is fine, anything else around it is not."""
    stripped = (text or "").strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def with_guide(sampling: Sampling, guide: tuple[str, str] | None) -> Sampling:
    return sampling if guide == sampling.guide else replace(sampling, guide=guide)
