"""One record → one row in the shape another trainer reads. Each format is a small function and a
line in FORMATS; nothing else in the package knows the shapes.

Chat formats (sharegpt, openai, hf) end each conversation on an answer, as `gen train` does:
trailing unanswered turns teach nothing and some trainers refuse them. A record with no answer at
all is skipped (the row function returns None) and counted. `messages` keeps records as they are.
With tag texts (--with-tags), the record's tag becomes the same system sentence `gen train` puts
there (prompts/tag_*.j2), so a model trained elsewhere sees what M_k saw.

An assistant message's thinking (`reasoning_content`, in records made with --keep-reasoning) goes
where each format's trainers look for it: a `reasoning_content` field on the message in openai,
messages and hf; a `<think>...</think>` block before the answer in sharegpt and alpaca, whose
rows have no place for a field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import prompts

from generators.core.errors import UsageError
from generators.core.records import Record

Messages = list[dict[str, str]]
Row = dict[str, Any]
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass(frozen=True)
class Options:
    tag_texts: dict[str, str] | None = None   # None: no system sentence for tags
    include_rejected: bool = False            # rows carry `reject` (null on kept records)


def tag_texts(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Humpback's sentences from the prompt files (the wording `gen train` uses), then overrides."""
    texts = {"seed": prompts.render("tag_seed"), "augmented": prompts.render("tag_augmented")}
    texts.update(overrides or {})
    return texts


def with_tag(messages: Messages, tag: str | None, texts: dict[str, str] | None) -> Messages:
    """The tag's sentence appended to the system message, or as one, as training/render.py does."""
    if not texts or tag is None or tag not in texts:
        return messages
    sentence = texts[tag]
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{sentence}"}, *messages[1:]]
    return [{"role": "system", "content": sentence}, *messages]


def plain(messages: list[dict[str, Any]]) -> Messages:
    """Role and content, and an assistant's `reasoning_content` where it has one."""
    return [{"role": m["role"], "content": m["content"]}
            | ({"reasoning_content": m["reasoning_content"]} if with_thinking(m) else {}) for m in messages]


def with_thinking(message: dict[str, Any]) -> bool:
    """An assistant message that carries its thinking (reasoning_content)."""
    return message.get("role") == "assistant" and isinstance(message.get("reasoning_content"), str) \
        and bool(message["reasoning_content"].strip())


def inlinewith_thinking(message: dict[str, Any]) -> str:
    """The message's text, its thinking (if any) first as a <think> block, as R1-style trainers read it."""
    if not with_thinking(message):
        return message["content"]
    return f"<think>\n{message['reasoning_content'].strip()}\n</think>\n\n{message['content']}"


def answered(record: Record) -> Messages | None:
    """The record's turns up to its last answer; None when nothing in it is answered."""
    messages = plain(record["messages"])
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    return messages if any(m["role"] == "assistant" for m in messages) else None


def _reject(row: Row, record: Record, opts: Options) -> Row:
    if opts.include_rejected:
        row["reject"] = record.get("reject")
    return row


# ---------------------------------------------------------------- the formats

def sharegpt(record: Record, opts: Options) -> Row | None:
    """{"conversations": [{"from": system|human|gpt, "value"}]}: LLaMA-Factory, Axolotl, FastChat."""
    messages = answered(record)
    if messages is None:
        return None
    turns = with_tag(messages, record.get("tag"), opts.tag_texts)
    return _reject({"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": inlinewith_thinking(m)}
                                      for m in turns]}, record, opts)


def alpaca(record: Record, opts: Options) -> Row | None:
    """{"instruction", "input", "output"} from the first exchange (later turns are left out), plus
    "system" when the record has one or --with-tags gives one (LLaMA-Factory reads it)."""
    messages = plain(record["messages"])
    pair = next(((messages[i], messages[i + 1]) for i in range(len(messages) - 1)
                 if messages[i]["role"] == "user" and messages[i + 1]["role"] == "assistant"), None)
    if pair is None:
        return None
    row: Row = {"instruction": pair[0]["content"], "input": "", "output": inlinewith_thinking(pair[1])}
    head = with_tag([m for m in messages[:1] if m["role"] == "system"], record.get("tag"), opts.tag_texts)
    if head:
        row["system"] = head[0]["content"]
    return _reject(row, record, opts)


def openai(record: Record, opts: Options) -> Row | None:
    """{"messages": [...]}, OpenAI's fine-tuning format: nothing else on the line (provenance and
    any reject reason go to provenance.jsonl beside it)."""
    messages = answered(record)
    if messages is None:
        return None
    return {"messages": with_tag(messages, record.get("tag"), opts.tag_texts)}


def messages(record: Record, opts: Options) -> Row | None:
    """The record as it is (id, source, messages, tag, scores, reason), without meta."""
    row = {k: v for k, v in record.items() if k not in ("meta", "reject")}
    row["messages"] = with_tag(plain(record["messages"]), record.get("tag"), opts.tag_texts)
    return _reject(row, record, opts)


def hf(record: Record, opts: Options) -> Row | None:
    """The columns of the parquet files (the provenance columns are added by the writer)."""
    turns = answered(record)
    if turns is None:
        return None
    score = record.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int)):
        if isinstance(score, float) and score.is_integer():
            score = int(score)
        else:
            raise UsageError(f"record {record.get('id')}: score {score!r} is not a whole number; "
                             "fix the record or choose a JSONL --format")
    expected = record.get("score_expected")
    row: Row = {"id": str(record["id"]), "source": str(record.get("source") or ""),
                "tag": record.get("tag"), "messages": with_tag(turns, record.get("tag"), opts.tag_texts),
                "score": score,
                "score_expected": float(expected) if isinstance(expected, (int, float)) and not isinstance(expected, bool) else None,
                "reason": record.get("reason") if isinstance(record.get("reason"), str) else None}
    return _reject(row, record, opts)


def dpo(line: Row, opts: Options) -> Row | None:
    """{"prompt", "chosen", "rejected"}: TRL's DPOTrainer (text or conversational, as given)."""
    return {key: line[key] for key in ("prompt", "chosen", "rejected")}


@dataclass(frozen=True)
class Format:
    name: str
    row: Callable[[Row, Options], Row | None]
    what: str
    preferences: bool = False   # reads preference lines, not records
    parquet: bool = False       # a Hugging Face data set folder instead of JSONL files


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("sharegpt", sharegpt, "ShareGPT conversations (LLaMA-Factory, Axolotl)"),
    Format("alpaca", alpaca, "Alpaca instruction/input/output, first exchange"),
    Format("openai", openai, "OpenAI fine-tuning messages"),
    Format("messages", messages, "baleen records without meta (TRL messages)"),
    Format("dpo", dpo, "TRL DPO prompt/chosen/rejected", preferences=True),
    Format("hf", hf, "Hugging Face data set: parquet + README.md card", parquet=True),
)}


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError(f"--format {name!r}: unknown; choose one of {', '.join(FORMATS)}") from None
