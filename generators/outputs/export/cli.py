"""`gen export`: the flags, checked up front; the work is in run.py.

Flags are taken as plain strings and checked here, so every mistake (unknown format, bad
--split, a --round that is no number) is one line and exit 2, as everywhere in `gen`, rather
than click's multi-line usage text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from generators.core.errors import UsageError
from generators.core.flags import options
from generators.core.options import RunOptions
from generators.core.records import TAGS
from generators.outputs.export import formats, hub, split
from generators.outputs.export.stage import ExportSettings, export
from generators.outputs.export.select import Filters


def _number(flag: str, value: str | None, kind: type) -> float | int | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{flag} {value!r}: expected {what}") from None


def _tag_texts(with_tags: bool, pairs: tuple[str, ...], fmt: formats.Format) -> dict[str, str] | None:
    overrides: dict[str, str] = {}
    for pair in pairs:
        tag, eq, text = pair.partition("=")
        if not eq or tag not in TAGS or not text.strip():
            raise UsageError(f"--tag-text {pair!r}: expected TAG=TEXT with TAG one of {', '.join(TAGS)}")
        overrides[tag] = text
    if not (with_tags or overrides):
        return None
    if fmt.preferences:
        raise UsageError("--with-tags: dpo lines have no system turn to put the tag sentence in; drop --with-tags")
    return formats.tag_texts(overrides)


def settings_from_flags(*, input_path: Path | None, fmt: str | None, out: Path | None, include: tuple[str, ...],
                        tags: tuple[str, ...], sources: tuple[str, ...], min_score: str | None, split_spec: str | None,
                        seed: str, round_: str | None, with_tags: bool, tag_text: tuple[str, ...], force: bool,
                        repo: str | None, private: bool) -> ExportSettings:
    """Every flag checked, in the order a person fixes them; nothing is read yet."""
    if input_path is None:
        raise UsageError("--input is required: a run folder, a rounds folder or a .jsonl file of records")
    if fmt is None:
        raise UsageError(f"--format is required: one of {', '.join(formats.FORMATS)}")
    format_ = formats.get(fmt)
    if out is None:
        raise UsageError("--out is required: the folder to write the export to")
    unknown = [value for value in include if value != "rejected"]
    if unknown:
        raise UsageError(f"--include {unknown[0]!r}: the only choice is 'rejected' (kept records are always included)")
    if include and format_.preferences:
        raise UsageError("--include rejected: dpo exports preference lines, not records; drop --include")
    if private and not repo:
        raise UsageError("--private: only means something with --push-to-hub; add it or drop --private")
    bad_tags = [t for t in tags if t not in TAGS]
    if bad_tags:
        raise UsageError(f"--tag {bad_tags[0]!r}: unknown tag; known tags: {', '.join(TAGS)}")
    return ExportSettings(
        input=input_path, format=format_, out=out,
        filters=Filters(tags=tuple(tags), sources=tuple(sources),
                        min_score=_number("--min-score", min_score, float)),  # type: ignore[arg-type]
        include_rejected=bool(include), splits=split.parse(split_spec),
        seed=_number("--seed", seed, int),  # type: ignore[arg-type]
        round=_number("--round", round_, int),  # type: ignore[arg-type]
        tag_texts=_tag_texts(with_tags, tag_text, format_), force=force, repo=repo, private=private)


@click.command("export")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None,
              help="A run folder (reads its data.jsonl), a rounds folder (the latest round's curated data), "
                   "or a .jsonl file of records.")
@click.option("--format", "fmt", default=None, metavar="FORMAT",
              help=f"One of: {', '.join(formats.FORMATS)}.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The folder to write (made whole, or not at all).")
@click.option("--include", multiple=True, metavar="rejected",
              help="'rejected': also export rejected records, with their reason in `reject`.")
@click.option("--tag", "tags", multiple=True, help="Keep records with this tag (seed, augmented); repeatable.")
@click.option("--source", "sources", multiple=True, help="Keep records from this source; repeatable.")
@click.option("--min-score", default=None, metavar="N", help="Keep records scored N or more (unscored ones are dropped).")
@click.option("--split", "split_spec", default=None, metavar="NAME=F,...",
              help="Named fractions, e.g. train=0.98,test=0.02 (default: all in train).")
@click.option("--seed", default="0", metavar="N", help="Seed of the split (default 0).")
@click.option("--round", "round_", default=None, metavar="K", help="With a rounds folder: export round K, not the latest.")
@click.option("--with-tags", is_flag=True, help="Put each record's tag sentence in a system turn, as gen train does.")
@click.option("--tag-text", multiple=True, metavar="TAG=TEXT", help="Another sentence for a tag (implies --with-tags).")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty --out.")
@click.option("--push-to-hub", "repo", default=None, metavar="NAMESPACE/NAME",
              help="Upload the export to this Hugging Face data set repo (needs HF_TOKEN or `hf auth login`).")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repo private.")
@options(RunOptions, start="max_line_bytes")
def export_command(**flags: Any) -> None:
    """Write a run's records in the format another trainer reads, with a data set card that says how
    they were made (models, prompts with their hashes, filters, rounds, counts, tokens and cost).

    \b
    gen export --input runs/cur --format sharegpt --out exports/cur
    gen export --input runs/rounds --format hf --split train=0.98,test=0.02 --out exports/hf
    gen export --input runs/cur --format openai --with-tags --min-score 5 --out exports/openai
    """
    flags.pop("max_line_bytes")  # read by its flag's callback (every reader's limit)
    settings = settings_from_flags(**flags)
    token = hub.check(settings.repo) if settings.repo else None
    click.echo(export(settings, token).summary())
