"""Static import closure of a script: which first-party modules running it imports.

Read with :mod:`ast`, nothing is imported. Every ``import`` statement counts, at module level or
inside a function (a lazy import runs when the function does), except under ``if TYPE_CHECKING:``.

* ``import a.b.c`` imports ``a``, ``a.b`` and ``a.b.c``: a package import runs its ``__init__.py``;
* ``from a.b import c`` imports ``a`` and ``a.b``, and ``a.b.c`` too where ``c`` is a submodule;
* relative imports (``from .x import y``) resolve against the importing module's package.

Only modules found under ``src/`` are followed; the standard library and third-party packages are
not first-party code. Dynamic imports (``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_file(name: str, src: Path) -> Path | None:
    """The file of module ``name`` under ``src`` (a package's ``__init__.py``), or None."""
    base = src.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST):
    """Every Import / ImportFrom in ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.orelse:
            yield from _import_nodes(stmt)
        return
    for child in ast.iter_child_nodes(node):
        yield from _import_nodes(child)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_modules(path: Path, package: str | None) -> set[str]:
    """Names of the modules that the imports in ``path`` load (first-party or not).

    ``package`` is the package ``path`` belongs to (its ``__package__``), for relative imports;
    None for a script.
    """
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
            continue
        base = node.module or ""
        if node.level:
            if not package:
                continue  # a relative import in a script fails at run time
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names.update(_with_parents(base))
        names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def import_closure(script: Path | str, root: Path = ROOT) -> set[str]:
    """Repo-relative paths of ``script`` and of every ``src/`` module it imports, transitively."""
    root = Path(root).resolve()
    script = root / script
    seen = {script}
    todo: list[tuple[Path, str | None]] = [(script, None)]
    while todo:
        path, package = todo.pop()
        for name in imported_modules(path, package):
            found = module_file(name, root / "src")  # None for `y` in `from x import y` not a module
            if found is not None and found not in seen:
                seen.add(found)
                todo.append((found, name if found.name == "__init__.py" else name.rpartition(".")[0]))
    return {path.relative_to(root).as_posix() for path in seen}
