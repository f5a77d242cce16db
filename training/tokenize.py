"""Conversations → token ids and labels through the base model's own chat template.

Why this way: training, scoring and serving must see the same tokens. A server tokenizes
`apply_chat_template(history, add_generation_prompt=True)` and the model then writes the answer
and its end-of-turn token. So we render the conversation at every assistant boundary, check each
render extends the previous one (the template is incremental), and tokenize the pieces between
boundaries separately: the prompt pieces exactly as a server would, the answer pieces exactly as
the model would write them. Labels cover each assistant piece up to and including its last stop
token (end-of-turn / EOS); anything the template adds after it (a newline) is context only.
This works with any template and needs no `{% generation %}` markers.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from generators.core.errors import UsageError

from training.render import Conversation

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # aligned with input_ids: the token itself where supervised, else -100
    tag: str | None
    record_id: str

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class EncodeStats:
    kept: int = 0
    truncated: int = 0
    dropped: Counter = field(default_factory=Counter)


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> set[int]:
    """The tokens a server stops on: EOS plus the generation config's eos ids (e.g. <|eot_id|>)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    extra = getattr(generation_config, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, (list, tuple)):
        ids.update(int(x) for x in extra)
    return ids


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def encode_conversation(conv: Conversation, tokenizer: Any, stop_ids: set[int]) -> Example:
    """Full-length token ids and labels for one conversation (no truncation here)."""
    msgs = conv.messages
    try:
        full = _render(tokenizer, msgs, False)
        cuts: list[tuple[int, int]] = []  # (answer start, answer end) in characters
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            prompt = _render(tokenizer, msgs[:i], True)
            end_text = _render(tokenizer, msgs[: i + 1], False)
            if not end_text.startswith(prompt) or not full.startswith(end_text):
                raise ValueError(f"turn {i} does not extend the render before it")
            cuts.append((len(prompt), len(end_text)))
    except ValueError as exc:
        raise UsageError(f"{conv.where}: the base model's chat template does not render this "
                         f"conversation turn by turn ({exc}); check its roles and order") from None
    except Exception as exc:  # jinja TemplateError, e.g. a template that refuses system messages
        raise UsageError(f"{conv.where}: the base model's chat template refused this "
                         f"conversation: {str(exc).splitlines()[0][:160]}") from None
    input_ids: list[int] = []
    labels: list[int] = []
    pos = 0
    for start, end in cuts:
        if start < pos:
            raise UsageError(f"{conv.where}: the chat template renders turns out of order; "
                             "cannot find the assistant spans")
        context = _ids(tokenizer, full[pos:start])
        answer = _ids(tokenizer, full[start:end])
        stops = [j for j, t in enumerate(answer) if t in stop_ids]
        last = stops[-1] if stops else len(answer) - 1
        input_ids += context + answer
        labels += [IGNORE] * len(context)
        labels += [t if j <= last else IGNORE for j, t in enumerate(answer)]
        pos = end
    tail = _ids(tokenizer, full[pos:])
    input_ids += tail
    labels += [IGNORE] * len(tail)
    if labels:
        labels[0] = IGNORE  # nothing predicts the first token
    return Example(input_ids, labels, conv.tag, conv.record_id)


def encode_all(convs: list[Conversation], tokenizer: Any, max_length: int,
               stop_ids: set[int]) -> tuple[list[Example], EncodeStats]:
    """Encode and truncate every conversation; those left with no supervised token are dropped
    and counted (never trained on silently)."""
    stats = EncodeStats()
    out: list[Example] = []
    for conv in convs:
        ex = encode_conversation(conv, tokenizer, stop_ids)
        if len(ex.input_ids) > max_length:
            stats.truncated += 1
            ex = Example(ex.input_ids[:max_length], ex.labels[:max_length], ex.tag, ex.record_id)
            if ex.n_supervised == 0:
                stats.dropped["no_supervised_token_after_truncation"] += 1
                continue
        if ex.n_supervised == 0:
            stats.dropped["no_supervised_token"] += 1
            continue
        out.append(ex)
        stats.kept += 1
    return out, stats
