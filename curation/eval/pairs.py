"""Held-out (instruction, answer) pairs for `gen eval`: the project's records (first user turn,
first assistant turn), or plain {instruction, output} lines. Read whole and checked before any
folder is made, so bad input exits 2 with nothing left behind."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generators.core.errors import UsageError
from generators.core.io import iter_jsonl
from generators.core.records import check_record, stable_id


@dataclass(frozen=True)
class Pair:
    id: str
    instruction: str
    answer: str


def _pair(obj: object, where: str) -> Pair:
    if isinstance(obj, dict) and "messages" not in obj and isinstance(obj.get("instruction"), str) \
            and isinstance(obj.get("output"), str):
        pid = str(obj.get("id") or stable_id("pair", obj["instruction"], obj["output"]))
        instruction, answer = obj["instruction"], obj["output"]
    else:
        record = check_record(obj, where)
        users = [m["content"] for m in record["messages"] if m["role"] == "user"]
        answers = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        pid, instruction, answer = str(record["id"]), users[0] if users else "", answers[0] if answers else ""
    if not instruction.strip() or not answer.strip():
        raise UsageError(f"{where}: needs a non-empty instruction (first user turn) and answer (first "
                         "assistant turn); fix or remove that line")
    return Pair(pid, instruction.strip(), answer.strip())


def load_pairs(path: Path, *, limit: int | None = None, minimum: int = 1, flag: str = "--pairs") -> list[Pair]:
    """Every pair of `path` (the first `limit`); duplicate ids are an error (they would share a line)."""
    pairs: list[Pair] = []
    seen: set[str] = set()
    for number, obj in iter_jsonl(path):
        pair = _pair(obj, f"{path}:{number}")
        if pair.id in seen:
            raise UsageError(f"{path}:{number}: id {pair.id!r} appears twice; give each pair its own id")
        seen.add(pair.id)
        pairs.append(pair)
        if limit is not None and len(pairs) >= limit:
            break
    if len(pairs) < minimum:
        raise UsageError(f"{flag} {path}: {len(pairs)} pair(s); this evaluation needs at least {minimum}")
    return pairs
