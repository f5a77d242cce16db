"""gen view's data side, one module at a time: finding runs, the index, round changes, search,
filters and paging (generators/outputs/view/*). Folders are made here by hand, a few lines each."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from generators.core.errors import UsageError
from generators.outputs.view.data import ViewData, preview
from generators.outputs.view.diff import representative
from generators.outputs.view.index import Index, error_kind
from generators.outputs.view.query import Query, QueryError, select
from generators.outputs.view.runs import discover
from generators.outputs.view.search import Searcher, visible_text


def rec(rid: str, user: str = "question", assistant: str = "answer", **fields) -> dict:
    return {"id": rid, "source": "t", "messages": [{"role": "user", "content": user},
                                                   {"role": "assistant", "content": assistant}],
            "meta": {"item": "i-" + rid}, **fields}


def run(folder: Path, stage: str, kept=(), rejected=(), errors=(), tail: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stage": stage, "status": "complete"}))
    for name, lines in (("data.jsonl", kept), ("rejected.jsonl", rejected), ("errors.jsonl", errors)):
        cut = tail if name == "rejected.jsonl" else ""  # a line a kill cut short
        (folder / name).write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines) + cut)
    return folder


def curated(ids_kept, ids_rejected, score_of=lambda rid: 5):
    kept = [rec(i, score=5, score_expected=4.9, reason="fine\nScore: 5") for i in ids_kept]
    rejected = [rec(i, score=score_of(i), score_expected=score_of(i) - 0.5, reject="below_threshold")
                for i in ids_rejected]
    return kept, rejected


@pytest.fixture
def rounds(tmp_path: Path) -> Path:
    root = tmp_path / "rounds"
    run(root / "round0" / "augment", "backtranslate", [rec(f"c{i}", tag="augmented") for i in range(6)],
        [rec("x", reject="not_a_request", tag="augmented")],
        [{"item": "e0", "error": "HTTP 500: boom", "status": 500, "input": {"text": "a page"}}])
    run(root / "round0" / "model", "train")
    k1, r1 = curated(["c0", "c1", "c2"], ["c3", "c4"], score_of=lambda rid: 4 if rid == "c3" else 2)
    run(root / "round1" / "curate", "curate", k1, r1)
    k2, r2 = curated(["c1", "c3", "c4"], ["c0"], score_of=lambda rid: 3)  # c2: no line at all
    run(root / "round10", "curate", k2, r2)  # a round that is itself a run folder; after round1
    (root / ".hidden" / "x").mkdir(parents=True)
    (root / "notes").mkdir()
    (root / "round1" / "lineage.json").write_text(json.dumps({"rater": "round0/model"}))
    return root


# ---------------------------------------------------------------- runs.py

def test_discover_finds_runs_and_rounds_in_natural_order(rounds: Path):
    layout = discover(rounds)
    assert layout.kind == "rounds" and layout.rounds == ["round0", "round1", "round10"]
    assert [r.name for r in layout.runs] == ["round0/augment", "round0/model", "round1/curate", "round10"]
    assert [r.round for r in layout.runs] == ["round0", "round0", "round1", "round10"]
    assert layout.lineage == {"round1": {"rater": "round0/model"}}
    single = discover(rounds / "round1" / "curate")
    assert single.kind == "run" and [r.name for r in single.runs] == ["curate"]


def test_discover_without_runs_is_a_usage_error(tmp_path: Path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(UsageError, match="no manifest.json"):
        discover(tmp_path / "a")
    with pytest.raises(UsageError, match="no such folder"):
        discover(tmp_path / "missing")


# ---------------------------------------------------------------- index.py

def test_index_rows_offsets_and_fields(tmp_path: Path):
    folder = run(tmp_path / "chat", "selfchat", [rec("a", tag="seed"), rec("b", user="ünïcode")],
                 [rec("c", reject="refusal")], [{"item": "i9", "error": "local generation failed: OOM"}],
                 tail='{"id": "cut')
    layout = discover(folder)
    index = Index(layout.runs)
    assert len(index) == 4 and index.ids == ["a", "b", "c", "i9"]
    assert list(index.outcome) == [0, 0, 1, 2]
    assert [index.reasons.names[c] if c >= 0 else None for c in index.reason] == \
        [None, None, "refusal", "local generation failed"]
    assert index.tags.names == ["seed"] and list(index.tag) == [0, -1, -1, -1]
    assert all(math.isnan(s) for s in index.score)
    stats = index.stats[0]
    assert (stats.kept, stats.rejected, stats.errors) == (2, 1, 1)
    assert stats.bad_lines == 1  # the cut line of rejected.jsonl is passed over and counted
    lines = index.read([3, 1, 0])  # any order, read back by offset
    assert lines[0]["item"] == "i9" and lines[1]["messages"][0]["content"] == "ünïcode" and lines[2]["id"] == "a"


def test_error_kind_is_short_and_groupable():
    assert error_kind({"error": "HTTP 429: slow down", "status": 429}) == "HTTP 429"
    assert error_kind({"error": "", "status": 503}) == "HTTP 503"
    assert error_kind({}) == "error"
    assert len(error_kind({"error": "x" * 500})) == 60


# ---------------------------------------------------------------- diff.py

def test_rounds_compare_curated_ids_and_mark_rows(rounds: Path):
    data = ViewData(rounds)
    diffs = [(d.round, d.run, d.previous_run, d.kept, d.new, d.dropped, d.kept_again) for d in data.diffs]
    assert diffs == [("round1", "round1/curate", "round0/augment", 3, 0, 3, 3),
                     ("round10", "round10", "round1/curate", 3, 2, 2, 1)]
    x = data.index

    def changes(run_name: str) -> dict[str, str]:
        r = [run.name for run in data.layout.runs].index(run_name)
        return {x.ids[i]: ("", "new", "kept_again", "dropped")[x.change[i]] for i in np.flatnonzero(x.run == r)}

    assert changes("round10") == {"c1": "kept_again", "c3": "new", "c4": "new", "c0": "dropped"}
    assert changes("round1/curate") == {"c0": "kept_again", "c1": "kept_again", "c2": "kept_again",
                                        "c3": "dropped", "c4": "dropped"}
    assert set(changes("round0/augment").values()) == {""}  # the first round compares with nothing


def test_representative_is_the_curate_run_else_the_last_with_records(rounds: Path):
    layout = discover(rounds)
    assert representative(layout.runs_of("round0")).name == "round0/augment"  # the model has no records
    assert representative(layout.runs_of("round1")).name == "round1/curate"
    assert representative([r for r in layout.runs if r.is_train]) is None


# ---------------------------------------------------------------- query.py

def test_query_parse_rejects_bad_values():
    assert Query.parse({}) == Query()
    assert Query.parse({"min_score": "4", "limit": "10", "q": "  tea "}).q == "tea"
    for params, name in (({"outcome": "maybe"}, "outcome"), ({"min_score": "high"}, "min_score"),
                         ({"max_score": "nan"}, "max_score"), ({"limit": "0"}, "limit"),
                         ({"limit": "501"}, "limit"), ({"offset": "-1"}, "offset"), ({"sort": "id"}, "sort"),
                         ({"change": "gone"}, "change")):
        with pytest.raises(QueryError, match=name):
            Query.parse(params)


def test_filters_select_rows(rounds: Path):
    data = ViewData(rounds)

    def ids(**params) -> list[str]:
        return [data.index.ids[i] for i in select(data.index, data.layout, Query.parse(params), data.searcher)]

    assert len(ids()) == 8 + 5 + 4
    assert ids(outcome="error") == ["e0"]
    assert ids(outcome="rejected", reason="below_threshold") == ["c3", "c4", "c0"]
    assert ids(reason="no_such_reason") == [] and ids(tag="no_such_tag") == []
    assert ids(tag="augmented") == [f"c{i}" for i in range(6)] + ["x"]
    assert ids(round="round10") == ["c1", "c3", "c4", "c0"]
    assert ids(run="round1/curate", outcome="kept") == ["c0", "c1", "c2"]
    assert ids(round="round1", run="round10") == []
    assert ids(change="new") == ["c3", "c4"] and ids(change="dropped") == ["c3", "c4", "c0"]
    assert ids(min_score="3", max_score="4") == ["c3", "c0"]  # rows without a score are left out
    assert ids(round="round1", sort="score") == ["c4", "c3", "c0", "c1", "c2"]
    assert ids(round="round1", sort="-score")[:3] == ["c0", "c1", "c2"] and ids(sort="-score")[-1] == "e0"


def test_pages_and_records(rounds: Path):
    data = ViewData(rounds)
    first = data.records({"limit": "5"})
    second = data.records({"limit": "5", "offset": "5"})
    assert first["total"] == second["total"] == 17
    assert [r["row"] for r in first["rows"] + second["rows"]] == list(range(10))
    assert data.records({"offset": "100"})["rows"] == []
    row = data.records({"outcome": "error"})["rows"][0]
    assert (row["outcome"], row["reason"], row["text"], row["score"]) == ("error", "HTTP 500", "a page", None)
    kept = data.records({"run": "round1/curate", "outcome": "kept", "limit": "1"})["rows"][0]
    assert (kept["score"], kept["score_expected"], kept["change"]) == (5, pytest.approx(4.9), "kept_again")
    whole = data.record(kept["row"])
    assert whole["record"]["reason"] == "fine\nScore: 5" and whole["run"] == "round1/curate"
    assert data.record(-1) is None and data.record(len(data.index)) is None
    summary = data.summary()
    assert summary["facets"]["outcome"] == {"kept": 12, "rejected": 4, "error": 1}
    assert summary["facets"]["change"] == {"new": 2, "kept_again": 4, "dropped": 3}
    assert summary["facets"]["score"] == [2.0, 5.0]
    assert [r["has_records"] for r in summary["runs"]] == [True, False, True, True]


def test_preview_is_one_short_line():
    assert preview(rec("a", user="  two\nlines ")) == "two lines"
    assert len(preview(rec("a", user="w " * 500))) == 240
    assert preview({"item": "i", "error": "x", "input": "the seed"}) == "the seed"


# ---------------------------------------------------------------- search.py

def test_search_finds_visible_text_only(tmp_path: Path):
    folder = run(tmp_path / "chat", "selfchat",
                 [rec("a", user='Say "Hello"\nplease'), rec("b", user="Grüße aus Köln"),
                  rec("c", assistant="TEA time"), rec("d", user="nothing here")],
                 [rec("e", user="tea?", reject="refusal")])
    data = ViewData(folder)

    def found(phrase: str, **params) -> list[str]:
        rows = select(data.index, data.layout, Query.parse({"q": phrase, **params}), data.searcher)
        return [data.index.ids[i] for i in rows]

    assert found("tea") == ["c", "e"]             # case-insensitive, kept and rejected
    assert found("tea", outcome="kept") == ["c"]  # with the other filters
    assert found('"hello"') == ["a"]              # a quote, stored escaped in JSON
    assert found('hello"\nPLEASE') == ["a"]     # a newline, stored as \n
    assert found("köln") == ["b"] and found("KÖLN") == ["b"]  # non-ASCII as UTF-8, any case
    assert found("content") == [] and found("role") == []  # JSON keys are not text
    assert found("refusal") == ["e"]              # the reason is shown, so it is found
    assert found("  ") == ["a", "b", "c", "d", "e"]


def test_search_reads_escaped_non_ascii_and_caches(tmp_path: Path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (folder / "data.jsonl").write_text(json.dumps(rec("a", user="café au lait")) + "\n")  # ensure_ascii: \u00e9
    (folder / "rejected.jsonl").write_text("")
    data = ViewData(folder)
    searcher = Searcher(data.index, cache_size=1)
    rows = np.arange(len(data.index))
    assert list(searcher.match("CAFÉ", rows)) == [0]
    assert list(searcher.match("café", rows)) == [0] and len(searcher._cache) == 1  # the older one left
    assert "café au lait" in visible_text(data.index.read([0])[0])


def test_search_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from generators.outputs.view import search
    lines = [rec(f"r{i}", user=f"line {i} " + ("needle" if i % 3 == 0 else "hay") + " x" * (i % 7)) for i in range(40)]
    data = ViewData(run(tmp_path / "run", "selfchat", lines))
    expected = [f"r{i}" for i in range(40) if i % 3 == 0]
    for chunk in (5, 7, 64, 1 << 24):  # a chunk shorter than a line, and one holding every line
        monkeypatch.setattr(search, "CHUNK", chunk)
        mask = Searcher(data.index).candidates("NEEDLE")
        assert [data.index.ids[i] for i in np.flatnonzero(mask)] == expected, chunk
