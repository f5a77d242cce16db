"""Compose report.md: tables from the loaded runs, and the figures from plots.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from generators.core.accounting import cache_read_share
from generators.core.embeddings import EmbedSettings
from generators.outputs.report import diversity, plots, quality, training
from generators.outputs.report.load import Layout, RunData

FIGURES = "report_files"


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _cost(value: Any) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def representative(runs: Sequence[RunData]) -> RunData | None:
    """The run that stands for a round in comparisons: its curate run, else its last run with
    records; None when the round only trained models."""
    data = [r for r in runs if r.has_records]
    curated = [r for r in data if r.stage == "curate"]
    return (curated or data or [None])[-1]


def compare(rounds: Sequence[tuple[str, RunData]]) -> list[dict[str, Any]]:
    """What changed from each round to the next: counts, mean score, kept ids in common."""
    rows: list[dict[str, Any]] = []
    previous: RunData | None = None
    for label, run in rounds:
        row: dict[str, Any] = {"round": label, "run": run.name, "kept": run.kept, "mean": run.mean_score(),
                               "kept_mean": run.mean_score(kept_only=True), "shared": None, "jaccard": None,
                               "new": None, "dropped": None, "delta_kept": None, "delta_mean": None}
        if previous is not None:
            shared = run.kept_ids & previous.kept_ids
            union = run.kept_ids | previous.kept_ids
            row.update(shared=len(shared), jaccard=len(shared) / len(union) if union else None,
                       new=len(run.kept_ids - previous.kept_ids), dropped=len(previous.kept_ids - run.kept_ids),
                       delta_kept=run.kept - previous.kept)
            if row["mean"] is not None and previous.mean_score() is not None:
                row["delta_mean"] = row["mean"] - previous.mean_score()
        rows.append(row)
        previous = run
    return rows


def write_report(root: Path, layout: Layout, out: Path, embed: EmbedSettings | None = None) -> list[Path]:
    """Write out (report.md) and its PNGs under out.parent/report_files; return the PNG paths.
    `embed`: the model of the diversity section (None: no section of it)."""
    figures = out.parent / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    runs = [run for _, group in layout.rounds for run in group]
    data = [run for run in runs if run.has_records]
    trained = [run for run in runs if run.is_train]
    made: dict[str, Path | None] = {
        "scores": plots.scores(data, figures / "scores.png"),
        "lengths": plots.lengths(data, figures / "lengths.png"),
        "outcomes": plots.outcomes(data, figures / "outcomes.png"),
        "usage": plots.usage(data, figures / "usage.png"),
        "training": plots.training(trained, figures / "training.png"),
    }
    chosen = [(label, representative(group)) for label, group in layout.rounds]
    rows = compare([(label, run) for label, run in chosen if run is not None])
    if layout.kind == "rounds":
        made["rounds"] = plots.rounds([r["round"] for r in rows], [r["kept"] for r in rows],
                                      [r["mean"] for r in rows], [r["jaccard"] for r in rows],
                                      figures / "rounds.png")
    lines = [f"# baleen report: {root}", ""]
    lines.append(f"{'One run' if layout.kind == 'run' else f'{len(layout.rounds)} rounds, {len(runs)} runs'}; "
                 "read from manifest.json and the JSONL records.")
    lines += ["", "## Runs", "",
              "| run | stage | status | kept | rejected | errors | mean score | kept mean | tokens in / out | cost | time |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        lines.append(_run_row(run))
    lines += _requests(data)
    lines += _reasoning(data)
    lines += _ratings(data)
    bad = [run for run in runs if run.bad_lines]
    if bad:
        lines += ["", "Unreadable lines skipped: " + ", ".join(f"{r.name} {r.bad_lines}" for r in bad) + "."]
    if data:
        lines += _data_sections(data, made, out)
        lines += diversity.section(root, embed, figures / "diversity.png", out)
        if (figures / "diversity.png").is_file():
            made["diversity"] = figures / "diversity.png"
    if trained:
        lines += ["", "## Training", "", "One row per `gen train` run, from its manifest: examples / supervised "
                  "tokens per tag, examples dropped, held-out loss at the end (per tag where several).", ""]
        lines += training.table(trained)
        lines += _figure(made["training"], out, None, "Training loss at the logged steps, one line per train run "
                         "(backward models dashed); held-out losses as crosses.")
    measured = quality.collect(layout.rounds)
    if measured:
        made["quality"] = plots.quality([r["round"] for r in measured], quality.series(measured),
                                        figures / "quality.png")
        lines += ["", "## Quality by round", "",
                  "From the `gen eval` runs of each round (their manifests): backward = M_yx writing the "
                  "instructions of held-out answers (ROUGE-L F1 against the real ones, share passing the "
                  "post-filters, exact match); curation = the round's model rating held-out pairs against "
                  "negatives made from them (ROC AUC, unparsed ratings, precision / recall of score >= 5 and "
                  ">= 4); win rate = the round's model against the previous one, judged in both orders.", ""]
        lines += quality.table(measured)
        lines += _figure(made["quality"], out, None, "Dotted line: chance (0.5) for AUC and win rate.")
    if layout.kind == "rounds" and rows:
        lines += ["", "## Between rounds", "",
                  "Each round is represented by its curate run (else its last run with records).", "",
                  "| round | run | kept | change | mean score | change | kept ids shared with previous | Jaccard | new | dropped |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in rows:
            lines.append(f"| {row['round']} | {row['run']} | {_num(row['kept'])} | {_signed(row['delta_kept'])} | "
                         f"{_num(row['mean'])} | {_signed(row['delta_mean'])} | {_num(row['shared'])} | "
                         f"{_num(row['jaccard'])} | {_num(row['new'])} | {_num(row['dropped'])} |")
        lines += _figure(made.get("rounds"), out, None, None)
    out.write_text("\n".join(lines) + "\n", "utf-8")
    return [p for p in made.values() if p is not None]


def _run_row(run: RunData) -> str:
    """A row of the runs table; a train run has no records, so "-" rather than 0 kept."""
    u, m = run.usage, run.manifest
    records = ["-"] * 5 if not run.has_records else [
        _num(run.kept), _num(run.rejected), _num(run.errors), _num(run.mean_score()),
        _num(run.mean_score(kept_only=True))]
    duration = run.duration
    return (f"| {run.name} | {run.stage} | {m.get('status', '?')} | " + " | ".join(records) + " | "
            f"{_num(u.get('prompt_tokens'))} / {_num(u.get('completion_tokens'))} | "
            f"{'-' if not run.has_records and not u else _cost(u.get('cost_usd'))} | "
            f"{'-' if duration is None else f'{duration:.1f}s'} |")


RETRIED_COLUMNS = (("429", "429"), ("5xx", "5xx"), ("timeout", "timeout"), ("bad_body", "bad body"),
                   ("connection", "connection"), ("other", "other"))


def _requests(data: Sequence[RunData]) -> list[str]:
    """What each run sent: answered and cached requests, every try on the wire, the tries sent
    again by cause, and requests that got no answer (the numbers --concurrency and --rpm are tuned
    from). Manifests older than these counts show "-"."""
    if not data:
        return []
    lines = ["", "## Requests", "",
             "Attempts are the tries sent to the server: answered and failed requests plus every retried try "
             "(by cause). Tokens and cost come from answers only. Prompt from cache: the share of prompt tokens "
             "the provider's prompt cache served (billed at the cached rate), where it reported any.", "",
             "| run | requests | cached | attempts | " + " | ".join(f"retried {label}" for _, label in RETRIED_COLUMNS)
             + " | failed | prompt from cache |", "|---|" + "---:|" * (5 + len(RETRIED_COLUMNS))]
    for run in data:
        u = run.usage
        counted = "attempts" in u
        retried = u.get("retried") if isinstance(u.get("retried"), dict) else {}
        cells = [_num(u.get("requests")), _num(u.get("cached")), _num(u.get("attempts")) if counted else "-"]
        cells += [_num(int(retried.get(cause) or 0)) if counted else "-" for cause, _ in RETRIED_COLUMNS]
        cells.append(_num(u.get("failed_requests")))
        share = cache_read_share(u)
        cells.append("-" if share is None else f"{share:.0%}")
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return lines


def _reasoning(data: Sequence[RunData]) -> list[str]:
    """The thinking of reasoning models, for the runs that had any: of the output tokens (and
    priced with them), how many were spent thinking."""
    runs = [run for run in data if run.usage.get("reasoning_tokens")]
    if not runs:
        return []
    lines = ["", "## Reasoning", "",
             "Reasoning tokens are part of the output tokens and are priced with them.", "",
             "| run | output tokens | reasoning tokens | share |", "|---|---:|---:|---:|"]
    for run in runs:
        out, thought = int(run.usage.get("completion_tokens") or 0), int(run.usage["reasoning_tokens"])
        share = f"{thought / out:.0%}" if out else "-"
        lines.append(f"| {run.name} | {_num(out)} | {_num(thought)} | {share} |")
    return lines


def _ratings(data: Sequence[RunData]) -> list[str]:
    """The curate runs' ratings: how many answers could not be read (manifest "rating")."""
    rated = [run for run in data if isinstance(run.manifest.get("rating"), dict)]
    if not rated:
        return []
    lines = ["", "## Ratings", "",
             "Rater answers read and not read (unparsed after every retry); constrained: the guide the "
             "requests carried (--constrained); told: ratings that needed the retry which sent the "
             "unreadable answer back.", "",
             "| run | stage | answered | unparsed | unparsed share | told | constrained |",
             "|---|---|---:|---:|---:|---:|---|"]
    for run in rated:
        r = run.manifest["rating"]
        share = r.get("unparsed_share")
        lines.append(f"| {run.name} | {run.stage} | {_num(r.get('answered'))} | {_num(r.get('unparsed'))} | "
                     f"{'-' if share is None else f'{100 * share:.1f}%'} | {_num(r.get('told'))} | "
                     f"{r.get('constrained') or 'off'} |")
    return lines


