"""The README is a front page and docs/ the reference: every relative link resolves, the README
stays short and links every page, and every flag a `gen` example shows is a flag of that command.

These pin what a newcomer relies on: a link that 404s or an example that fails with "no such
option" is the first thing they meet.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from generators.cli import gen

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
MARKDOWN = [README, *PAGES]
README_MAX_LINES = 200

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
GEN_CALL = re.compile(r"(?:^|[\s(;&|])gen\)?\s+([a-z]+)((?:\s+[^\s|;&#]+)*)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links inside code are not links)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(page.read_text("utf-8")).splitlines()
            if line.startswith("#")}


def _relative_links(page: Path) -> list[str]:
    links = LINK.findall(_prose(page.read_text("utf-8")))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def _name(path: Path) -> str:
    return path.resolve().relative_to(REPO).as_posix()


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in MARKDOWN:
        for link in _relative_links(page):
            target, _, anchor = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.is_relative_to(REPO):
                broken.append(f"{_name(page)}: {link} (outside the repository)")
            elif not path.exists():
                broken.append(f"{_name(page)}: {link} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{_name(page)}: {link} (no such heading)")
    assert broken == []


def test_readme_is_a_front_page() -> None:
    lines = README.read_text("utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the reference belongs in docs/"


def test_readme_links_every_docs_page() -> None:
    linked = {_name(README.parent / link.partition("#")[0]) for link in _relative_links(README)}
    assert [_name(page) for page in PAGES if _name(page) not in linked] == []


def test_readme_keeps_the_two_commands() -> None:
    text = README.read_text("utf-8")
    assert "./run.sh demo" in text and "./run.sh test" in text
    assert "./run.sh test" in (REPO / ".ci" / "run").read_text("utf-8")


def _gen_calls(page: Path) -> list[tuple[str, list[str]]]:
    """Every `gen CMD ...` written in a code block or an inline code span, as (text, words)."""
    text = page.read_text("utf-8")
    spans = [block.replace("\\\n", " ") for block in FENCE.findall(text)]
    spans += [code for code in INLINE_CODE.findall(_prose(text)) if code.startswith("gen ")]
    calls = []
    for span in spans:
        for line in span.splitlines():
            for match in GEN_CALL.finditer(line):
                words = shlex.split(match.group(2).replace("$(", "").replace("...", ""), posix=True)
                calls.append((match.group(0).strip(), [match.group(1), *words]))
    return calls


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


def _command(words: list[str]) -> tuple[click.Command | None, list[str]]:
    ctx = click.Context(gen)
    command = gen.get_command(ctx, words[0])
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.list_commands(ctx):
        command, rest = command.get_command(ctx, rest[0]), rest[1:]
    return command, rest


@pytest.mark.parametrize("page", MARKDOWN, ids=_name)
def test_examples_use_real_commands_and_flags(page: Path) -> None:
    wrong = []
    for text, words in _gen_calls(page):
        command, rest = _command(words)
        if command is None:
            wrong.append(f"{text}: no command '{words[0]}'")
            continue
        flags = {word.split("=")[0] for word in rest if word.startswith("--")}
        wrong += [f"{text}: no flag {flag}" for flag in sorted(flags - _options(command))]
    assert wrong == []
