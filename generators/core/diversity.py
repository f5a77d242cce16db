"""How diverse a run's data is: the figures `gen eval diversity` and `gen report` show.

For each group (a run folder, or each round of a rounds folder), over its kept records:
  distinct-1 / distinct-2   distinct word uni/bigrams over all uni/bigrams, of the instructions
                            (first user turn) and of the answers (assistant turns)
  mean cosine               mean cosine of every pair of instruction embeddings: exact, from
                            the sum of the normalised vectors ((|sum|^2 - n) / (n (n - 1)))
  clusters for 90%          k-means (faiss, seeded, k = round(sqrt(n))) over the embeddings: how
                            many of the largest clusters hold 90% of the records (more: more
                            spread out)
  near share                share of records whose nearest other record has cosine at or above
                            --semantic-threshold (the candidates of --semantic-dedup: an upper
                            bound on what it drops, since its pair test keeps some of them)
Above MAX_RECORDS records a group is a seeded random sample of that many (said in the figures).

Every row of the results file carries what the figures need (texts, status, group, nearest
cosine, cluster, 2-D projection), and `figures(rows)` computes them from the rows alone, so the
figures are recomputable from results.jsonl without the model.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from generators.core.embeddings import SEMANTIC_THRESHOLD, Embeddings, missing_extra
from generators.core.io import read_json, read_lines
from generators.core.run_folders import ManifestFacts, find_runs, is_run_folder
from generators.core.text import words

MAX_RECORDS = 5000
COVER = 0.9


@dataclass
class Group(ManifestFacts):
    label: str
    path: Path
    manifest: dict[str, Any]


def groups(root: Path) -> tuple[str, list[Group]]:
    """("run", [the run]) or ("rounds", [one run per round: its curate run, else its last run
    with records]); a UsageError when there is none."""
    kind, rounds = find_runs(root)
    chosen: list[Group] = []
    for label, runs in rounds:
        candidates = [Group(label if kind == "rounds" else name, path,
                            read_json(path / "manifest.json", what="run manifest") or {})
                      for name, path in runs if is_run_folder(path)]
        candidates = [g for g in candidates if g.has_records]
        curated = [g for g in candidates if g.stage == "curate"]
        if candidates:
            chosen.append((curated or candidates)[-1])
    return kind, chosen


def _turns(record: dict[str, Any], role: str) -> list[str]:
    return [str(m.get("content") or "") for m in record.get("messages") or []
            if isinstance(m, dict) and m.get("role") == role]


def read_rows(group: Group, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The group's kept and rejected records as rows ({group, id, status, instruction, answer}),
    each status sampled down to MAX_RECORDS (seeded); and how many of each there were."""
    rows: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    for status, name in (("kept", "data.jsonl"), ("rejected", "rejected.jsonl")):
        found = []
        for _, record in read_lines(group.path / name):
            users = _turns(record, "user")
            if not isinstance(record, dict) or not users:
                continue
            found.append({"group": group.label, "id": str(record.get("id")), "status": status,
                          "reject": record.get("reject"), "instruction": users[0],
                          "answer": "\n".join(_turns(record, "assistant"))})
        totals[status] = len(found)
        if len(found) > MAX_RECORDS:
            found = [found[i] for i in sorted(random.Random(seed).sample(range(len(found)), MAX_RECORDS))]
        rows += found
    return rows, totals


def distinct(texts: Sequence[str], n: int) -> float | None:
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        tokens = words(text)
        grams.update(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    return round(len(grams) / total, 4) if total else None


def _kmeans(vectors: np.ndarray, seed: int) -> np.ndarray:
    n = len(vectors)
    k = max(1, min(n, round(math.sqrt(n))))
    if k == 1:
        return np.zeros(n, dtype=int)
    try:
        import faiss
    except ImportError:
        raise missing_extra("diversity") from None
    km = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=seed, verbose=False, min_points_per_centroid=1,
                      max_points_per_centroid=1 << 20)
    km.train(vectors)
    _, labels = km.index.search(vectors, 1)
    return labels[:, 0].astype(int)


