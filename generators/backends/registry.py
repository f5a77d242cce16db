"""Which backends exist: a name, and the class that serves it.

The built-in backends register here exactly as a plugin does: a plugin package declares an entry
point in the group `baleen.backends` (name = "module:Class"), and `gen --backend NAME` finds it.
Classes are imported only when asked for, so listing the names costs nothing and a backend
whose library is missing (vLLM) breaks only the commands that use it. Stages never compare
names: they read `backend_class(name).capabilities`.
"""
from __future__ import annotations

import importlib
from importlib import metadata

from generators.core.errors import UsageError
from generators.backends.base import Backend

ENTRY_POINT_GROUP = "baleen.backends"
_REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Make `--backend name` serve `target` ("package.module:Class", a Backend subclass)."""
    _REGISTRY[name] = target


register("openai", "generators.backends.openai_backend:OpenAIBackend")
register("anthropic", "generators.backends.anthropic_backend:AnthropicBackend")
register("hf", "generators.backends.hf_backend:HFBackend")
register("vllm", "generators.backends.vllm_backend:VLLMBackend")


def _load_plugins() -> None:
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(entry.name, entry.value)


def names() -> list[str]:
    """Every registered backend name, built-ins first."""
    _load_plugins()
    return list(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The class registered under `name`; a UsageError for an unknown one."""
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise UsageError(f"--backend {name}: unknown backend; known: {', '.join(names())}")
    module, _, attribute = _REGISTRY[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if not missing or missing == module.split(".")[0]:
            raise  # the backend's own module is missing: a broken install, not a missing extra
        raise UsageError(f"--backend {name} needs the Python package {missing}, which is not installed; "
                         f"install it (for a built-in backend: pip install 'baleen[{name}]')") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"--backend {name}: {_REGISTRY[name]} is not a Backend class")
    return cls
