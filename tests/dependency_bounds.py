"""Checks that the environment it runs in holds exactly the lowest versions pyproject.toml allows.

`./run.sh test` installs .venv-lowest with uv's lowest-direct resolution and runs this there before
the unit tests: a direct dependency installed above its declared lower bound (because the bound
cannot be installed beside the others, say) fails here, so a bound in pyproject.toml is always one
that the unit tests have run against. Torch is the exception: it is held at the CPU build on this
machine's disk (docs/testing.md says why), so for it only "within the range" is checked.

    python -m tests.dependency_bounds [EXTRA ...]     (default extra: test)
"""
from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
HELD = {"torch"}  # installed from the local CPU wheel, not at its lower bound


def declared(extras: list[str]) -> list[Requirement]:
    """The direct dependencies and those of the named extras, as pyproject.toml lists them."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    unknown = [extra for extra in extras if extra not in project["optional-dependencies"]]
    if unknown:
        raise SystemExit(f"dependency_bounds: pyproject.toml has no extra named {unknown[0]!r}")
    items = [*project["dependencies"], *(item for extra in extras for item in project["optional-dependencies"][extra])]
    return [Requirement(item) for item in items]


def lower_bound(requirement: Requirement) -> Version | None:
    """The version named by `>=` or `==`, if any."""
    for spec in requirement.specifier:
        if spec.operator in (">=", "=="):
            return Version(spec.version)
    return None


def problems(requirements: list[Requirement]) -> list[str]:
    found = []
    for requirement in requirements:
        bound = lower_bound(requirement)
        if bound is None:
            found.append(f"{requirement.name}: no lower bound in pyproject.toml")
            continue
        try:
            installed = Version(metadata.version(requirement.name))
        except metadata.PackageNotFoundError:
            found.append(f"{requirement.name}: not installed")
            continue
        if requirement.name in HELD:
            if not requirement.specifier.contains(installed, prereleases=True):
                found.append(f"{requirement.name}: {installed} is outside {requirement.specifier}")
        elif installed != bound:
            found.append(f"{requirement.name}: {installed} installed, but pyproject.toml says >={bound}; "
                         f"raise the bound to what installs beside the others")
    return found


def main(argv: list[str]) -> int:
    requirements = declared(argv or ["test"])
    found = problems(requirements)
    for line in found:
        print(f"dependency_bounds: {line}", file=sys.stderr)
    if not found:
        print(f"dependency_bounds: {len(requirements)} direct dependencies at their declared lower bounds"
              f" ({', '.join(sorted(HELD))} held within its range)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
