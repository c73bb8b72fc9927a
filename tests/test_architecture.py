"""wasikv's architecture: no import loops, and the layers pyproject.toml's import-linter contracts state.

`lint-imports` checks the `[tool.importlinter]` contracts of pyproject.toml
with import-linter. These tests check the same contracts without it, on an
import graph read here with `ast` the way import-linter's graph library
(grimp) reads it: every import statement of a module counts, those inside
functions too, except under `if TYPE_CHECKING:` (the contracts set
`exclude_type_checking_imports`). They also check what import-linter cannot
state: that no module imports itself through others.
"""

from __future__ import annotations

import ast
import graphlib
import tomllib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .support import ROOT

HOST = ROOT / "host"
PACKAGE = "wasikv"

Graph = dict[str, set[str]]


def _modules(source_root: Path, package: str) -> dict[str, Path]:
    modules = {}
    for path in (source_root / package).rglob("*.py"):
        relative = path.relative_to(source_root)
        if any(not (source_root / folder / "__init__.py").exists() for folder in relative.parents[:-1]):
            continue  # not in a package (the templates of `wasikv new`): grimp leaves it out too
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in `nodes`, at any depth, but those only type checkers run."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_statements(node.orelse)
        else:
            yield from _import_statements(ast.iter_child_nodes(node))


def import_graph(source_root: Path = HOST, package: str = PACKAGE) -> Graph:
    """Each module of `package` (under `source_root`) and the modules of `package` it imports."""
    modules = _modules(source_root, package)
    graph: Graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        imported: set[str] = set()
        for statement in _import_statements([ast.parse(path.read_text(), str(path))]):
            if isinstance(statement, ast.ImportFrom):
                base = here[: len(here) - statement.level + 1] if statement.level else []
                origin = ".".join(base + ([statement.module] if statement.module else []))
                for alias in statement.names:
                    # `from package import module` imports the module; `from module import name`, the module.
                    if f"{origin}.{alias.name}" in modules:
                        imported.add(f"{origin}.{alias.name}")
                    elif origin in modules:
                        imported.add(origin)
            else:
                for alias in statement.names:
                    parts = alias.name.split(".")
                    while parts and ".".join(parts) not in modules:
                        parts.pop()
                    if parts:
                        imported.add(".".join(parts))
        imported.discard(name)
        graph[name] = imported
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import loop of `graph` (its first module repeated at the end), None if it has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1]
        return cycle[::-1]  # graphlib lists it against the arrows
    return None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _ancestor_at(module: str, level: int) -> str:
    """`module`'s package (or itself) with `level` + 1 parts: `wasikv.app` for `wasikv.app.loader` at 1."""
    return ".".join(module.split(".")[: level + 1])


def sibling_cycles(
    graph: Mapping[str, set[str]], ancestor: str, depth: int
) -> Iterator[tuple[str, list[str]]]:
    """Loops between the children of `ancestor` and of its subpackages `depth` generations down.

    As import-linter's `acyclic_siblings` contract: a child stands for
    itself and everything under it; the loops are (package, loop) pairs.
    """
    level = ancestor.count(".") + 1
    children = {
        ".".join(module.split(".")[: level + 1]) for module in graph if module.startswith(ancestor + ".")
    }
    between: Graph = {child: set() for child in children}
    for module, imported in graph.items():
        if not module.startswith(ancestor + "."):
            continue
        child = _ancestor_at(module, level)
        for target in imported:
            if target.startswith(ancestor + "."):
                other = _ancestor_at(target, level)
                if other != child:
                    between[child].add(other)
    cycle = find_cycle(between)
    if cycle is not None:
        yield ancestor, cycle
    if depth > 0:
        for child in sorted(children):
            yield from sibling_cycles(graph, child, depth - 1)


def import_chain(
    graph: Mapping[str, set[str]], sources: Sequence[str], forbidden: Sequence[str]
) -> list[str] | None:
    """A chain of imports from a module within `sources` to one within `forbidden`, None if none.

    Indirect imports count, as in import-linter's `forbidden` contract.
    """
    starts = [module for module in graph if any(_within(module, source) for source in sources)]
    came_from: dict[str, str | None] = dict.fromkeys(starts)
    queue = deque(starts)
    while queue:
        module = queue.popleft()
        if any(_within(module, target) for target in forbidden):
            chain = [module]
            while (previous := came_from[chain[-1]]) is not None:
                chain.append(previous)
            return chain[::-1]
        for target in sorted(graph.get(module, ())):
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    return None


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_packages"] == [PACKAGE]
    assert config["exclude_type_checking_imports"] is True
    return {contract["id"]: contract for contract in config["contracts"]}


