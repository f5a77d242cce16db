"""What the in-process backends (transformers, vLLM) share: finding the model folder, and the
name that identifies it in records and cache keys."""
from __future__ import annotations

from pathlib import Path

from generators.core.adapters import adapter_identity
from generators.backends.embedded import EMBEDDED_NAME, resolve_model
from generators.core.errors import UsageError
from generators.backends.base import Backend, BackendSettings


def is_embedded(name: str | None) -> bool:
    return name in (None, "", EMBEDDED_NAME)


def check_local_model(name: str | None, adapter: str | None) -> None:
    """A model that is neither the embedded one, an existing folder, nor a hub id (owner/name)
    is refused before anything runs; so is an adapter folder without an adapter in it."""
    if not is_embedded(name):
        assert name is not None
        path = Path(name).expanduser()
        looks_like_path = name.startswith(("/", ".", "~")) or name.count("/") != 1
        if not path.exists() and looks_like_path:
            raise UsageError(f"--model {name}: no such local folder; give a model folder, a hub id "
                             f"(owner/name) or {EMBEDDED_NAME}")
        if path.exists() and not path.is_dir():
            raise UsageError(f"--model {name}: is a file; give the folder the model was saved to")
    if adapter:
        adapter_identity(adapter)


def local_model(settings: BackendSettings) -> tuple[str, str]:
    """(what to load, the model's label): the embedded name rather than its cache path (the same
    run on another machine is the same run), plus the adapter's content identity."""
    path = resolve_model(settings.model, settings.cache_root)
    base = EMBEDDED_NAME if is_embedded(settings.model) else path
    label = f"{base}+{adapter_identity(settings.adapter)}" if settings.adapter else base
    return path, label


class LocalBackend(Backend):
    """A backend that runs the model in this process: the model folder is checked up front, and
    the backend is named by `local_model`'s label. Subclasses say how to `build` themselves."""

    @classmethod
    def check(cls, settings: BackendSettings) -> None:
        check_local_model(settings.model, settings.adapter)

    @classmethod
    def create(cls, settings: BackendSettings) -> "LocalBackend":
        path, label = local_model(settings)
        backend = cls.build(path, settings)
        backend.model = label
        return backend

    @classmethod
    def build(cls, path: str, settings: BackendSettings) -> "LocalBackend":
        raise NotImplementedError
