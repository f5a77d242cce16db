"""`gen eval diversity RUN`: how diverse a run's (or each round's) data is, by words and by meaning.

No model is asked anything: the instructions are embedded (baleen[embed], cached in each measured
run folder's embeddings.sqlite) and measured by generators.core.diversity. The folder --out gets
  results.jsonl   one row per record (sampled above MAX_RECORDS per run): group, id, status,
                  instruction, answer, nearest_cosine, mean_cosine, cluster, x, y
  diversity.png   the 2-D projection, kept vs rejected (and by round)
  manifest.json   stage eval-diversity, the settings and the figures ("metrics"), which
                  generators.core.diversity.figures recomputes from results.jsonl alone
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from generators.core import diversity
from generators.core.embeddings import EmbedSettings, Embeddings
from generators.core.io import atomic_lines, dumps
from generators.core.manifest import Manifest
from generators.core.store import lock_folder

RESULTS = "results.jsonl"
PLOT = "diversity.png"


def run_diversity(root: Path, out: Path, embed: EmbedSettings, seed: int = 0) -> dict[str, Any]:
    """Measure `root` (a run or rounds folder) into `out`; returns the manifest."""
    Embeddings(embed, None).check_installed("gen eval diversity")
    kind, chosen = diversity.groups(root)  # a folder with no run is one line before --out exists
    lock = lock_folder(out)
    try:
        _, rows, figures = diversity.measure(root, lambda group: Embeddings(embed, group.path), seed=seed,
                                             threshold=embed.threshold)
        atomic_lines(out / RESULTS, (dumps(row) for row in rows))
        plotted = diversity.plot(rows, out / PLOT)
        fields = {"settings": {"input": str(root), "layout": kind, "runs": {g.label: str(g.path) for g in chosen},
                               "model": embed.embed_model, "threshold": embed.threshold, "seed": seed,
                               "max_records": diversity.MAX_RECORDS},
                  "results": RESULTS, "plot": PLOT if plotted else None, "metrics": figures}
        return Manifest(out, "eval-diversity").write("complete", fields)
    finally:
        lock.release()
