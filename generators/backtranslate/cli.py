"""`gen backtranslate`: Humpback self-augmentation over a web corpus with the backward model."""
from __future__ import annotations

from typing import Any, Callable

import click

from generators.inputs.corpus import SegmentFilterConfig
from generators.core.embeddings import EmbedSettings
from generators.core.flags import from_options, options
from generators.core.options import RunOptions, model_options
from generators.core.report_line import print_summary
from generators.core.filtering import filter_options, filter_values
from generators.backtranslate.postfilter import INSTRUCTION_FILTERS
from generators.backtranslate.stage import BacktranslateSettings, run_backtranslate


def postfilter_options(func: Callable) -> Callable:
    """The post-filter flags (declared on their filter classes), shared with `gen eval backward`
    (which judges the same way)."""
    return filter_options(INSTRUCTION_FILTERS)(func)


def postfilter_config(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The post-filter flag values, popped from a command's keyword arguments."""
    return filter_values(INSTRUCTION_FILTERS, kwargs)


@click.command("backtranslate")
@options(BacktranslateSettings, stop="gpu_memory_utilization")
@options(SegmentFilterConfig)  # the segment filters' flags, declared on its fields
@postfilter_options
@options(EmbedSettings, stop="semantic_threshold")  # --embed-model, for --meaning-checks
@options(BacktranslateSettings, start="gpu_memory_utilization")
@model_options
def backtranslate_command(**kwargs: Any) -> None:
    """Humpback: the backward model writes the instruction each web segment answers.

    \b
    gen backtranslate --corpus corpus.jsonl --backend openai \\
        --base-url http://127.0.0.1:8000/v1 --model backward --concurrency 16 --out runs/aug
    gen backtranslate --corpus clueweb --corpus-dir /data/ClueWeb22_B --shard 0/8 \\
        --backend vllm --model BASE --adapter runs/myx --concurrency 256 --out runs/aug-0
    gen segments --corpus clueweb --corpus-dir /data/ClueWeb22_B --out runs/segs
    gen backtranslate --segments runs/segs --backend openai --model backward --out runs/aug
    gen backtranslate --corpus clueweb --corpus-dir /data/ClueWeb22_B --backend vllm --model BASE \\
        --adapter runs/myx --executor ray --workers 8 --gpus-per-worker 1 --out runs/aug
    """
    opts = RunOptions.from_kwargs(kwargs)
    segments = SegmentFilterConfig.from_flags(kwargs)
    postfilter = postfilter_config(kwargs)
    embed = from_options(EmbedSettings, kwargs)
    settings = from_options(BacktranslateSettings, kwargs, segments=segments, postfilter=postfilter, embed=embed)
    manifest = run_backtranslate(settings, opts)
    print_summary(settings.out, manifest)
    seg = manifest.get("segments", {})
    rejected = ", ".join(f"{k} {v}" for k, v in seg.get("rejected", {}).items() if v) or "none"
    click.echo(f"corpus: {seg.get('documents', 0)} documents, {seg.get('segments', 0)} segments, "
               f"{seg.get('kept', 0)} passed the filters (rejected: {rejected})")
