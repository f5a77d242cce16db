"""Seeds from Hugging Face data sets: the named sets Baize used, `hf:NAME[:CONFIG]:FIELD` specs
(NAME may be a local folder or data file that `datasets.load_dataset` understands), and what to
do when the hub is out of reach.

The hub is unreachable in some places (this one included). We probe it for a few seconds before
loading, and without it load in offline mode so a cached copy still works and a missing one fails
at once with one line, instead of after minutes of retries.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from ..errors import FatalError, UsageError
from .files import checked_strings, choose_field


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
# How `load_dataset` reads a single local file given as hf:PATH.
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
             ".parquet": "parquet", ".txt": "text", ".arrow": "arrow"}
HUB_PROBE_SECONDS = 3.0
_LOCAL_HINT = "pass a local file: --seeds questions.jsonl --field question"


# ---------------------------------------------------------------- the two kinds of spec

def read_named(name: str, field: str | None) -> Iterator[str]:
    """Texts of a named set (`name` lower-case, a key of NAMED); --field overrides its column,
    and then the nested-column pick no longer applies."""
    named = NAMED[name]
    pick = named.pick if field is None else None
    return _from_hub(named.hub, None, field or named.field, pick, label=name)


def read_hf(spec: str, field: str | None) -> tuple[Iterator[str], str]:
    """(texts, source name) for an `hf:` spec; the field may come from the spec or --field, once."""
    name, config, spec_field = _parse_hf(spec)
    if field and spec_field and field != spec_field:
        raise UsageError(f"--seeds {spec} names field {spec_field!r} but --field says {field!r}; "
                         "give the field once")
    return _from_hf(name, config, spec_field or field), f"hf:{name}"


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


# ---------------------------------------------------------------- loading

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
        field = choose_field(columns, strings, label)
    elif field not in columns:
        raise UsageError(f"{label}: no field {field!r}; available: {', '.join(columns)}; "
                         "pass --field NAME")
    values = ds[field]
    if pick is not None:
        values = [pick(v) for v in values]
    return checked_strings(values, label, field, first_row=1)


def _is_string_feature(feature: Any) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string", "string_view")


# ---------------------------------------------------------------- reachability

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
