"""The instructions `gen eval winrate` asks both models: a JSONL of {instruction} lines (the
AlpacaEval set as published), of {prompt}/{question} lines, or records (their first user turn)."""
from __future__ import annotations

from pathlib import Path

from generators.core.errors import UsageError
from generators.core.io import iter_jsonl
from generators.core.records import check_record

FIELDS = ("instruction", "prompt", "question")


def load_instructions(path: Path, limit: int | None = None) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for number, obj in iter_jsonl(path):
        where = f"{path}:{number}"
        text = next((obj[f] for f in FIELDS if isinstance(obj, dict) and isinstance(obj.get(f), str)), None)
        if text is None:
            if not (isinstance(obj, dict) and "messages" in obj):
                raise UsageError(f"{where}: expected an object with an 'instruction' (or prompt/question) "
                                 "text, or a record with messages")
            users = [m["content"] for m in check_record(obj, where)["messages"] if m["role"] == "user"]
            text = users[0] if users else ""
        if not text.strip():
            raise UsageError(f"{where}: the instruction is empty; fix or remove that line")
        if text.strip() in seen:  # the same question twice would count twice
            continue
        seen.add(text.strip())
        out.append(text.strip())
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise UsageError(f"--instructions {path}: no instruction in the file")
    return out