def project(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components (PCA by SVD), for the plot."""
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    centered = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T


def annotate(rows: list[dict[str, Any]], vectors: np.ndarray, seed: int = 0) -> None:
    """Add to each row, within its group's kept rows: the nearest other's cosine, the mean cosine
    to the others and the k-means cluster; to every row, its 2-D projection (all groups together)."""
    xy = project(vectors)
    for row, (x, y) in zip(rows, xy):
        row["x"], row["y"] = round(float(x), 5), round(float(y), 5)
    for label in dict.fromkeys(r["group"] for r in rows):
        index = [i for i, r in enumerate(rows) if r["group"] == label and r["status"] == "kept"]
        if not index:
            continue
        v = vectors[index]
        n = len(index)
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        nearest = sims.max(axis=1) if n > 1 else np.full(n, np.nan)
        total = v.sum(axis=0)
        mean_to_others = (v @ total - 1.0) / (n - 1) if n > 1 else np.full(n, np.nan)
        clusters = _kmeans(v, seed)
        for j, i in enumerate(index):
            rows[i]["nearest_cosine"] = None if n < 2 else round(float(nearest[j]), 5)
            rows[i]["mean_cosine"] = None if n < 2 else round(float(mean_to_others[j]), 5)
            rows[i]["cluster"] = int(clusters[j])


def figures(rows: Sequence[dict[str, Any]], threshold: float = SEMANTIC_THRESHOLD,
            totals: dict[str, dict[str, int]] | None = None) -> dict[str, dict[str, Any]]:
    """{group: its figures}, from the rows alone (the results file)."""
    out: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(r["group"] for r in rows):
        kept = [r for r in rows if r["group"] == label and r["status"] == "kept"]
        near = [r["nearest_cosine"] for r in kept if r.get("nearest_cosine") is not None]
        means = [r["mean_cosine"] for r in kept if r.get("mean_cosine") is not None]
        sizes = sorted(Counter(r["cluster"] for r in kept if r.get("cluster") is not None).values(), reverse=True)
        covered, need = 0, 0
        for size in sizes:
            if covered >= COVER * len(kept):
                break
            covered += size
            need += 1
        shown = (totals or {}).get(label, {})
        out[label] = {
            "kept": len(kept), "rejected": sum(1 for r in rows if r["group"] == label and r["status"] == "rejected"),
            "sampled": any(shown.get(s, 0) > MAX_RECORDS for s in ("kept", "rejected")),
            "distinct_1_instructions": distinct([r["instruction"] for r in kept], 1),
            "distinct_2_instructions": distinct([r["instruction"] for r in kept], 2),
            "distinct_1_answers": distinct([r["answer"] for r in kept], 1),
            "distinct_2_answers": distinct([r["answer"] for r in kept], 2),
            "mean_cosine": round(sum(means) / len(means), 4) if means else None,
            "clusters": len(sizes), "clusters_90": need if sizes else None,
            "near_share": round(sum(1 for c in near if c >= threshold) / len(near), 4) if near else None,
            "threshold": threshold,
        }
    return out


def measure(root: Path, embeddings_for: Any, seed: int = 0, threshold: float = SEMANTIC_THRESHOLD
            ) -> tuple[str, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(layout kind, results rows, figures) of a run or rounds folder. `embeddings_for(group)`
    gives the Embeddings whose cache is that run's folder (so a rerun embeds nothing again)."""
    kind, chosen = groups(root)
    rows: list[dict[str, Any]] = []
    totals: dict[str, dict[str, int]] = {}
    parts = []
    for group in chosen:
        found, totals[group.label] = read_rows(group, seed)
        embeddings: Embeddings = embeddings_for(group)
        parts.append(embeddings.encode([r["instruction"] for r in found]) if found else None)
        rows += found
    vectors = np.concatenate([p for p in parts if p is not None]) if rows else np.zeros((0, 1), np.float32)
    annotate(rows, vectors, seed)
    return kind, rows, figures(rows, threshold, totals)


def rows_of(path: Path) -> Iterator[dict[str, Any]]:
    for _, row in read_lines(path):
        yield row


FIGURE_LABELS = (("kept", "kept"), ("distinct_1_instructions", "distinct-1 instr."),
                 ("distinct_2_instructions", "distinct-2 instr."), ("distinct_1_answers", "distinct-1 answers"),
                 ("distinct_2_answers", "distinct-2 answers"), ("mean_cosine", "mean cosine"),
                 ("clusters_90", "clusters for 90%"), ("near_share", "near share"))


def table(figs: dict[str, dict[str, Any]]) -> list[str]:
    """The figures as a Markdown table, one row per group."""
    lines = ["| run | " + " | ".join(label for _, label in FIGURE_LABELS) + " |",
             "|---|" + "---:|" * len(FIGURE_LABELS)]
    for label, fig in figs.items():
        cells = []
        for key, _ in FIGURE_LABELS:
            value = fig.get(key)
            cells.append("-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value)))
        lines.append(f"| {label}{' (sampled)' if fig.get('sampled') else ''} | " + " | ".join(cells) + " |")
    return lines


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """The 2-D projection: kept and rejected records, and for several groups, coloured by group."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["group"] for r in rows))
    panels = 2 if len(labels) > 1 else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for status, colour in (("rejected", "tab:red"), ("kept", "tab:blue")):
        chosen = [r for r in rows if r["status"] == status]
        if chosen:
            ax.scatter([r["x"] for r in chosen], [r["y"] for r in chosen], s=8, alpha=0.5, c=colour,
                       label=f"{status} ({len(chosen)})")
    ax.set(title="Instructions, kept vs rejected (PCA of embeddings)", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=7)
    if panels == 2:
        ax = axes[0][1]
        for label in labels:
            chosen = [r for r in rows if r["group"] == label and r["status"] == "kept"]
            ax.scatter([r["x"] for r in chosen], [r["y"] for r in chosen], s=8, alpha=0.5, label=label)
        ax.set(title="Kept instructions by round", xlabel="PC 1", ylabel="PC 2")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
