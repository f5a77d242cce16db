"""Humpback's seed loader on a small hand-written Open Assistant export (flat and trees)."""
from __future__ import annotations

import gzip
import json

import pytest

from generators.core.errors import FatalError, UsageError
from training import seed_oasst
from training.seed_oasst import load_oasst_seed

FLAT = [
    # tree 1: English prompt, three ranked answers, plus a follow-up turn that must be ignored
    {"message_id": "p1", "parent_id": None, "role": "prompter", "lang": "en", "rank": None,
     "text": "What do humpback whales eat?", "message_tree_id": "p1"},
    {"message_id": "a1b", "parent_id": "p1", "role": "assistant", "lang": "en", "rank": 1, "text": "Fish."},
    {"message_id": "a1a", "parent_id": "p1", "role": "assistant", "lang": "en", "rank": 0,
     "text": "Mostly krill and small fish, caught by lunge feeding."},
    {"message_id": "p1f", "parent_id": "a1a", "role": "prompter", "lang": "en", "rank": 0, "text": "More?"},
    {"message_id": "a1f", "parent_id": "p1f", "role": "assistant", "lang": "en", "rank": 0, "text": "No."},
    # tree 2: German, skipped
    {"message_id": "p2", "parent_id": None, "role": "prompter", "lang": "de", "text": "Was fressen Wale?"},
    {"message_id": "a2", "parent_id": "p2", "role": "assistant", "lang": "de", "rank": 0, "text": "Krill."},
    # tree 3: English but no rank-0 answer (unranked), skipped
    {"message_id": "p3", "parent_id": None, "role": "prompter", "lang": "en", "text": "Hello?"},
    {"message_id": "a3", "parent_id": "p3", "role": "assistant", "lang": "en", "rank": None, "text": "Hi."},
    # tree 4: English, deleted rank-0 answer, so the prompt is skipped
    {"message_id": "p4", "parent_id": None, "role": "prompter", "lang": "en", "text": "Why?"},
    {"message_id": "a4", "parent_id": "p4", "role": "assistant", "lang": "en", "rank": 0, "text": "x", "deleted": True},
    # tree 5: English, good
    {"message_id": "p5", "parent_id": None, "role": "prompter", "lang": "en", "text": "Name a baleen whale."},
    {"message_id": "a5", "parent_id": "p5", "role": "assistant", "lang": "en", "rank": 0, "text": "The blue whale."},
]


def nest(flat):
    """The trees export: one root per line with replies nested."""
    nodes = {m["message_id"]: {**{k: v for k, v in m.items() if k != "parent_id"}, "replies": []} for m in flat}
    roots = []
    for m in flat:
        if m["parent_id"] is None:
            roots.append(nodes[m["message_id"]])
        else:
            nodes[m["parent_id"]]["replies"].append(nodes[m["message_id"]])
    return [{"message_tree_id": r["message_id"], "tree_state": "ready_for_export", "prompt": r} for r in roots]


def write(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return str(path)


EXPECTED = [("What do humpback whales eat?", "Mostly krill and small fish, caught by lunge feeding."),
            ("Name a baleen whale.", "The blue whale.")]


def pairs(records):
    return [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in records]


@pytest.mark.parametrize("form", ["flat", "flat.gz", "trees", "trees.gz"])
def test_first_turn_english_rank0(tmp_path, form):
    rows = FLAT if form.startswith("flat") else nest(FLAT)
    path = write(tmp_path / f"oasst.{form}.jsonl{'.gz' if form.endswith('gz') else ''}", rows, form.endswith("gz"))
    records = load_oasst_seed(path)
    assert pairs(records) == EXPECTED
    assert all(r["tag"] == "seed" and r["source"] == "oasst1" for r in records)
    assert [m["role"] for m in records[0]["messages"]] == ["user", "assistant"]
    assert len({r["id"] for r in records}) == 2


def test_limit(tmp_path):
    assert pairs(load_oasst_seed(write(tmp_path / "o.jsonl", FLAT), limit=1)) == EXPECTED[:1]


def test_bad_export_lines_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_oasst_seed(str(tmp_path / "missing.jsonl"))
    with pytest.raises(UsageError, match=r"o.jsonl:1: neither an OASST message"):
        load_oasst_seed(write(tmp_path / "o.jsonl", [{"foo": 1}]))


def test_hub_unreachable_is_fatal_and_points_to_the_export(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'OpenAssistant/oasst1' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FatalError) as info:
        load_oasst_seed("oasst1")
    msg = info.value.message
    assert "\n" not in msg and "OpenAssistant/oasst1" in msg and "--seed-data PATH" in msg


def test_hub_rows_are_used_when_reachable(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: list(FLAT))
    assert pairs(seed_oasst.load_oasst_seed("OpenAssistant/oasst1")) == EXPECTED
