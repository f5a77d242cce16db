"""`gen report DIR`: report.md and PNG plots for a run folder or a folder of rounds."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from generators.core.embeddings import EmbedSettings
from generators.core.errors import UsageError
from generators.core.flags import from_options, options


@click.command("report")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report file (default: FOLDER/report.md; figures go to report_files/ beside it).")
@click.option("--no-diversity", is_flag=True, help="Leave out the diversity section (it embeds the instructions "
              "with baleen[embed], cached in each run folder).")
@options(EmbedSettings, stop="semantic_dedup")
def report_command(folder: Path, out: Path | None, no_diversity: bool, **kwargs: Any) -> None:
    """Markdown report with plots: scores, lengths, kept vs rejected by reason, tokens and cost,
    training (data per tag, losses, throughput, memory of `gen train` runs), diversity (with baleen[embed])
    and what changed between rounds.

    \b
    gen report runs/cur          # one run folder (any stage)
    gen report runs/rounds       # round0/, round1/, ... each a run folder or a folder of runs
    """
    from generators.outputs.report.load import discover
    from generators.outputs.report.markdown import write_report

    layout = discover(folder)
    out = out or folder / "report.md"
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {out}: is a folder; give a file name such as report.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    embed = None if no_diversity else from_options(EmbedSettings, kwargs)
    figures = write_report(folder, layout, out, embed)
    click.echo(f"report: {out} ({len(figures)} figures in {out.parent / 'report_files'})")
