"""README.md for an export: a Hugging Face data set card written from provenance.document().

The YAML header is what `datasets.load_dataset(DEST)` and the hub read: `configs` names each
split's files, so the folder loads the same way locally and once pushed. The licence cannot be
known from the runs (it depends on the seeds, the web pages and the models' terms), so the header
holds a placeholder and the body says, first, to fill it in. The YAML is written by hand: it is
small, and every value in it is either fixed or JSON-quoted (JSON strings are YAML strings).
"""
from __future__ import annotations

import json
from typing import Any

LICENCE_PLACEHOLDER = "fill-me-in"


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def yaml_header(title: str, files: dict[str, str], records: int, splits: dict[str, int] | None = None,
                checksums: dict[str, dict[str, Any]] | None = None) -> str:
    """The front matter: configs/data_files per split, the licence placeholder, and dataset_info
    with each split's size and each file's checksum (the content, so that `datasets`, which
    caches a local folder by its name and this header, never serves another export's rows)."""
    lines = ["---", f"pretty_name: {json.dumps(title)}",
             "license: other  # fill in: the licence of this data (see Licence below)",
             f"license_name: {LICENCE_PLACEHOLDER}",
             "task_categories:", "- text-generation",
             "tags:", "- synthetic", "- baleen",
             "size_categories:", f"- {size_category(records)}",
             "configs:", "- config_name: default", "  data_files:"]
    for split, pattern in files.items():
        lines += [f"  - split: {split}", f"    path: {json.dumps(pattern)}"]
    if splits:
        lines += ["dataset_info:", "  splits:"]
        for split, n in splits.items():
            lines += [f"  - name: {split}", f"    num_examples: {n}"]
        if checksums:
            lines += [f"  dataset_size: {sum(c['num_bytes'] for c in checksums.values())}", "  download_checksums:"]
            for name, c in checksums.items():
                lines += [f"    {json.dumps(name)}:", f"      num_bytes: {c['num_bytes']}",
                          f"      checksum: {json.dumps(c['checksum'])}"]
    return "\n".join([*lines, "---"])


def _code(value: Any) -> str:
    return f"`{value}`"


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else ("-" if value is None else str(value))


def _cost(value: Any) -> str:
    return f"${value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "unknown"


def _models(run: dict[str, Any]) -> str:
    parts = []
    for m in run.get("models") or []:
        extra = [str(m["backend"])] if m.get("backend") else []
        if m.get("adapter"):
            extra.append(f"adapter `{m['adapter']}`")
        parts.append(f"{m['role']} `{m['model']}`" + (f" ({', '.join(extra)})" if extra else ""))
    return "; ".join(parts) or "-"


