"""The report's diversity section (generators.core.diversity): per run, or per round of a rounds
folder. It needs baleen[embed]; without it the section says so in one line and the report is
otherwise whole. The embeddings are cached in each run folder, so a second report embeds nothing."""
from __future__ import annotations

from pathlib import Path

from generators.core import diversity
from generators.core.embeddings import EmbedSettings, Embeddings
from generators.core.errors import UsageError


def section(root: Path, embed: EmbedSettings | None, figure: Path, out: Path) -> list[str]:
    """The Markdown lines of the section; the plot goes to `figure`."""
    lines = ["", "## Diversity", ""]
    if embed is None:
        return lines + ["Not measured (--no-diversity)."]
    try:
        Embeddings(embed, None).check_installed("the diversity section")
    except UsageError as exc:
        return lines + [f"Not measured: {exc.message}."]
    _, rows, figures = diversity.measure(root, lambda group: Embeddings(embed, group.path), threshold=embed.threshold)
    if not rows:
        return lines + ["(no records)"]
    lines += ["Over the kept records of each run (each round's curate run, else its last run with records): "
              "distinct word uni/bigrams over all of them, of the instructions and of the answers; mean cosine "
              "of every pair of instruction embeddings (" + embed.embed_model + "); how many of the k-means "
              "clusters (k = sqrt(n), seeded) hold 90% of the records; share of records nearer than "
              f"cosine {embed.threshold} to another. Above {diversity.MAX_RECORDS} records a run is a seeded "
              "sample. `gen eval diversity` writes the same figures with a results file.", ""]
    lines += diversity.table(figures)
    made = diversity.plot(rows, figure)
    if made is not None:
        lines += ["", f"![diversity]({made.relative_to(out.parent).as_posix()})", "",
                  "The instructions' embeddings projected on their first two principal components."]
    return lines
