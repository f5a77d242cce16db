"""Every prompt the project sends lives here as a Jinja2 file; this module renders them.

Templates are rendered with StrictUndefined (a missing variable is a bug, not an empty
string) and without autoescaping (prompts are plain text, not HTML). `template_id` gives
"name@hash" so records can say exactly which wording produced them.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import jinja2
import jinja2.meta

PROMPTS_DIR = Path(__file__).resolve().parent

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _file(name: str) -> Path:
    """The template file of `name`: a plain name inside prompts/, never a path out of it."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise KeyError(f"{name!r} is not a template name (a file name in prompts/ without .j2); "
                       f"known: {', '.join(names())}")
    path = PROMPTS_DIR / f"{name}.j2"
    if not path.is_file():
        raise KeyError(f"no prompt template named {name!r} in prompts/; known: {', '.join(names())}")
    return path


def variables(name: str) -> set[str]:
    """The variables a template reads (its undeclared names)."""
    source = _file(name).read_text("utf-8")
    return set(jinja2.meta.find_undeclared_variables(_env.parse(source)))


def check(name: str, allowed: Iterable[str]) -> None:
    """KeyError (with a message for people) unless `name` is a template that needs no variable
    outside `allowed`, so a wrong template fails before any request, not on every item."""
    unknown = sorted(variables(name) - set(allowed))
    if unknown:
        raise KeyError(f"template {name!r} uses {', '.join(unknown)}, which this command does not "
                       f"provide (it provides: {', '.join(sorted(allowed))})")


@lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    _file(name)
    return _env.get_template(f"{name}.j2")


def render(name: str, **variables: object) -> str:
    """Render prompts/<name>.j2 with the given variables; trailing whitespace is stripped."""
    return _template(name).render(**variables).strip()


@lru_cache(maxsize=None)
def template_id(name: str) -> str:
    """A short identity of a template's current wording: 'name@<8 hex of sha256>'."""
    digest = hashlib.sha256(_file(name).read_bytes()).hexdigest()[:8]
    return f"{name}@{digest}"


def names() -> list[str]:
    """All template names shipped in prompts/."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.j2"))
