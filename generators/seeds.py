"""Seed questions for `gen selfchat --seeds SOURCE` (DESIGN.md section 5, Baize).

A SOURCE is one of:
  - a named set as Baize used it: quora, stackoverflow, medquad, medqa (the USMLE set, not MedQuAD);
  - `hf:NAME[:CONFIG]:FIELD` (or `hf:NAME`) for any Hugging Face data set; NAME may be a local
    folder or data file that `datasets.load_dataset` understands;
  - a local file: .jsonl, .json, .csv, .tsv, .parquet, .txt (one seed per non-blank line).
Seeds are then cleaned (blank dropped, near-identical text deduplicated keeping the first),
shuffled with a fixed seed, split into disjoint shards, and cut to a limit, so that the same
command always yields the same seeds and machines given shards i/n never overlap.

The hub is unreachable in some places (this one included). We probe it for a few seconds before
loading, and without it load in offline mode so a cached copy still works and a missing one fails
at once with one line, instead of after minutes of retries.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import re
import socket
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

from .errors import FatalError, UsageError
from .records import iter_jsonl, stable_id


@dataclass(frozen=True)
class Seed:
    id: str        # stable_id("seed", normalized text)
    text: str
    source: str    # "quora" | "stackoverflow" | "medquad" | "medqa" | file stem | "hf:NAME"


@dataclass(frozen=True)
class _Named:
    hub: str
    field: str
    pick: Callable[[Any], Any] | None = None   # value of `field` -> seed text (for nested columns)


def _first_question(value: Any) -> Any:
    """Quora rows hold a pair: {"questions": {"id": [..], "text": [q1, q2]}}; Baize took q1."""
    if isinstance(value, dict) and isinstance(value.get("text"), list) and value["text"]:
        return value["text"][0]
    return value


NAMED: dict[str, _Named] = {
    "quora": _Named("quora", "questions", _first_question),
    "stackoverflow": _Named("pacovaldez/stackoverflow-questions", "title"),
    "medquad": _Named("AnonymousSub/MedQuAD_47441_Question_Answer_Pairs", "Questions"),
    "medqa": _Named("GBaker/MedQA-USMLE-4-options", "question"),
}
PREFERRED_FIELDS = ("question", "text", "title", "prompt", "instruction", "query")
FILE_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
# How `load_dataset` reads a single local file given as hf:PATH.
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
             ".parquet": "parquet", ".txt": "text", ".arrow": "arrow"}
HUB_PROBE_SECONDS = 3.0
_LOCAL_HINT = "pass a local file: --seeds questions.jsonl --field question"


# ---------------------------------------------------------------- public API

def parse_shard(text: str) -> tuple[int, int]:
    """'0/4' -> (0, 4): this machine takes shard 0 of 4."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UsageError(f"--shard {text!r}: expected I/N such as 0/4 (shard I of N, counting from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    _check_shard((index, count), text)
    return index, count


def load_seeds(spec: str, *, field: str | None = None, limit: int | None = None,
               shard: tuple[int, int] | None = None, seed: int = 0) -> list[Seed]:
    """Read, clean, shuffle, shard and limit the seeds named by `spec` (see the module doc)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: must be 1 or more")
    if shard is not None:
        _check_shard(shard, f"{shard[0]}/{shard[1]}")
    if not spec or not spec.strip():
        raise UsageError("--seeds is empty; give quora, stackoverflow, medquad, medqa, "
                         "hf:NAME:FIELD or a file (.jsonl .json .csv .tsv .parquet .txt)")
    spec = spec.strip()
    texts, source, where = _read_source(spec, field)
    seeds = _clean(texts, source)
    if not seeds:
        raise UsageError(f"{where}: no seeds after reading (every value blank); "
                         "check the file or pick another --field")
    random.Random(seed).shuffle(seeds)
    if shard is not None:
        index, count = shard
        seeds = [s for position, s in enumerate(seeds) if position % count == index]
    if limit is not None:
        seeds = seeds[:limit]
    return seeds


def normalize_text(text: str) -> str:
    """The key two texts share when they say the same thing: NFKC, casefold, one space between
    words, no surrounding punctuation or quotes ('What is X?' == 'what is  x')."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


# ---------------------------------------------------------------- cleaning

def _clean(texts: Iterator[str], source: str) -> list[Seed]:
    seen: set[str] = set()
    seeds: list[Seed] = []
    for text in texts:
        text = text.strip()
        key = normalize_text(text)
        if not key or key in seen:
            continue
        seen.add(key)
        seeds.append(Seed(id=stable_id("seed", key), text=text, source=source))
    return seeds


def _check_shard(shard: tuple[int, int], shown: str) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {shown}: need 0 <= I < N (for example 0/4 .. 3/4)")


# ---------------------------------------------------------------- dispatch

def _read_source(spec: str, field: str | None) -> tuple[Iterator[str], str, str]:
    """(texts, source name, where-for-messages)."""
    if spec.lower() in NAMED:
        name = spec.lower()
        named = NAMED[name]
        pick = named.pick if field is None else None
        return _from_hub(named.hub, None, field or named.field, pick, label=name), name, name
    if spec.startswith("hf:"):
        name, config, spec_field = _parse_hf(spec)
        if field and spec_field and field != spec_field:
            raise UsageError(f"--seeds {spec} names field {spec_field!r} but --field says {field!r}; "
                             "give the field once")
        return _from_hf(name, config, spec_field or field), f"hf:{name}", spec
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix not in FILE_EXTENSIONS:
        if not path.exists():
            raise UsageError(f"--seeds {spec}: not a named set and no such file; use quora, "
                             "stackoverflow, medquad, medqa, hf:NAME:FIELD or a file path")
        raise UsageError(f"{spec}: unsupported file type {suffix or '(none)'!r}; use "
                         f"{' '.join(FILE_EXTENSIONS)}")
    if not path.exists():
        raise UsageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file, or hf:{path}:FIELD to read a folder")
    reader = _FILE_READERS[suffix]
    return reader(path, field), path.stem, str(path)


def _parse_hf(spec: str) -> tuple[str, str | None, str | None]:
    parts = spec[3:].split(":")
    if not parts[0] or len(parts) > 3 or any(not p for p in parts[1:]):
        raise UsageError(f"--seeds {spec}: expected hf:NAME:FIELD or hf:NAME:CONFIG:FIELD "
                         "(for example hf:pacovaldez/stackoverflow-questions:title)")
    if len(parts) == 1:
        return parts[0], None, None
    if len(parts) == 2:
        return parts[0], None, parts[1]
    return parts[0], parts[1], parts[2]


# ---------------------------------------------------------------- Hugging Face data sets

def _from_hf(name: str, config: str | None, field: str | None) -> Iterator[str]:
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir():
            return _load_local_dataset(str(path), None, config, field, label=f"hf:{name}")
        builder = _BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise UsageError(f"hf:{name}: cannot read {path.suffix or 'this'} files; use one of "
                             f"{' '.join(sorted(set(_BUILDERS)))} or a folder")
        return _load_local_dataset(builder, str(path), config, field, label=f"hf:{name}",
                                   tsv=path.suffix.lower() == ".tsv")
    if name.startswith((".", "/", "~")) or Path(name).suffix.lower() in _BUILDERS:
        raise UsageError(f"hf:{name}: no such file or folder; check the path")
    return _from_hub(name, config, field, None, label=f"hf:{name}")


def _load_local_dataset(name: str, data_file: str | None, config: str | None, field: str | None,
                        *, label: str, tsv: bool = False) -> Iterator[str]:
    import datasets

    kwargs: dict[str, Any] = {"split": "train"}
    if data_file is not None:
        kwargs["data_files"] = data_file
    if tsv:
        kwargs["delimiter"] = "\t"
    try:
        ds = datasets.load_dataset(name, config, **kwargs) if config else \
            datasets.load_dataset(name, **kwargs)
    except Exception as exc:  # datasets raises many kinds for a bad local file
        raise UsageError(f"{label}: could not read it ({_first_line(exc)}); check the file") from None
    return _dataset_texts(ds, field, None, label)


def _from_hub(repo: str, config: str | None, field: str | None,
              pick: Callable[[Any], Any] | None, *, label: str) -> Iterator[str]:
    import datasets

    with _offline_unless_reachable():
        try:
            ds = datasets.load_dataset(repo, config, split="train") if config else \
                datasets.load_dataset(repo, split="train")
        except Exception as exc:
            if _is_connection_error(exc):
                raise FatalError(f"could not load seed set {label} ({repo}): the Hugging Face hub "
                                 f"is unreachable and no cached copy was found; {_LOCAL_HINT}") from None
            if isinstance(exc, (datasets.exceptions.DatasetNotFoundError, FileNotFoundError)):
                raise UsageError(f"seed set {label}: {repo} was not found on the hub"
                                 f"{f' (config {config})' if config else ''}; check the name, or "
                                 f"{_LOCAL_HINT}") from None
            if isinstance(exc, ValueError) and config:
                raise UsageError(f"seed set {label}: {_first_line(exc)}") from None
            raise FatalError(f"could not load seed set {label} ({repo}): {_first_line(exc)}") from None
    return _dataset_texts(ds, field, pick, label)


def _dataset_texts(ds: Any, field: str | None, pick: Callable[[Any], Any] | None,
                   label: str) -> Iterator[str]:
    """Column values of a loaded `datasets.Dataset` as seed texts."""
    columns = list(ds.column_names)
    if field is None:
        strings = [c for c in columns if _is_string_feature(ds.features[c])]
        field = _choose_field(columns, strings, label)
    elif field not in columns:
        raise UsageError(f"{label}: no field {field!r}; available: {', '.join(columns)}; "
                         "pass --field NAME")
    values = ds[field]
    if pick is not None:
        values = [pick(v) for v in values]
    return _strings(values, label, field, first_row=1)


def _is_string_feature(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string", "string_view")


@contextlib.contextmanager
def _offline_unless_reachable() -> Iterator[None]:
    """Switch datasets/huggingface_hub to offline mode for this call when a quick probe says the
    hub cannot be reached; without this each file is retried for about half a minute."""
    from datasets import config as ds_config
    from huggingface_hub import constants as hub_constants

    if hub_constants.HF_HUB_OFFLINE or ds_config.HF_HUB_OFFLINE or _hub_reachable():
        yield
        return
    saved = hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = ds_config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE = saved


def _hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Can we open a TCP connection to the hub (or the HTTPS proxy) within `timeout` seconds?
    DNS lookups ignore socket timeouts, so the probe runs in a daemon thread."""
    from huggingface_hub import constants as hub_constants

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or hub_constants.ENDPOINT)
    host = url.hostname
    port = url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names = {cls.__name__ for cls in type(current).__mro__}
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror)) or names & {
                "OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout",
                "TransportError", "ProxyError", "ReadTimeout"}:
            return True
        text = str(current).lower()
        if "couldn't reach" in text or "offline mode" in text or "not cached" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------- local files

def _choose_field(columns: Sequence[str], strings: Sequence[str], where: str) -> str:
    """The only text column, else the first usual name, else ask for --field."""
    if len(strings) == 1:
        return strings[0]
    for name in PREFERRED_FIELDS:
        if name in columns:
            return name
    shown = ", ".join(columns) if columns else "(none)"
    raise UsageError(f"{where}: cannot tell which field holds the seeds (columns: {shown}); "
                     "pass --field NAME")


def _strings(values: Sequence[Any], where: str, field: str, *, first_row: int,
             rows: Sequence[int] | None = None) -> Iterator[str]:
    """Check every value is text (None counts as blank) and yield it; `rows` names each value's
    row or line number for messages."""
    texts: list[str] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        if not isinstance(value, str):
            row = rows[i] if rows is not None else first_row + i
            kind = "line" if rows is not None else "row"
            raise UsageError(f"{where}: {kind} {row}: field {field!r} holds {type(value).__name__}, "
                             "not text; fix the data or pick another --field")
        texts.append(value)
    return iter(texts)


def _read_text(path: Path) -> str:
    """Whole file as text; non-UTF-8 bytes reported as file:line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not valid UTF-8 (byte {exc.start}); "
                         "re-encode the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def _require_content(path: Path, rows: Sequence[Any]) -> None:
    if not rows:
        raise UsageError(f"{path}: file is empty; expected one seed per row")


def _from_objects(path: Path, items: Sequence[Any], numbers: Sequence[int], kind: str,
                  field: str | None) -> Iterator[str]:
    """Seeds from decoded JSON values: all strings, or all objects with a text field."""
    _require_content(path, items)
    if all(isinstance(item, str) for item in items):
        if field is not None:
            raise UsageError(f"{path}: holds plain strings, so there is no field {field!r}; "
                             "drop --field")
        return iter(items)
    columns: dict[str, None] = {}
    non_string: set[str] = set()
    for item, number in zip(items, numbers):
        if not isinstance(item, dict):
            raise UsageError(f"{path}: {kind} {number}: expected an object (or all plain strings), "
                             f"got {type(item).__name__}")
        for key, value in item.items():
            columns.setdefault(key, None)
            if value is not None and not isinstance(value, str):
                non_string.add(key)
    names = list(columns)
    if field is None:
        field = _choose_field(names, [c for c in names if c not in non_string], str(path))
    elif field not in columns:
        raise UsageError(f"{path}: no field {field!r}; available: {', '.join(names)}; "
                         "pass --field NAME")
    values = [item.get(field) for item in items]
    if kind == "line":
        return _strings(values, str(path), field, first_row=1, rows=numbers)
    return _strings(values, str(path), field, first_row=1)


def _read_jsonl(path: Path, field: str | None) -> Iterator[str]:
    pairs = list(iter_jsonl(path))
    return _from_objects(path, [obj for _, obj in pairs], [n for n, _ in pairs], "line", field)


def _read_json(path: Path, field: str | None) -> Iterator[str]:
    text = _read_text(path)
    if not text.strip():
        raise UsageError(f"{path}: file is empty; expected a JSON list of objects or strings")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: bad JSON ({exc.msg} at column {exc.colno}); "
                         "fix the file") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of objects or strings, got "
                         f"{type(data).__name__}; for one object per line use .jsonl")
    return _from_objects(path, data, range(1, len(data) + 1), "row", field)


