"""Every prompt the project sends lives here as a Jinja2 file; this module renders them.

Templates are rendered with StrictUndefined (a missing variable is a bug, not an empty
string) and without autoescaping (prompts are plain text, not HTML). `template_id` gives
"name@hash" so records can say exactly which wording produced them.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _file(name: str) -> Path:
    path = PROMPTS_DIR / f"{name}.j2"
    if not path.is_file():
        raise KeyError(f"no prompt template named {name!r} in {PROMPTS_DIR}")
    return path


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
