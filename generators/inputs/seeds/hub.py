"""Seeds from Hugging Face data sets: the named sets Baize used, `hf:NAME[:CONFIG]:FIELD` specs
(NAME is a hub id OWNER/NAME, or a local folder or data file that `datasets.load_dataset`
understands), a local mirror of hub repos, and what to do when the hub is out of reach.

Every named set is a plain data repo (parquet or JSON files, no loading script): `datasets` >= 4
no longer runs scripts, so the old script set `quora` cannot load; its question pairs are read
from `sentence-transformers/quora-duplicates` (config `pair-class`, first question `sentence1`).
Hub ids are always passed in full (OWNER/NAME) and `trust_remote_code` is never set.

Mirror: when the environment variable BALEEN_HF_MIRROR names a folder and DIR/OWNER/NAME exists
(e.g. made with `huggingface-cli download OWNER/NAME --repo-type dataset --local-dir DIR/OWNER/NAME`),
that folder is loaded instead of the hub repo, by the same `load_dataset(source, config,
split="train")` call, so the copy's README configs and file layout select the data exactly as on
the hub. A repo without a copy there still comes from the hub.

The hub is unreachable in some places (this one included). We probe it for a few seconds before
loading, and without it load in offline mode so a cached copy still works and a missing one fails
at once with one line, instead of after minutes of retries.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from generators.core.errors import BaleenError, FatalError, UsageError, first_line
from generators.inputs.reader import checked_strings, dataset_columns
from generators.inputs.seeds.files import choose_seed_field


@dataclass(frozen=True)
class _Named:
    repo: str            # full hub id, OWNER/NAME
    config: str | None   # the repo's config (subset), or None for its only one
    field: str           # the column holding the seed text


NAMED: dict[str, _Named] = {
    # 404,290 question pairs in the original order; Baize took the first question of each pair.
    "quora": _Named("sentence-transformers/quora-duplicates", "pair-class", "sentence1"),
    "stackoverflow": _Named("pacovaldez/stackoverflow-questions", None, "title"),
    "medquad": _Named("AnonymousSub/MedQuAD_47441_Question_Answer_Pairs", None, "Questions"),
    "medqa": _Named("GBaker/MedQA-USMLE-4-options", None, "question"),
}
MIRROR_ENV = "BALEEN_HF_MIRROR"
# How `load_dataset` reads a single local file given as hf:PATH.
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
             ".parquet": "parquet", ".txt": "text", ".arrow": "arrow"}
# A hub id: OWNER/NAME, each part letters, digits, '-', '_' or '.', never '..' (also keeps a
# mirror path inside its folder).
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
HUB_PROBE_SECONDS = 3.0
_LOCAL_HINT = "pass a local file: --seeds questions.jsonl --field question"


# ---------------------------------------------------------------- the two kinds of spec

def read_named(name: str, field: str | None) -> Iterator[str]:
    """Texts of a named set (`name` lower-case, a key of NAMED); --field overrides its column."""
    named = NAMED[name]
    return _from_hub(named.repo, named.config, field or named.field, label=name)


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


# ---------------------------------------------------------------- local data, mirror

def mirror_folder(repo: str) -> Path | None:
    """The copy of hub repo `repo` under $BALEEN_HF_MIRROR, or None (no variable, or no copy
    there: the hub is used). A variable naming no folder is an error rather than a silent
    download, since whoever set it meant to stay local."""
    root = os.environ.get(MIRROR_ENV, "").strip()
    if not root:
        return None
    base = Path(root).expanduser()
    if not base.is_dir():
        raise UsageError(f"{MIRROR_ENV}={root}: no such folder; point it at a folder holding "
                         "OWNER/NAME copies of hub data sets, or unset it")
    folder = base / repo
    return folder if folder.is_dir() else None


def _from_hf(name: str, config: str | None, field: str | None) -> Iterator[str]:
    """An hf: NAME is a local folder or file when one exists, else a hub id OWNER/NAME."""
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
    if not _REPO_ID.fullmatch(name) or ".." in name:
        raise UsageError(f"hf:{name}: not a local file or folder, nor a full hub id OWNER/NAME "
                         "(bare ids such as 'squad' are refused by the hub client); "
                         "for example hf:rajpurkar/squad:question")
    return _from_hub(name, config, field, label=f"hf:{name}")


def _load_local_dataset(name: str, data_file: str | None, config: str | None, field: str | None,
                        *, label: str, tsv: bool = False) -> Iterator[str]:
    import datasets

    kwargs: dict[str, Any] = {"split": "train"}
    if data_file is not None:
        kwargs["data_files"] = data_file
    if tsv:
        kwargs["delimiter"] = "\t"
    try:
        ds = datasets.load_dataset(name, config, **kwargs)
    except Exception as exc:  # datasets raises many kinds for a bad local file
        if _is_script_error(exc):
            raise _script_error(label, name) from None
        raise UsageError(f"{label}: could not read it ({first_line(exc)}); check the file") from None
    return _dataset_texts(ds, field, label)


# ---------------------------------------------------------------- the hub (or its mirror)

def _from_hub(repo: str, config: str | None, field: str | None, *, label: str) -> Iterator[str]:
    """Load split train of hub repo `repo` (its mirror copy when there is one) and take `field`."""
    import datasets

    mirror = mirror_folder(repo)
    source = str(mirror) if mirror is not None else repo
    with _network_mode(mirror):
        try:
            ds = datasets.load_dataset(source, config, split="train")
        except Exception as exc:
            raise _load_error(exc, repo, config, label, mirror) from None
    return _dataset_texts(ds, field, label)


def _network_mode(mirror: Path | None) -> contextlib.AbstractContextManager[None]:
    """A mirror copy needs no network, so no probe; the hub gets one."""
    return contextlib.nullcontext() if mirror is not None else _offline_unless_reachable()


def _load_error(exc: Exception, repo: str, config: str | None, label: str,
                mirror: Path | None) -> BaleenError:
    """One line saying why `repo` did not load and what to do instead."""
    import datasets

    if _is_script_error(exc):
        return _script_error(f"seed set {label}", repo)
    if mirror is not None:
        return UsageError(f"seed set {label}: could not read the local copy {mirror} "
                          f"({first_line(exc)}); check that it holds the files of {repo}")
    if _is_connection_error(exc):
        return FatalError(f"could not load seed set {label} ({repo}): the Hugging Face hub "
                          f"is unreachable and no cached copy was found; {_LOCAL_HINT}, "
                          f"or a copy of the repo in ${MIRROR_ENV}/{repo}")
    if isinstance(exc, (datasets.exceptions.DatasetNotFoundError, FileNotFoundError)):
        return UsageError(f"seed set {label}: {repo} was not found on the hub"
                          f"{f' (config {config})' if config else ''}; check the name, or "
                          f"{_LOCAL_HINT}")
    if isinstance(exc, ValueError) and config:
        return UsageError(f"seed set {label}: {first_line(exc)}")
    return FatalError(f"could not load seed set {label} ({repo}): {first_line(exc)}")


def _is_script_error(exc: BaseException) -> bool:
    """`datasets` >= 4 refuses loading scripts; older versions want trust_remote_code."""
    text = str(exc)
    return "scripts are no longer supported" in text or "trust_remote_code" in text


def _script_error(label: str, source: str) -> UsageError:
    return UsageError(f"{label}: {source} is a loading script, which `datasets` no longer runs; "
                      "use a copy stored as data files (parquet, JSON, CSV)")


def _dataset_texts(ds: Any, field: str | None, label: str) -> Iterator[str]:
    """Column values of a loaded `datasets.Dataset` as seed texts."""
    columns, strings = dataset_columns(ds)
    field = choose_seed_field(columns, strings, label, field)
    return checked_strings(ds[field], label, field, first_row=1)


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

