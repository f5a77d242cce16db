"""The few lines a stage prints when it ends: where the data is and what happened."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def print_summary(out: Path, manifest: dict[str, Any]) -> None:
    counts = manifest.get("counts", {})
    usage = manifest.get("usage", {})
    reasons = counts.get("rejected_by_reason") or {}
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])) or "none"
    cost = usage.get("cost_usd")
    click.echo(f"data: {out / 'data.jsonl'}")
    click.echo(f"kept {counts.get('kept', 0)}, rejected {counts.get('rejected', 0)} ({by_reason}), "
               f"errors {counts.get('errors', 0)}" + (f" (see {out / 'errors.jsonl'})" if counts.get("errors") else ""))
    retried = {cause: n for cause, n in (usage.get("retried") or {}).items() if n}
    tries = (f", {usage.get('attempts', 0)} attempts, retried " + ", ".join(f"{c} {n}" for c, n in retried.items())
             if retried else "")
    failed = f", failed {usage['failed_requests']}" if usage.get("failed_requests") else ""
    click.echo(f"requests {usage.get('requests', 0)} (+{usage.get('cached', 0)} from cache{tries}{failed}), tokens "
               f"{usage.get('prompt_tokens', 0)} in / {usage.get('completion_tokens', 0)} out, cost "
               + ("unknown" if cost is None else f"${cost:.4f}")
               + f", time {manifest.get('duration_s', 0):.1f}s")
