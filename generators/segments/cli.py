"""`gen segments`: prepare a corpus once, for every later `gen backtranslate --segments`."""
from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from generators.core.flags import from_options, options
from generators.inputs.corpus import SegmentFilterConfig
from generators.segments.stage import SegmentsSettings, run_segments


@click.command("segments")
@options(SegmentsSettings, stop="out")
@options(SegmentFilterConfig)  # the segment filters' flags, declared on its fields
@options(SegmentsSettings, start="out")
def segments_command(**kwargs: Any) -> None:
    """Read a corpus, cut it into segments, filter and deduplicate them, and write the kept ones
    as Parquet files with the count of each drop reason.

    \b
    gen segments --corpus corpus.jsonl --out runs/segs
    gen segments --corpus clueweb --corpus-dir /data/ClueWeb22_B --workers 63 --out runs/segs
    gen segments --corpus clueweb --executor ray --ray-address HEAD:6379 --workers 500 --out /shared/segs
    gen backtranslate --segments runs/segs --backend openai --model backward --out runs/aug
    """
    segments = SegmentFilterConfig.from_flags(kwargs)
    source = click.get_current_context().get_parameter_source("ray_address")
    if kwargs.get("executor") != "ray" and source is not ParameterSource.COMMANDLINE:
        kwargs["ray_address"] = None  # $RAY_ADDRESS is for runs on Ray; --ray-address alone is refused
    settings = from_options(SegmentsSettings, kwargs, segments=segments)
    manifest = run_segments(settings)
    seg = manifest.get("segments", {})
    rejected = ", ".join(f"{k} {v}" for k, v in seg.get("rejected", {}).items() if v) or "none"
    click.echo(f"{settings.out}: {seg.get('documents', 0)} documents, {seg.get('segments', 0)} segments, "
               f"{seg.get('kept', 0)} kept in {manifest.get('files', 0)} files (dropped: {rejected})")