GRAPH = import_graph()
CONTRACTS = _contracts()


def test_no_module_of_wasikv_imports_itself_through_others() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])


def _of_type(kind: str) -> list[dict[str, Any]]:
    return [contract for contract in CONTRACTS.values() if contract["type"] == kind]


@pytest.mark.parametrize("contract", _of_type("acyclic_siblings"), ids=lambda contract: contract["id"])
def test_acyclic_siblings_contract(contract: dict[str, Any]) -> None:
    loops = [
        f"in {package}: {' -> '.join(cycle)}"
        for ancestor in contract["ancestors"]
        for package, cycle in sibling_cycles(GRAPH, ancestor, contract.get("depth", 10))
    ]
    assert not loops, f"{contract['name']}: " + "; ".join(loops)


@pytest.mark.parametrize("contract", _of_type("forbidden"), ids=lambda contract: contract["id"])
def test_forbidden_contract(contract: dict[str, Any]) -> None:
    for module in [*contract["source_modules"], *contract["forbidden_modules"]]:
        assert any(_within(known, module) for known in GRAPH), f"{module} is no module of wasikv"
    chain = import_chain(GRAPH, contract["source_modules"], contract["forbidden_modules"])
    assert chain is None, f"{contract['name']}: " + " -> ".join(chain or [])


def test_the_contracts_state_wasikvs_layers() -> None:
    assert {contract["type"] for contract in CONTRACTS.values()} <= {"acyclic_siblings", "forbidden"}
    assert CONTRACTS["no-loops"]["ancestors"] == [PACKAGE]
    manifest = CONTRACTS["manifest-side"]
    assert manifest["source_modules"] == ["wasikv.app"]
    runtime = {"wasikv.triggers", "wasikv.server", "wasikv.host", "wasikv.cli"}
    assert runtime <= set(manifest["forbidden_modules"])
    # The wasmtime seam is run by the rest; it runs none of it.
    seam = CONTRACTS["runtime"]
    assert seam["source_modules"] == ["wasikv.runtime"]
    above = {"wasikv.server", "wasikv.cli", "wasikv.triggers", "wasikv.app", "wasikv.build"}
    assert above <= set(seam["forbidden_modules"])
    # Stores sit at the bottom: of the rest of wasikv they import only errors and limits
    # (limits imports only errors). Every other top-level module must be listed.
    stores = CONTRACTS["stores"]
    assert stores["source_modules"] == ["wasikv.stores"]
    top_level = {_ancestor_at(module, 1) for module in GRAPH if module != PACKAGE}
    missing = (
        top_level - {"wasikv.stores", "wasikv.errors", "wasikv.limits"} - set(stores["forbidden_modules"])
    )
    assert not missing, f"add {sorted(missing)} to the forbidden_modules of the 'stores' contract"


SAMPLE = {
    "pkg/__init__.py": "",
    "pkg/a.py": "from . import b\n",
    "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/c.py": "import pkg.a\n",
    "pkg/d.py": "def later():\n    from .sub.c import thing\n",
}


def _sample(tmp_path: Path, **changes: str) -> Graph:
    for name, text in {**SAMPLE, **changes}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return import_graph(tmp_path, "pkg")


def test_the_graph_counts_imports_in_functions_but_not_for_type_checkers(tmp_path: Path) -> None:
    graph = _sample(tmp_path)
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": set(),
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a"},
        "pkg.d": {"pkg.sub.c"},
    }
    assert find_cycle(graph) is None
    assert list(sibling_cycles(graph, "pkg", 10)) == []
    assert import_chain(graph, ["pkg.d"], ["pkg.b"]) == ["pkg.d", "pkg.sub.c", "pkg.a", "pkg.b"]
    assert import_chain(graph, ["pkg.sub"], ["pkg.d"]) is None


def test_a_loop_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    graph = _sample(tmp_path, **{"pkg/b.py": "def late():\n    from .d import later\n"})
    assert find_cycle(graph) in (
        ["pkg.a", "pkg.b", "pkg.d", "pkg.sub.c", "pkg.a"],
        ["pkg.b", "pkg.d", "pkg.sub.c", "pkg.a", "pkg.b"],
        ["pkg.d", "pkg.sub.c", "pkg.a", "pkg.b", "pkg.d"],
        ["pkg.sub.c", "pkg.a", "pkg.b", "pkg.d", "pkg.sub.c"],
    )
    assert [package for package, _ in sibling_cycles(graph, "pkg", 10)] == ["pkg"]
