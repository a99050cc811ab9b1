"""The house rules of ARCHITECTURE.md, checked on the source: imports flow down the layers only,
no module imports itself in a circle, and no project import hides inside a function. Module
sizes are reported (``large_modules``), not enforced.

Bottom: ``agents_app`` db/conf/models/fields/registry. Middle: ``sessions_app``.
Top: the ``Agent`` facade, the tally service, the demo, and what uses them.
"""

import ast
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hermes_site", "agents_app", "sessions_app")
# hermes_site's settings and URLconf wire the apps together; the apps never import it.
BOTTOM = (
    "agents_app.db",
    "agents_app.conf",
    "agents_app.models",
    "agents_app.fields",
    "agents_app.registry",
    "agents_app.apps",
)
APPS = ("agents_app", "sessions_app")
TOP = ("agents_app.agent", "agents_app.services", "agents_app.demo", "agents_app.management")
# Inside sessions_app: the writers and what they share with the readers (the scope, the counts,
# the aggregates, the rollup and the ledgers) never import a reader or a renderer.
WRITERS = (
    "sessions_app.services",
    "sessions_app._sql",
    "sessions_app.pruning",
    "sessions_app.stale",
    "sessions_app.retention",
    "sessions_app.integrity",
    "sessions_app.rollup",
    "sessions_app.ledger",
    "sessions_app.archive",
    "sessions_app.importers",
    "sessions_app.validation",
    "sessions_app.scope",
    "sessions_app.counts",
    "sessions_app.aggregates",
    "sessions_app.querysets",
    "sessions_app.models",
)
READERS_AND_RENDERERS = (
    "sessions_app.analytics",
    "sessions_app.reporting",
    "sessions_app.admin",
    "sessions_app.metrics",
)
# A module past this many lines is asking to be split by job (STYLE.md), never to be cut in pieces
# that need each other: a hint, reported by ``test_module_sizes`` rather than failed.
SIZE_HINT = 300


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(path: Path, module: str, packages: list | None = None):
    """(imported project module, line, whether the import sits inside a function); a package whose
    __init__ runs only because a submodule of it is imported is listed in ``packages``."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(child) for function in functions for child in ast.walk(function) if child is not function}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
            # "from package import submodule" runs the package's __init__ too: a cycle through it counts.
            if packages is not None and base in MODULES and base not in names:
                packages.append(base)
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name, node.lineno, id(node) in nested


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        graph[module] = set()
        packages = []
        for name, _, inside in _imports(path, module, packages):
            target = name
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != module and not inside:
                graph[module].add(target)
        graph[module].update(package for package in packages if package != module)
    return graph


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_down_only(module):
    problems = []
    for name, line, inside in _imports(MODULES[module], module):
        where = f"{module}:{line} imports {name}"
        if inside:
            problems.append(f"{where} inside a function")
        if _in(module, BOTTOM) and not _in(name, BOTTOM):
            problems.append(f"{where}: the bottom layer imports only the bottom layer")
        if _in(module, APPS) and _in(name, ("hermes_site",)):
            problems.append(f"{where}: the apps stand alone; nothing of theirs imports the project")
        if _in(module, ("sessions_app",)) and _in(name, TOP):
            problems.append(f"{where}: the middle layer imports the top layer")
        if _in(module, WRITERS) and _in(name, READERS_AND_RENDERERS):
            problems.append(f"{where}: a writer imports a reader or a renderer")
    assert not problems


def large_modules() -> list[tuple[str, int]]:
    """Modules past ``SIZE_HINT`` lines, largest first: a hint to look for two jobs in one module,
    not a rule (STYLE.md: one 450-line module with one job beats four that need each other)."""
    sizes = ((module, len(path.read_text().splitlines())) for module, path in MODULES.items())
    return sorted(((module, lines) for module, lines in sizes if lines > SIZE_HINT), key=lambda item: -item[1])


def test_module_sizes():
    """Report (never fail on) the modules past the size hint, largest first, in pytest's warnings
    summary for a reviewer to judge: one long module with one job beats several short ones that
    need each other."""
    for module, lines in large_modules():
        warnings.warn(f"{module} has {lines} lines (hint ~{SIZE_HINT})", ModuleSizeHint, stacklevel=1)
    assert MODULES  # the report ran over the project's modules


class ModuleSizeHint(UserWarning):
    """A module past ``SIZE_HINT`` lines: a prompt to look, not a failure."""
