"""The import graph, read from the source (AST), imports inside functions counted too:
no cycle between modules anywhere in the repository, and each package imports only the
packages its row of ALLOWED names (so the layers never import the application that runs
them, and the core imports nothing of the project)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("meterlake", "bronze", "silver", "gold", "oracle", "bench", "tests")
LAYERS = ("bronze", "silver", "gold")
APP = "meterlake.app"
# Which of the project's packages a package may import, besides its own modules. A
# package: a subpackage of meterlake, or a top-level folder. bench/ and tests/ may
# import anything (nothing imports them but themselves).
ALLOWED: dict[str, set[str]] = {
    "meterlake.core": set(),
    "bronze": {"meterlake.core"},
    "silver": {"meterlake.core", "bronze"},  # silver.job reads the topic as bronze does
    "gold": {"meterlake.core"},
    "meterlake.read": {"meterlake.core"},
    "meterlake.tools": {"meterlake.core"},
    "meterlake.infra": {"meterlake.core"},
    APP: {"meterlake.core", "meterlake.read", "meterlake.tools", "meterlake.infra", *LAYERS},
    "meterlake": {APP},  # __main__: python -m meterlake runs the CLI
    "oracle": {"meterlake.core"},  # the reference: the config's semantics, no layer code
}
UNRESTRICTED = ("bench", "tests")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def inside_functions(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes in the bodies of the functions (and methods) of `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from ast.walk(node)


def import_graph(
    nodes: Callable[[ast.AST], Iterable[ast.AST]] = ast.walk,
) -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in its file; with
    `nodes=inside_functions`, only inside its functions)."""
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(resolve(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in known else resolve(base))
        graph[module] = {t for t in targets if t and t != module}
    return graph


def package_of(module: str) -> str:
    """meterlake.core.config -> meterlake.core; meterlake.__main__ -> meterlake;
    silver.judge -> silver."""
    parts = module.split(".")
    if parts[0] == "meterlake" and len(parts) > 1 and (ROOT / "meterlake" / parts[1]).is_dir():
        return f"meterlake.{parts[1]}"
    return parts[0]


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a package its row of ALLOWED does not name, as 'module imports
    target (package may import only ...)'; bench and tests are not checked."""
    found = []
    for module, targets in sorted(graph.items()):
        package = package_of(module)
        if package in UNRESTRICTED:
            continue
        only = ", ".join(sorted(ALLOWED[package]))
        rule = f"{package} may import only {only}" if only else f"{package} imports no package"
        for target in sorted(targets):
            if package_of(target) not in ALLOWED[package] | {package}:
                found.append(f"{module} imports {target} ({rule})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "meterlake.app.pipeline" in graph["meterlake.app.cli"]  # imported inside _run
    assert "oracle" in graph["bench.baseline"]
    assert "meterlake.app.pipeline" in import_graph(inside_functions)["meterlake.app.cli"]
    assert "silver.job" not in import_graph(inside_functions)["meterlake.app.pipeline"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_every_package_has_its_row_of_allowed_imports() -> None:
    packages = {package_of(module) for module in modules()}
    assert packages - set(UNRESTRICTED) == set(ALLOWED)


def test_a_violation_names_the_module_and_the_import() -> None:
    graph = {"bronze.job": {"meterlake.core.config", "meterlake.app.cli"},
             "meterlake.core.config": {"meterlake.read.views"}}  # fmt: skip
    assert violations(graph) == [
        "bronze.job imports meterlake.app.cli (bronze may import only meterlake.core)",
        "meterlake.core.config imports meterlake.read.views "
        "(meterlake.core imports no package)",
    ]


def test_each_package_imports_only_what_its_row_allows() -> None:
    """The core imports nothing of the project; the layers only the core (silver also
    bronze); read, tools and infra only the core; only the application imports the
    layers."""
    assert violations(import_graph()) == []


def test_the_application_imports_the_layers_at_the_top_of_its_files() -> None:
    inside = import_graph(inside_functions)
    late = {
        module: sorted(t for t in targets if package_of(t) in LAYERS)
        for module, targets in inside.items()
        if package_of(module) == APP and any(package_of(t) in LAYERS for t in targets)
    }
    assert late == {}
