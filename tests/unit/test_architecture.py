"""The layers hold: imports point one way (prompts <- generators <- curation; training beside,
reading records and prompts only), no module imports itself back through another, a stage never
imports another stage, and the tools that read finished runs (outputs) build on the core only."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("prompts", "generators", "curation", "training")
ALLOWED = {"prompts": set(), "generators": {"prompts"}, "curation": {"prompts", "generators"},
           "training": {"prompts", "generators"}}

# A stage is the package behind one `gen` command: it makes, curates, trains on, evaluates or
# reads out data, and shares code with the others only through the layers under them
# (prompts, generators.core, backends, executors, inputs). Nested stages count apart from their
# parent (curation.eval is not part of curation).
STAGES = ("generators.selfchat", "generators.segments", "generators.backtranslate", "curation", "curation.eval", "training",
          "generators.outputs.export", "generators.outputs.report", "generators.outputs.view")
# gen eval measures other stages' parts with their own code (the backward model through
# backtranslate's prompt and post-filter, the rater through curate's rubric and scoring): a copy
# would measure something else. It may import the stages it evaluates, and no stage imports it.
EVALUATES = {"curation.eval": {"curation", "generators.backtranslate"}}
# What the output tools (export, report, view) may build on besides their own package.
OUTPUTS = "generators.outputs"
CORE = ("generators.core", "prompts")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every project module `path` imports, at any depth in the file (lazy imports count too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def test_imports_point_one_way():
    wrong = [(a, b) for a, targets in graph().items() for b in targets
             if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]]]
    assert wrong == []


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def stage_of(module: str) -> str | None:
    """The innermost stage package holding `module`, None for the layers under the stages."""
    holding = [stage for stage in STAGES if _within(module, stage)]
    return max(holding, key=len) if holding else None


def test_a_stage_never_imports_another_stage():
    wrong = []
    for a, targets in graph().items():
        for b in targets:
            mine, theirs = stage_of(a), stage_of(b)
            if mine and theirs and mine != theirs and theirs not in EVALUATES.get(mine, ()):
                wrong.append((a, b))
    assert wrong == []


def test_outputs_import_only_the_core():
    wrong = [(a, b) for a, targets in graph().items() if _within(a, OUTPUTS) for b in targets
             if stage_of(b) != stage_of(a) and not any(_within(b, core) for core in CORE)]
    assert wrong == []


def test_no_import_cycles():
    edges = graph()
    # a package's __init__ importing its own modules is not a cycle of the modules themselves
    edges = {a: {b for b in targets if not a.startswith(b + ".") and not b.startswith(a + ".")}
             for a, targets in edges.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_nothing_cites_files_outside_the_repository():
    texts = [p.read_text("utf-8") for pkg in (*PACKAGES, "bench", "tests") for p in (REPO / pkg).rglob("*.py")]
    texts += [(REPO / name).read_text("utf-8") for name in ("README.md", "run.sh", "rounds.sh")]
    texts += [p.read_text("utf-8") for p in (REPO / "docs").glob("*.md")]
    outside = ("DESIGN" + ".md", "../" + "shared")  # spelled in parts so this file does not cite them
    assert not [t[:80] for t in texts if any(word in t for word in outside)]
