"""How the exported data was made, from what the runs already wrote down: each run's manifest
(stage, models, adapters, prompt templates with their hashes, filters and thresholds, counts by
reason, score histogram, tokens and cost, versions) and each round's lineage.json.

Two products: `document()`, the whole story as one JSON object (provenance.json, and what the card
is written from), and `record_columns()`, the few facts that differ per record (which model,
adapter, prompt and rater made this one, in which round).

Manifests differ by stage and grow over time, so every field is read defensively: a missing one
is left out, never an error.
"""
from __future__ import annotations

import time
from typing import Any

from generators.core.filtering import meanings
from generators.core.records import Record
from generators.core.manifest import versions
from generators.outputs.export.source import Run, Source

# settings keys that hold filters and thresholds, in the stages that have them
FILTER_KEYS = ("filters", "max_seed_chars", "segments", "postfilter", "select", "decontaminate", "dedup")
ROLE = {"selfchat": "assistant", "backtranslate": "backward model", "curate": "rater"}
RECORD_COLUMNS = ("round", "stage", "model", "user_model", "adapter", "template",
                  "rater", "rater_adapter", "rater_template")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def record_columns(record: Record, source: Source) -> dict[str, str | None]:
    """Who made this record: its generator (meta) and its rater (meta.curation), and its round."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    curation = meta.get("curation") if isinstance(meta.get("curation"), dict) else {}
    return {"round": source.round, "stage": source.stage,
            "model": _text(meta.get("model")), "user_model": _text(meta.get("user_model")),
            "adapter": _text(meta.get("adapter")), "template": _text(meta.get("template")),
            "rater": _text(curation.get("rater")), "rater_adapter": _text(curation.get("adapter")),
            "rater_template": _text(curation.get("template"))}


# ---------------------------------------------------------------- one run

def models(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The models a run used, each with its role, backend and adapter."""
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    stage = str(manifest.get("stage") or "")
    found: list[dict[str, Any]] = []
    if stage == "train":
        base = manifest.get("base_model") or settings.get("base")
        if base:
            found.append({"role": f"base ({manifest.get('direction') or settings.get('direction') or 'forward'})",
                          "model": str(base)})
        return found
    if settings.get("model"):
        found.append({"role": ROLE.get(stage, "model"), "model": str(settings["model"]),
                      "backend": settings.get("backend"), "adapter": settings.get("adapter")})
    if settings.get("user_model"):
        found.append({"role": "user simulator", "model": str(settings["user_model"]),
                      "backend": settings.get("backend")})
    rater = settings.get("rater")
    if isinstance(rater, dict) and rater.get("model"):
        found.append({"role": "rater", "model": str(rater["model"]), "backend": rater.get("backend"),
                      "adapter": rater.get("adapter"), "score_mode": rater.get("score_mode")})
    return [{k: v for k, v in m.items() if v is not None} for m in found]


def templates(manifest: dict[str, Any]) -> list[str]:
    """Every prompt template a run names, as 'name@hash' (its wording's hash), in order, once."""
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    rater = settings.get("rater") if isinstance(settings.get("rater"), dict) else {}
    named = manifest.get("templates") if isinstance(manifest.get("templates"), dict) else {}
    found: list[str] = []
    for value in (settings.get("template"), rater.get("template"), *named.values()):
        for part in str(value).split(",") if isinstance(value, str) else ():
            if part.strip() and part.strip() not in found:
                found.append(part.strip())
    return found


def filters(manifest: dict[str, Any]) -> dict[str, Any]:
    """Filters and thresholds (generation stages), or what a training run was given and weighted."""
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    if manifest.get("stage") == "train":
        picked = {"data": settings.get("data"), "seed_data": settings.get("seed_data"),
                  "seed_limit": settings.get("seed_limit"), "weights": manifest.get("weights"),
                  "tag_texts": manifest.get("tag_texts")}
    else:
        picked = {key: settings.get(key) for key in FILTER_KEYS}
        if isinstance(manifest.get("filters"), dict):  # the filters of the last judgement, apart from settings
            picked["filters"] = manifest["filters"]
    return {k: v for k, v in picked.items() if v not in (None, {}, [])}


def inputs(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the run read: seeds, corpus, input records or training data."""
    found = {key: manifest.get(key) for key in ("seeds", "corpus", "input") if isinstance(manifest.get(key), dict)}
    return {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in found.items()}


def describe_run(run: Run) -> dict[str, Any]:
    manifest = run.manifest
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    by_reason = counts.get("rejected_by_reason") if isinstance(counts.get("rejected_by_reason"), dict) else {}
    written = manifest.get("reasons") if isinstance(manifest.get("reasons"), dict) else {}
    out: dict[str, Any] = {
        "label": run.label, "path": str(run.path), "round": run.round, "stage": run.stage,
        "status": manifest.get("status"), "models": models(manifest), "templates": templates(manifest),
        "filters": filters(manifest), "inputs": inputs(manifest),
        "counts": {k: counts.get(k) for k in ("kept", "rejected", "errors") if k in counts} or None,
        "rejected_by_reason": dict(by_reason) or None,
        "reasons": {r: written.get(r) or meanings([r])[r] for r in by_reason} or None,
        "scores": manifest.get("scores") if isinstance(manifest.get("scores"), dict) else None,
        "usage": manifest.get("usage") if isinstance(manifest.get("usage"), dict) else None,
        "training_data": manifest.get("data") if run.stage == "train" and isinstance(manifest.get("data"), dict) else None,
        "duration_s": manifest.get("duration_s"),
        "versions": manifest.get("versions") if isinstance(manifest.get("versions"), dict) else None,
    }
    return {k: v for k, v in out.items() if v not in (None, [], {})}


def totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and cost over every run; cost is None when a run that used tokens had no price."""
    total = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    priced = True
    for run in runs:
        usage = run.get("usage") or {}
        for key in ("requests", "prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(key), (int, float)):
                total[key] += usage[key]
        cost = usage.get("cost_usd")
        if isinstance(cost, (int, float)):
            total["cost_usd"] += cost
        elif usage.get("prompt_tokens") or usage.get("completion_tokens"):
            priced = False
    total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    total["cost_usd"] = round(total["cost_usd"], 6) if priced else None
    return total


def document(source: Source, *, export: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    """provenance.json: the export's own settings and counts, every run behind it, the rounds."""
    runs = [describe_run(r) for r in source.runs]
    return {"made_by": "baleen gen export", "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "input": {"path": str(source.input), "kind": source.kind, "records": str(source.data),
                      "stage": source.stage, "round": source.round},
            "export": export, "counts": counts, "runs": runs, "rounds": source.lineage,
            "totals": totals(runs), "versions": versions()}
