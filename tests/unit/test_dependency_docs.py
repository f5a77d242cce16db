"""The README states the range of every dependency and why baleen needs it: the table must
name each requirement of pyproject.toml (base and every extra) with exactly its declared range,
so the page cannot drift from the file that `./run.sh test` checks at the lowest versions."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "README.md"
ROW = re.compile(r"^\| `([^`]+)`[^|]* \| `?([^|`]*?)`? \| (.+) \|$", re.M)


def pyproject_requirements() -> dict[str, Requirement]:
    """Base and every extra; a package named twice (an extra and `test`) has one range."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    items = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {Requirement(item).name.lower(): Requirement(item) for item in items}


def documented() -> dict[str, tuple[str, str]]:
    """name -> (range as written, why) for each row of the dependency table."""
    section = PAGE.read_text(encoding="utf-8").split("## Dependencies: supported ranges and why", 1)[1].split("\n## ")[0]
    return {Requirement(name).name.lower(): (spec.strip(), why.strip()) for name, spec, why in ROW.findall(section)}


def test_every_dependency_has_a_row_with_its_range_and_a_reason():
    rows = documented()
    for name, requirement in pyproject_requirements().items():
        assert name in rows, f"README.md: no row for {name} ({requirement})"
        written, why = rows[name]
        expected = str(requirement.specifier) or "any"
        assert written == expected, f"README.md says {name} {written}, pyproject.toml {expected}"
        assert len(why) > 10


def test_no_row_for_a_dependency_that_is_gone():
    assert set(documented()) <= set(pyproject_requirements())

