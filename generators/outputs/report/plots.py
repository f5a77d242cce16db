"""The report's figures (matplotlib, Agg: no display needed). Each function writes one PNG and
returns its path, or None when there is nothing to draw (e.g. no scores in a self-chat run)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from generators.outputs.report.load import RunData  # noqa: E402
from generators.outputs.report.training import curve  # noqa: E402

MAX_REASONS = 8
plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def scores(runs: Sequence[RunData], path: Path) -> Path | None:
    """Score histogram per run (all rated records, kept and rejected), and the expected scores."""
    rated = [r for r in runs if r.scores]
    if not rated:
        return None
    with_expected = [r for r in rated if r.expected]
    fig, axes = plt.subplots(1, 2 if with_expected else 1, figsize=(10 if with_expected else 6, 3.6), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / len(rated)
    for i, run in enumerate(rated):
        counts = np.bincount(run.scores, minlength=6)[1:6]
        share = counts / max(counts.sum(), 1)
        bars = ax.bar(np.arange(1, 6) + (i - (len(rated) - 1) / 2) * width, share, width, label=run.name)
        if len(rated) <= 3:
            ax.bar_label(bars, labels=[str(c) for c in counts], fontsize=7, padding=1)
    ax.set(xlabel="score", ylabel="share of rated records", title="Scores (1-5)", xticks=range(1, 6))
    ax.legend(fontsize=7)
    if with_expected:
        ax = axes[0][1]
        bins = np.linspace(1, 5, 17)
        for run in with_expected:
            ax.hist(run.expected, bins=bins, histtype="step", linewidth=1.5, label=run.name,
                    weights=np.full(len(run.expected), 1 / len(run.expected)))
        ax.set(xlabel="expected score (from logprobs)", ylabel="share", title="Expected scores")
        ax.legend(fontsize=7)
    return _save(fig, path)


def lengths(runs: Sequence[RunData], path: Path) -> Path | None:
    """Instruction and output lengths (words) of the kept records, per run."""
    shown = [r for r in runs if r.instruction_words or r.output_words]
    if not shown:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, attr, title in ((axes[0], "instruction_words", "Instruction length (first user turn)"),
                            (axes[1], "output_words", "Output length (assistant turns)")):
        values = [v for r in shown for v in getattr(r, attr)]
        if not values:
            ax.set_visible(False)
            continue
        low, top = max(min(values), 1), max(max(values), 2)
        bins = np.unique(np.geomspace(low, max(top + 1, low * 2), 30).round())
        for run in shown:
            data = getattr(run, attr)
            if data:
                ax.hist(data, bins=bins, histtype="step", linewidth=1.5,
                        label=f"{run.name} (median {int(np.median(data))})")
        ax.set_xscale("log")
        ax.set(xlabel="words (log scale)", ylabel="kept records", title=title)
        ax.legend(fontsize=7)
    return _save(fig, path)


def outcomes(runs: Sequence[RunData], path: Path) -> Path | None:
    """Kept, errors and each rejection reason, per run (stacked horizontal bars)."""
    if not any(r.kept or r.rejected or r.errors for r in runs):
        return None
    totals: dict[str, int] = {}
    for run in runs:
        for reason, n in run.reasons.items():
            totals[reason] = totals.get(reason, 0) + n
    main = [reason for reason, _ in sorted(totals.items(), key=lambda kv: -kv[1])[:MAX_REASONS]]
    columns = ["kept", *[f"rejected: {r}" for r in main]]
    if len(totals) > len(main):
        columns.append("rejected: other")
    columns.append("errors")
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * len(runs) + 0.25 * len(columns)))
    left = np.zeros(len(runs))
    colors = ["#ff7f0e", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8"]
    for j, column in enumerate(columns):
        values = np.array([_column(run, column, main) for run in runs], dtype=float)
        color = "#2ca02c" if column == "kept" else "#d62728" if column == "errors" else colors[(j - 1) % len(colors)]
        ax.barh([r.name for r in runs], values, left=left, label=column, color=color)
        left += values
    ax.invert_yaxis()
    ax.set(xlabel="records", title="Kept vs rejected by reason")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside, never on the axis label
    return _save(fig, path)


def _column(run: RunData, column: str, main: list[str]) -> int:
    if column == "kept":
        return run.kept
    if column == "errors":
        return run.errors
    if column == "rejected: other":
        return sum(n for reason, n in run.reasons.items() if reason not in main)
    return run.reasons.get(column.removeprefix("rejected: "), 0)


def usage(runs: Sequence[RunData], path: Path) -> Path | None:
    """Prompt and completion tokens per run, and cost where known."""
    if not any(r.usage.get("prompt_tokens") or r.usage.get("completion_tokens") for r in runs):
        return None
    costs = [r.usage.get("cost_usd") for r in runs]
    fig, axes = plt.subplots(1, 2 if any(c is not None for c in costs) else 1, figsize=(10, 3.4), squeeze=False)
    ax = axes[0][0]
    names = [r.name for r in runs]
    prompt = np.array([r.usage.get("prompt_tokens") or 0 for r in runs], dtype=float)
    completion = np.array([r.usage.get("completion_tokens") or 0 for r in runs], dtype=float)
    ax.bar(names, prompt, label="prompt")
    ax.bar(names, completion, bottom=prompt, label="completion")
    ax.set(ylabel="tokens", title="Token usage")
    ax.tick_params(axis="x", rotation=30 if len(runs) > 3 else 0)
    ax.legend(fontsize=7)
    if axes.shape[1] > 1:
        ax = axes[0][1]
        bars = ax.bar(names, [c or 0 for c in costs], color="#9467bd")
        ax.bar_label(bars, labels=["unknown" if c is None else f"${c:.4g}" for c in costs], fontsize=7)
        ax.set(ylabel="dollars", title="Cost (price unknown: shown as 0)")
        ax.tick_params(axis="x", rotation=30 if len(runs) > 3 else 0)
    return _save(fig, path)


def rounds(labels: Sequence[str], kept: Sequence[int], mean_scores: Sequence[float | None],
           overlaps: Sequence[float | None], path: Path) -> Path | None:
    """Across rounds: kept records, mean score, and overlap of kept ids with the round before."""
    if len(labels) < 2:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    x = np.arange(len(labels))
    axes[0].bar(x, kept, color="#2ca02c")
    axes[0].set(title="Kept records", xticks=x, xticklabels=labels)
    means = [np.nan if m is None else m for m in mean_scores]
    axes[1].plot(x, means, marker="o")
    axes[1].set(title="Mean score (rated records)", xticks=x, xticklabels=labels, ylim=(1, 5),
                xlim=(-0.5, len(labels) - 0.5))
    values = [np.nan if o is None else o for o in overlaps]
    axes[2].bar(x, values, color="#1f77b4")
    axes[2].set(title="Kept ids shared with previous round\n(Jaccard)", xticks=x, xticklabels=labels, ylim=(0, 1))
    for ax in axes:
        ax.tick_params(axis="x", rotation=30 if len(labels) > 4 else 0)
    return _save(fig, path)


def training(runs: Sequence[RunData], path: Path) -> Path | None:
    """Training loss against step, one line per train run (backward models dashed); held-out
    losses as crosses where the run evaluated."""
    curves = [(run, *curve(run)) for run in runs]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, (run, steps, losses) in enumerate(curves):
        backward = run.manifest.get("direction") == "backward"
        label = f"{run.name} (backward)" if backward and "backward" not in run.name else run.name
        marker = "osD^v<>p"[i % 8] if len(steps) <= 30 else None  # hollow, distinct: equal curves stay visible
        (line,) = ax.plot(steps, losses, linestyle="--" if backward else "-", marker=marker, markersize=7 - i % 4,
                          markerfacecolor="none", label=label)
        evals = [(p.get("step"), p.get("loss")) for p in (run.manifest.get("losses") or {}).get("eval_history") or []
                 if isinstance(p, dict) and p.get("loss") is not None]
        final = ((run.manifest.get("losses") or {}).get("eval") or {}).get("loss")
        if final is not None:
            evals.append((steps[-1], final))
        if evals:
            ax.plot([s for s, _ in evals], [v for _, v in evals], linestyle="none", marker="x", markersize=6,
                    color=line.get_color(), label=f"{label} held-out")
    ax.set(xlabel="optimizer step", ylabel="loss (weighted token CE)", title="Training loss")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def quality(labels: Sequence[str], lines: dict[str, list[float | None]], path: Path) -> Path | None:
    """Quality by round: each eval metric (all on 0..1) as a line over the rounds that measured it."""
    drawn = {name: values for name, values in lines.items() if any(v is not None for v in values)}
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    x = np.arange(len(labels))
    for name, values in drawn.items():
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.plot([i for i, _ in points], [v for _, v in points], marker="o", label=name)
    ax.axhline(0.5, color="#999999", linewidth=0.8, linestyle=":")  # chance for AUC and win rate
    ax.set_xticks(x, labels)
    ax.set(ylim=(0, 1.02), xlabel="round", ylabel="0..1", title="Quality by round")
    ax.legend(fontsize=7)
    return _save(fig, path)
