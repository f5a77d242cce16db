"""The Training section: one table row per `gen train` run, read from its manifest (training/trainer.py
snapshot(): data, progress, losses, throughput, memory)."""
from __future__ import annotations

from typing import Any, Sequence

from generators.outputs.report.load import RunData

TAGS = ("seed", "augmented", "none")


def _n(value: Any, digits: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:,.{digits}f}" if digits or isinstance(value, float) else f"{value:,}"


def _get(manifest: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        manifest = manifest.get(key) if isinstance(manifest, dict) else None
    return manifest


def _tag_cell(manifest: dict[str, Any], tag: str) -> str:
    counts = _get(manifest, "data", "train", tag)
    if not isinstance(counts, dict):
        return "-"
    return f"{_n(counts.get('examples'))} / {_n(counts.get('supervised_tokens'))}"


def _dropped(manifest: dict[str, Any]) -> str:
    total = _get(manifest, "data", "dropped_total")
    reasons = _get(manifest, "data", "dropped") or {}
    detail = ", ".join(f"{k} {_n(v)}" for k, v in sorted(reasons.items()) if v) if isinstance(reasons, dict) else ""
    return f"{_n(total)} ({detail})" if detail else _n(total)


def _eval(manifest: dict[str, Any]) -> str:
    """Final held-out loss (and per tag), else the last one logged during training."""
    final = _get(manifest, "losses", "eval") or {}
    history = _get(manifest, "losses", "eval_history") or []
    if final.get("loss") is None and history and isinstance(history[-1], dict):
        final = history[-1]
    per_tag = final.get("per_tag") or {}
    detail = ", ".join(f"{k} {_n(v, 3)}" for k, v in sorted(per_tag.items())) if len(per_tag) > 1 else ""
    return f"{_n(final.get('loss'), 3)} ({detail})" if detail else _n(final.get("loss"), 3)


def _memory(manifest: dict[str, Any]) -> str:
    memory = manifest.get("memory") or {}
    parts = [f"{label} {_n(memory.get(key))} MB" for key, label in
             (("cuda_max_allocated_mb", "GPU"), ("cpu_max_rss_mb", "RSS")) if memory.get(key) is not None]
    return ", ".join(parts) or "-"


def row(run: RunData, tags: Sequence[str]) -> str:
    """One Markdown table row for a train run."""
    m = run.manifest
    step, total = _get(m, "progress", "step"), _get(m, "progress", "total_steps")
    steps = f"{_n(step)} / {_n(total)}" if total is not None and total != step else _n(step)
    cells = [run.name, str(m.get("direction") or "-"), *(_tag_cell(m, tag) for tag in tags), _dropped(m), steps,
             _n(_get(m, "losses", "final_train_loss"), 3), _eval(m), _n(_get(m, "throughput", "tokens_per_s"), 1),
             _memory(m)]
    return "| " + " | ".join(cells) + " |"


def table(runs: Sequence[RunData]) -> list[str]:
    """The table of train runs; tag columns only for tags some run trained on."""
    tags = [t for t in TAGS if any(isinstance(_get(r.manifest, "data", "train", t), dict) for r in runs)] or ["none"]
    header = ["run", "direction", *(f"{t}: examples / supervised tokens" for t in tags), "dropped", "steps",
              "final train loss", "held-out loss", "tokens/s", "peak memory"]
    return ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2),
            *(row(run, tags) for run in runs)]


def curve(run: RunData) -> tuple[list[int], list[float]]:
    """(steps, losses) of the logged training loss."""
    points = [(p["step"], p["loss"]) for p in _get(run.manifest, "losses", "history") or []
              if isinstance(p, dict) and isinstance(p.get("step"), int) and isinstance(p.get("loss"), (int, float))]
    return [s for s, _ in points], [float(v) for _, v in points]
