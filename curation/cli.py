"""`gen curate`: Humpback self-curation (or an external judge), with filters, dedup and
decontamination before any request is sent."""
from __future__ import annotations

from typing import Any

import click

from generators.core.embeddings import EmbedSettings
from generators.core.filtering import filter_options, filter_values
from generators.core.flags import from_options, options
from generators.core.options import RunOptions, model_options
from generators.core.report_line import print_summary

from curation.filters import RECORD_FILTERS
from curation.settings import CurateSettings
from curation.stage import run_curate
from curation.select import SelectConfig


@click.command("curate")
@options(CurateSettings, stop="adapter")
@options(SelectConfig)
@options(CurateSettings, start="adapter", stop="out")
@filter_options(RECORD_FILTERS)
@options(EmbedSettings)
@options(CurateSettings, start="out")
@model_options
def curate_command(**kwargs: Any) -> None:
    """Rate records 1-5 with a model (Humpback self-curation) and keep the best.

    \b
    gen curate --input runs/aug/data.jsonl --backend openai --base-url http://127.0.0.1:8000/v1 \\
        --model judge --threshold 5 --concurrency 16 --out runs/cur
    gen curate --input runs/aug --backend hf --model BASE --adapter runs/m0 --threshold 4 --out runs/cur0
    """
    opts = RunOptions.from_kwargs(kwargs)
    filters = filter_values(RECORD_FILTERS, kwargs)
    settings = from_options(CurateSettings, kwargs, select=from_options(SelectConfig, kwargs), filters=filters,
                            embed=from_options(EmbedSettings, kwargs))
    manifest = run_curate(settings, opts)
    print_summary(settings.out, manifest)
    scores = manifest.get("scores") or {}
    if scores.get("rated"):
        hist = " ".join(f"{k}:{v}" for k, v in scores["histogram"].items())
        click.echo(f"scores {hist} (mean {scores['mean']}" +
                   (f", expected {scores['mean_expected']}" if scores.get("mean_expected") is not None else "") + ")")