def _read_delimited(path: Path, field: str | None) -> Iterator[str]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    text = _read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, restval="")
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        rows = list(reader)
    except csv.Error as exc:
        raise UsageError(f"{path}:{reader.line_num}: bad {path.suffix[1:].upper()} ({exc}); "
                         "fix that line") from None
    if not columns:
        raise UsageError(f"{path}: file is empty; expected a header row and one seed per row")
    if field is None:
        field = _choose_field(columns, columns, str(path))
    elif field not in columns:
        raise UsageError(f"{path}: no field {field!r}; available: {', '.join(columns)}; "
                         "pass --field NAME")
    _require_content(path, rows)
    return iter(row.get(field) or "" for row in rows)


def _read_parquet(path: Path, field: str | None) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise UsageError(f"{path}: file is empty; expected a parquet table")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{path}: not a readable parquet file ({exc}); check the file") from None
    columns = list(schema.names)
    if field is None:
        strings = [f.name for f in schema
                   if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                   or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(f.type))]
        field = _choose_field(columns, strings, str(path))
    elif field not in columns:
        raise UsageError(f"{path}: no field {field!r}; available: {', '.join(columns)}; "
                         "pass --field NAME")
    values = pq.read_table(path, columns=[field]).column(field).to_pylist()
    _require_content(path, values)
    return _strings(values, str(path), field, first_row=1)


def _read_txt(path: Path, field: str | None) -> Iterator[str]:
    if field is not None:
        raise UsageError(f"{path}: a .txt file has one seed per line and no fields; drop --field")
    lines = _read_text(path).splitlines()
    if not any(line.strip() for line in lines):
        raise UsageError(f"{path}: file is empty; expected one seed per line")
    return iter(lines)


_FILE_READERS: dict[str, Callable[[Path, str | None], Iterator[str]]] = {
    ".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_delimited, ".tsv": _read_delimited,
    ".parquet": _read_parquet, ".txt": _read_txt,
}
