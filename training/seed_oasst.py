"""Humpback's seed: Open Assistant first turns, English, with the rank-0 answer (3,200 by default).

Reads either the hub data set `OpenAssistant/oasst1` (flat messages) or a local export: a .jsonl
(or .jsonl.gz) of flat messages (message_id, parent_id, role prompter|assistant, lang, rank,
text) or of nested message trees (one tree per line, {"prompt": {..., "replies": [...]}}).
The pairs come out as records tagged "seed", in the order of the source.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from generators.core.errors import FatalError, UsageError
from generators.core.io import iter_jsonl
from generators.core.records import Record, make_record, stable_id

HUB_NAME = "oasst1"
HUB_ID = "OpenAssistant/oasst1"
EXPORT_HINT = ("download 2023-04-12_oasst_ready.messages.jsonl.gz (or .trees.jsonl.gz) from "
               "OpenAssistant/oasst1 on a machine with access and pass --seed-data PATH")


def load_oasst_seed(source: str, limit: int | None = 3200) -> list[Record]:
    """Seed records from `source` ('oasst1' for the hub, else a local export path)."""
    if source in (HUB_NAME, HUB_ID):
        messages: Iterable[dict[str, Any]] = _hub_messages()
    else:
        messages = _file_messages(Path(source))
    return first_turn_pairs(messages, limit)


def first_turn_pairs(messages: Iterable[dict[str, Any]], limit: int | None) -> list[Record]:
    """Pick root English prompts and their rank-0 assistant reply, as seed records."""
    roots: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    best: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m.get("deleted") or m.get("review_result") is False:
            continue
        if m.get("parent_id") is None and m.get("role") == "prompter" and m.get("lang") == "en":
            roots[m["message_id"]] = m
            order.append(m["message_id"])
        elif m.get("role") == "assistant" and m.get("rank") == 0 and m.get("parent_id"):
            best[m["parent_id"]] = m
    records: list[Record] = []
    for mid in order:
        answer = best.get(mid)
        if answer is None or answer.get("lang", "en") != "en":
            continue
        prompt = roots[mid]["text"].strip()
        reply = answer["text"].strip()
        if not prompt or not reply:
            continue
        messages_ = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        records.append(make_record(
            id=stable_id("seed", "oasst1", mid, answer["message_id"]), source="oasst1",
            messages=messages_, tag="seed",
            meta={"seed": mid, "answer_id": answer["message_id"], "tree": roots[mid].get("message_tree_id")}))
        if limit is not None and len(records) >= limit:
            break
    return records


def _file_messages(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise UsageError(f"--seed-data {path}: no such file; give an OASST export (.jsonl[.gz]) "
                         f"or 'oasst1' for the hub")
    for number, obj in iter_jsonl(path):  # plain, .gz or .zst; a bad line names file:line
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), dict):
            yield from _flatten_tree(obj["prompt"], None, obj.get("message_tree_id"))
        elif isinstance(obj, dict) and "message_id" in obj and "role" in obj:
            yield obj
        else:
            raise UsageError(f"{path}:{number}: neither an OASST message (message_id, role, "
                             "text) nor a tree ({{prompt: ...}}); check the file")


def _flatten_tree(node: dict[str, Any], parent: str | None, tree: str | None) -> Iterator[dict[str, Any]]:
    """Walk a nested tree export depth first, giving flat messages with parent_id filled."""
    flat = {k: v for k, v in node.items() if k != "replies"}
    flat.setdefault("parent_id", parent)
    flat.setdefault("message_tree_id", tree)
    yield flat
    for child in node.get("replies") or []:
        yield from _flatten_tree(child, node.get("message_id"), tree)


def _hub_messages() -> Iterator[dict[str, Any]]:
    try:
        import datasets

        data = datasets.load_dataset(HUB_ID, split="train")
    except Exception as exc:  # offline, refused, or missing: all the same to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FatalError(f"cannot load {HUB_ID} from the Hugging Face hub ({first[:160]}); "
                         f"{EXPORT_HINT}") from None
    yield from data
