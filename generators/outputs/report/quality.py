"""The "Quality by round" section: what `gen eval` measured in each round, read from the eval
runs' manifests (metrics). Backward ROUGE-L says whether M_yx writes the instructions real users
wrote; curation AUC whether the rater tells true pairs from bad ones; the win rate whether M_k
answers better than M_(k-1)."""
from __future__ import annotations

from typing import Any, Sequence

from generators.outputs.report.load import RunData

STAGES = {"backward": "eval-backward", "curation": "eval-curation", "winrate": "eval-winrate"}


def collect(rounds: Sequence[tuple[str, Sequence[RunData]]]) -> list[dict[str, Any]]:
    """One row per round that has an eval run: its metrics by kind (the last run of each kind)."""
    rows = []
    for label, runs in rounds:
        found = {kind: next((r for r in reversed(runs) if r.stage == stage and r.metrics), None)
                 for kind, stage in STAGES.items()}
        if any(found.values()):
            rows.append({"round": label, **{kind: (run.metrics if run else None) for kind, run in found.items()}})
    return rows


def _n(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{100 * value:.0f}%"


def _pr(curation: dict[str, Any], t: str) -> str:
    cell = (curation.get("threshold") or {}).get(t) or {}
    return f"{_n(cell.get('precision'))} / {_n(cell.get('recall'))}"


def _win(winrate: dict[str, Any]) -> str:
    if winrate.get("win_rate") is None:
        return "-"
    ci = winrate.get("ci95")
    interval = f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
    return f"{_pct(winrate['win_rate'])}{interval} of {winrate.get('judged')}"


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| round | backward ROUGE-L | passes post-filters | exact match | curation AUC | unparsed | "
             "precision / recall at 5 | at 4 | win rate vs previous [95% CI] | words: model / previous | "
             "length-controlled |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        b, c, w = row["backward"] or {}, row["curation"] or {}, row["winrate"] or {}
        lengths = f"{_n(w.get('answer_words'), 1)} / {_n(w.get('baseline_words'), 1)}" if w else "-"
        lines.append(f"| {row['round']} | {_n(b.get('rouge_l'), 3)} | {_pct(b.get('passed_share'))} | "
                     f"{_pct(b.get('exact_match'))} | {_n(c.get('auc'), 3)} | {_pct(c.get('unparsed_share'))} | "
                     f"{_pr(c, '5') if c else '-'} | {_pr(c, '4') if c else '-'} | {_win(w)} | {lengths} | "
                     f"{_pct(w.get('length_controlled'))} |")
    return lines


def series(rows: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    """The plotted lines: backward ROUGE-L, curation AUC and win rate per round (None: not measured)."""
    def get(kind: str, key: str) -> list[float | None]:
        return [(row[kind] or {}).get(key) for row in rows]
    return {"backward ROUGE-L": get("backward", "rouge_l"), "curation AUC": get("curation", "auc"),
            "win rate vs previous": get("winrate", "win_rate")}