def _usage(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "-"
    tokens = usage.get("total_tokens")
    if tokens is None and (usage.get("prompt_tokens") is not None or usage.get("completion_tokens") is not None):
        tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    cached = f", {_number(usage.get('cached'))} cached" if usage.get("cached") else ""
    return (f"{_number(usage.get('requests'))} requests{cached}; {_number(tokens)} tokens "
            f"({_number(usage.get('prompt_tokens'))} prompt + {_number(usage.get('completion_tokens'))} completion); "
            f"cost {_cost(usage.get('cost_usd'))}")


def runs_table(runs: list[dict[str, Any]]) -> list[str]:
    rows = ["| run | stage | models | prompt templates | kept | rejected | tokens | cost |",
            "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        counts, usage = run.get("counts") or {}, run.get("usage") or {}
        rows.append(f"| {run['label']} | {run['stage']} | {_models(run)} | "
                    f"{', '.join(map(_code, run.get('templates') or [])) or '-'} | {_number(counts.get('kept'))} | "
                    f"{_number(counts.get('rejected'))} | {_number(usage.get('total_tokens'))} | "
                    f"{_cost(usage.get('cost_usd')) if usage else '-'} |")
    return rows


def run_section(run: dict[str, Any]) -> list[str]:
    """One run in detail: what a reader needs to redo it or judge it."""
    out = [f"### {run['label']}: {run['stage']} ({run.get('status') or 'status unknown'})", "",
           f"- Models: {_models(run)}",
           f"- Prompt templates (name@hash of the wording): {', '.join(map(_code, run.get('templates') or [])) or '-'}"]
    for kind, value in (run.get("inputs") or {}).items():
        out.append(f"- {kind.capitalize()}: " + ", ".join(f"{k} `{v}`" for k, v in value.items()))
    counts = run.get("counts")
    if counts:
        out.append(f"- Kept {_number(counts.get('kept'))}, rejected {_number(counts.get('rejected'))}, "
                   f"errors {_number(counts.get('errors'))}")
    if run.get("usage"):
        out.append(f"- Usage: {_usage(run['usage'])}")
    if run.get("duration_s") is not None:
        out.append(f"- Duration: {run['duration_s']} s")
    if run.get("versions"):
        out.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()))
    if run.get("filters"):
        title = "Training data and weights" if run["stage"] == "train" else "Filters and thresholds"
        out += ["", f"{title}:", "", "```json", json.dumps(run["filters"], indent=1, ensure_ascii=False), "```"]
    if run.get("rejected_by_reason"):
        out += ["", "| rejected because | records | meaning |", "|---|---|---|"]
        meanings = run.get("reasons") or {}
        for reason, n in sorted(run["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
            out.append(f"| {reason} | {_number(n)} | {meanings.get(reason) or '?'} |")
    scores = run.get("scores")
    if scores and isinstance(scores.get("histogram"), dict):
        keys = sorted(scores["histogram"], key=lambda k: (len(str(k)), str(k)))
        out += ["", "| score | " + " | ".join(map(str, keys)) + " | mean | mean expected |",
                "|---" * (len(keys) + 3) + "|",
                "| records | " + " | ".join(_number(scores["histogram"][k]) for k in keys)
                + f" | {_number(scores.get('mean'))} | {_number(scores.get('mean_expected'))} |"]
    if run.get("training_data"):
        out += ["", "Training examples per tag: " + json.dumps(run["training_data"].get("train"), ensure_ascii=False)]
    return out + [""]


def rounds_table(rounds: list[dict[str, Any]]) -> list[str]:
    rows = ["| round | rater | adapter trained | curated kept | curated rejected |", "|---|---|---|---|---|"]
    for r in rounds:
        curate = ((r.get("counts") or {}).get("curate") or {})
        rows.append(f"| {r.get('round') or r.get('folder')} | {_code(r['rater']) if r.get('rater') else '-'} | "
                    f"{_code((r.get('outputs') or {}).get('adapter')) if (r.get('outputs') or {}).get('adapter') else '-'} | "
                    f"{_number(curate.get('kept'))} | {_number(curate.get('rejected'))} |")
    return rows


FIELDS = {
    "sharegpt": "`conversations`: a list of `{from: system|human|gpt, value}`",
    "alpaca": "`instruction`, `input` (empty), `output` from the first exchange; `system` when there is one",
    "openai": "`messages`: a list of `{role: system|user|assistant, content}`, nothing else on the line",
    "messages": "the records as baleen writes them (`id`, `source`, `messages`, `tag`, `score`, ...) without `meta`",
    "dpo": "`prompt`, `chosen`, `rejected` (text, or lists of `{role, content}`), as TRL's DPOTrainer reads them",
    "hf": "`id`, `source`, `tag`, `messages` (list of `{role, content}`), `score`, `score_expected`, `reason`, "
          "and the provenance columns below",
}


def intro(doc: dict[str, Any], fmt: str, title: str) -> list[str]:
    counts, inp = doc["counts"], doc["input"]
    origin = (f"round `{inp['round']}` of the rounds folder `{inp['path']}`" if inp.get("round")
              else f"`{inp['path']}`")
    splits = ", ".join(f"{_number(n)} {name}" for name, n in counts["splits"].items())
    return [f"# {title}", "",
            (f"{_number(counts['exported'])} records ({splits}) exported with `gen export --format {fmt}` "
             f"from {origin} ({inp['records']}), on {doc['exported_at']}. The data was made by language "
             "models with baleen (Baize self-chat, Humpback instruction backtranslation and self-curation); "
             "every model, prompt, filter and round that made it is listed below."), ""]


def licence() -> list[str]:
    return ["## Licence", "",
            ("**Fill this in before you share the data.** The YAML header says `license: other` and "
             f"`license_name: {LICENCE_PLACEHOLDER}`: replace them with the licence of this data (a hub "
             "licence id such as `cc-by-4.0`, or `other` with your own `license_name` and `license_link`). "
             "It depends on where the seed questions or web pages came from and on the terms of use of the "
             "models that wrote and rated the text (listed under How it was made)."), ""]


def fields(fmt: str, include_rejected: bool) -> list[str]:
    out = ["## Fields", "", f"- {FIELDS[fmt]}"]
    if include_rejected and fmt != "openai":
        out.append("- `reject`: why a filter turned the record down (null for kept records)")
    where = ("the columns of every row" if fmt == "hf"
             else "`provenance.jsonl`, one line per row naming its `split` and `line`")
    return [*out,
            (f"- Per-record provenance, in {where}: `round`, `stage`, `model`, `user_model`, `adapter`, "
             "`template` (the prompt that made the record, name@hash), `rater`, `rater_adapter`, "
             "`rater_template`."),
            "- `provenance.json` holds everything on this card as JSON.", ""]


def how_it_was_made(doc: dict[str, Any]) -> list[str]:
    out = ["## How it was made", ""]
    if doc["runs"]:
        totals = doc["totals"]
        out += [*runs_table(doc["runs"]), "",
                (f"All runs together: {_number(totals['requests'])} requests, "
                 f"{_number(totals['total_tokens'])} tokens, cost {_cost(totals['cost_usd'])}."), ""]
    else:
        out += ["No manifest.json was found beside the records, so only the per-record provenance is known.", ""]
    if doc["rounds"]:
        out += ["Rounds (from each round's lineage.json):", "", *rounds_table(doc["rounds"]), ""]
    for run in doc["runs"]:
        out += run_section(run)
    return out


def render(doc: dict[str, Any], *, fmt: str, files: dict[str, str], load_from: str,
           checksums: dict[str, dict[str, Any]] | None = None) -> str:
    """The whole card: header, how to load it, the licence to fill in, the runs, this export."""
    title = f"baleen {doc['input'].get('stage') or 'records'} export ({fmt})"
    load = ["## Load it", "", "```python", "from datasets import load_dataset",
            f"ds = load_dataset({load_from!r})", "```", ""]
    splits = {name: n for name, n in doc["counts"]["splits"].items() if n}
    out = [yaml_header(title, files, doc["counts"]["exported"], splits, checksums), "", *intro(doc, fmt, title), *load, *licence(),
           *fields(fmt, bool(doc["export"].get("include_rejected"))), *how_it_was_made(doc), *export_section(doc, fmt)]
    return "\n".join(out).rstrip() + "\n"


REASONING_INLINE = "as a `<think>...</think>` block before the answer it led to"


def export_section(doc: dict[str, Any], fmt: str = "") -> list[str]:
    counts, export = doc["counts"], doc["export"]
    filters = export.get("filters") or {}
    used = [f"--{k.replace('_', '-')} " + (", ".join(map(str, v)) if isinstance(v, list)
                                            else f"{v:g}" if isinstance(v, float) else str(v))
            for k, v in filters.items() if v is not None]
    dropped = counts.get("dropped") or {}
    out = ["## This export", "",
           f"- Read {_number(counts['read'])} records; exported {_number(counts['exported'])}"
           + (f"; {_number(counts['rejected_included'])} of them rejected ones (--include rejected)"
              if export.get("include_rejected") else "") + ".",
           f"- Filters: {'; '.join(used) if used else 'none'}."
           + (" Dropped: " + ", ".join(f"{n} by {k}" for k, n in dropped.items()) + "." if dropped else ""),
           "- Split: " + ", ".join(f"{name} {fraction:g}" for name, fraction in export["split"].items())
           + f", seed {export['seed']}: a record's split is set by a hash of its id and the seed alone, so it "
             "stays in the same split on every export."]
    empty = [name for name, n in counts["splits"].items() if not n]
    if empty:
        out.append(f"- No record fell in {', '.join(empty)}: no file was written for it and it is not in the configs.")
    if counts.get("with_reasoning"):
        where = (REASONING_INLINE if fmt in ("sharegpt", "alpaca")
                 else "as `reasoning_content` on the assistant messages")
        out.append(f"- Reasoning included: {_number(counts['with_reasoning'])} records carry the teacher's thinking "
                   f"(made with --keep-reasoning), {where}.")
    if counts.get("skipped_no_answer"):
        out.append(f"- Skipped (no answer to learn from): {_number(counts['skipped_no_answer'])}.")
    if export.get("tag_texts"):
        out.append("- Tags as system sentences (--with-tags): "
                   + "; ".join(f"{tag}: \"{text}\"" for tag, text in export["tag_texts"].items()))
    return out + [""]
