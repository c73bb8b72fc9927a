"""A look at an app's source before componentize-py runs: is the class its world calls missing,
does it import a module that is nowhere on the guest's path (`spin_sdk`, say)?

componentize-py reports either only once it has linked the app and started
pre-initialising it, seconds into the build. The module's syntax tree says
it at once. The look errs on the side of building: a
module that could bind names in ways its syntax tree does not show (a star
import, a module `__getattr__`, `globals()`, `exec`, a `global` statement
naming the class, ...) is left to componentize-py, and so is a module the
host's Python cannot parse (the guest's Python may be newer).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["missing_class", "missing_import"]

#: Names through which a module can gain attributes its syntax tree does not show.
_DYNAMIC = frozenset(
    {"globals", "vars", "locals", "exec", "eval", "setattr", "__import__", "__dict__", "modules", "importlib"}
)


def missing_class(source_file: Path, name: str) -> bool:
    """Whether the module in `source_file` certainly binds no top-level `name`.

    False whenever that cannot be told for sure, including when the file
    cannot be read or parsed.
    """
    try:
        tree = ast.parse(source_file.read_text("utf-8"), str(source_file))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return False
    if _binds_dynamically(tree, name):
        return False
    return name not in set(_module_bindings(tree))


def missing_import(source_file: Path, top: str, python_path: Sequence[Path]) -> tuple[int, str] | None:
    """(line number, line) of a top-level import of module `top` (or a submodule) that certainly fails.

    Certain means: the statement is in the module's body (not under `try`,
    `if` or a function), nothing on `python_path` is named `top`, the module
    never touches `sys.path` or imports dynamically, and it imports nothing
    but the standard library and wasikv_sdk before (another module of the
    app could extend the path). None otherwise.
    """
    try:
        text = source_file.read_text("utf-8")
        tree = ast.parse(text, str(source_file))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if _binds_dynamically(tree, "") or _changes_the_path(tree) or _on_path(top, python_path):
        return None
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == top or name.startswith(f"{top}.") for name in names):
            if _imports_others_before(tree, node.lineno):
                return None
            return node.lineno, text.splitlines()[node.lineno - 1]
    return None


#: Modules imported before the one checked that cannot add to the guest's path.
_INERT = frozenset({*sys.stdlib_module_names, "__future__", "wasikv_sdk", "componentize_py_types"})


def _imports_others_before(tree: ast.Module, line: int) -> bool:
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno >= line:
            continue
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else [""]
        else:
            names = [alias.name for alias in node.names]
        if any(name.partition(".")[0] not in _INERT for name in names):
            return True
    return False


def _changes_the_path(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr in {"path", "meta_path", "path_hooks"}
        for node in ast.walk(tree)
    )


def _on_path(top: str, python_path: Sequence[Path]) -> bool:
    """Whether a module or package named `top` may be found in one of the directories (any suffix)."""
    for directory in python_path:
        try:
            if any(entry.name == top or entry.name.startswith(f"{top}.") for entry in directory.iterdir()):
                return True
        except OSError:
            return True  # cannot tell: leave it to componentize-py
    return False


def _binds_dynamically(tree: ast.Module, name: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__getattr__":
            return True
        if isinstance(node, (ast.Global, ast.Nonlocal)) and name in node.names:
            return True
        if isinstance(node, ast.Name) and node.id in _DYNAMIC:
            return True
        if isinstance(node, ast.Attribute) and node.attr in _DYNAMIC:
            return True
    return False


def _module_bindings(tree: ast.Module) -> Iterator[str]:
    """Every name the module's own code may bind (more, never fewer: comprehension variables too)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
            # Decorators, defaults and bases run at import time; the body does not.
            pending.extend(child for field, child in _children(node) if field != "body")
            continue
        if isinstance(node, ast.Lambda):
            pending.append(node.args)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                yield alias.asname or alias.name.partition(".")[0]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield node.name
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest
        pending.extend(child for _, child in _children(node))


def _children(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    for field, value in ast.iter_fields(node):
        if isinstance(value, ast.AST):
            yield field, value
        elif isinstance(value, list):
            yield from ((field, item) for item in value if isinstance(item, ast.AST))