def _data_sections(data: Sequence[RunData], made: dict[str, Path | None], out: Path) -> list[str]:
    """Scores, lengths, outcomes and usage of the runs that make records."""
    lines = _figure(made["scores"], out, "Scores", "Share of rated records at each score (counts on the bars), "
                    "kept and rejected together; right: the rater's expected score where logprobs were given.")
    lines += _figure(made["lengths"], out, "Lengths", "Words in the instruction (first user turn) and in the "
                     "assistant turns of the kept records.")
    lines += _figure(made["outcomes"], out, "Kept vs rejected", "Every input item ends kept, rejected (by reason) "
                     "or as an error.")
    lines += _reasons(data)
    lines += _figure(made["usage"], out, "Tokens and cost", "From each manifest (all sessions of a run; cached "
                     "answers cost nothing).")
    return lines


def _signed(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if isinstance(value, float) else f"{value:+,}"


def _figure(path: Path | None, out: Path, title: str | None, caption: str | None) -> list[str]:
    lines = ["", f"## {title}", ""] if title else [""]
    if path is None:
        return lines + ["(nothing to plot)"] if title else []
    rel = path.relative_to(out.parent).as_posix()
    lines.append(f"![{title or path.stem}]({rel})")
    if caption:
        lines += ["", caption]
    return lines


def _reasons(runs: Sequence[RunData]) -> list[str]:
    reasons = sorted({reason for run in runs for reason in run.reasons})
    if not reasons:
        return []
    lines = ["", "| reason | " + " | ".join(r.name for r in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for reason in reasons:
        lines.append(f"| {reason} | " + " | ".join(_num(run.reasons.get(reason, 0)) for run in runs) + " |")
    return lines
