"""The merges of `gen segments` (exact keys, band buckets) decide the same whatever the size of
their hash ranges: ranges of MERGE_ROWS rows (one range on a small corpus) against ranges of one
shard's rows each (many ranges, every boundary crossed), which is how the merge was cut before."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from generators.inputs.corpus import sharded
from tests.backtranslate_fixtures import plain_pages, write_corpus


def prepare(corpus: Path, out: Path) -> tuple[list[dict], dict]:
    from generators.cli import gen

    gen.main(args=["segments", "--corpus", str(corpus), "--out", str(out), "--shard-docs", "4"],
             prog_name="gen", standalone_mode=False)
    kept = [row for path in sorted(out.glob("segments-*.parquet")) for row in pq.read_table(path).to_pylist()]
    return kept, json.loads((out / "manifest.json").read_text("utf-8"))["counts"]


def test_ranges_by_rows_and_ranges_by_shard_keep_the_same_segments(tmp_path, monkeypatch):
    pages = plain_pages(40)
    pages += pages[5:11]  # exact copies, in later shards
    pages += [p.replace("</p>", " and one more word.</p>") for p in pages[20:24]]  # near copies
    corpus = write_corpus(tmp_path / "c.jsonl", pages)

    one_range, counts = prepare(corpus, tmp_path / "by-rows")
    monkeypatch.setattr(sharded, "MERGE_ROWS", 1)  # ranges of one shard's rows: about one per shard (13 shards)
    many_ranges, counts_many = prepare(corpus, tmp_path / "by-shard")

    assert counts["rejected_by_reason"].get("duplicate", 0) > 0
    assert counts["rejected_by_reason"].get("near_duplicate", 0) > 0
    assert counts == counts_many
    assert [r["id"] for r in one_range] == [r["id"] for r in many_ranges] and one_range == many_ranges
