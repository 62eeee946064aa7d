"""The house layout holds: every import between first-party packages is one the table allows.

The table is the one in ``docs/architecture.md`` (between ``<!-- import-table:begin -->`` and
``<!-- import-table:end -->``), parsed here, so the page and this test are one truth. Every module of
every first-party package is parsed with ``ast``: imports at any level (function-local too), both
``import x`` and ``from x import y``, relative imports resolved, imports under ``if TYPE_CHECKING:``
(a type-only import still ties the two packages together), and ``importlib.import_module("x")`` /
``__import__("x")`` with a literal name.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
ROOF = "supet"
ANY = "*"

#: Imports that break the table today: (importing module, imported module). This list must only
#: shrink: add nothing to it; delete an edge's line when the import is gone (the test fails for a
#: listed edge that no longer exists). docs/architecture.md, "Today vs target", says why each is here.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


# ---------------------------------------------------------------- the table


@cache
def table() -> dict[str, frozenset[str]]:
    """Package -> the packages it may import (``*``: any), from docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- import-table:begin -->(.*?)<!-- import-table:end -->", text, re.S)
    assert found, f"{DOC} has no import table between the import-table markers"
    rows: dict[str, frozenset[str]] = {}
    for line in found.group(1).strip().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("Layer", "") or set(cells[0]) <= set("-"):
            continue
        package = cells[1].strip("`")
        allowed = frozenset(a.strip().strip("`") for a in cells[2].split(",") if a.strip())
        assert package not in rows, f"{package} has two rows in the import table"
        rows[package] = allowed
    return rows


def installed_packages() -> set[str]:
    """The top-level packages pyproject.toml installs (``[tool.setuptools.packages.find] include``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*").rstrip(".") for pattern in include}


def allows(importer: str, imported: str) -> bool:
    allowed = table()[importer]
    return importer == imported or ANY in allowed or imported in allowed


# ---------------------------------------------------------------- the imports


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name ``tree`` imports, absolute."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                yield node.module
                continue
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            yield ".".join([*base, node.module] if node.module else base)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.args[0].value


@cache
def edges() -> frozenset[tuple[str, str]]:
    """(importing module, imported module) for every import of a first-party module, across packages."""
    first_party = set(table()) | installed_packages()
    out: set[tuple[str, str]] = set()
    for package in sorted(first_party):
        for path in sorted((ROOT / package).rglob("*.py")):
            module = module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for name in imported_names(tree, module, path.name == "__init__.py"):
                top = name.split(".")[0]
                if top in first_party and top != package:
                    out.add((module, name))
    return frozenset(out)


def package_of(module: str) -> str:
    return module.split(".")[0]


def violations() -> set[tuple[str, str]]:
    return {(m, i) for m, i in edges() if not allows(package_of(m), package_of(i))}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (its nodes in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


# ---------------------------------------------------------------- the tests


def test_the_table_covers_every_installed_package_and_names_only_its_rows() -> None:
    rows = table()
    assert ROOF in rows and rows[ROOF] == {ANY}
    missing = installed_packages() - set(rows)
    assert not missing, f"pyproject.toml installs {sorted(missing)}: give each a row in {DOC.name}"
    for package, allowed in rows.items():
        unknown = allowed - set(rows) - {ANY}
        assert not unknown, f"the row of {package} names {sorted(unknown)}, which have no row"
        assert ROOF not in allowed, f"{package} may not import {ROOF}: nothing imports the roof"


def test_the_table_is_a_dag() -> None:
    graph = {p: {a for a in allowed if a != ANY} for p, allowed in table().items()}
    assert cycle(graph) is None, f"the import table has a cycle: {' -> '.join(cycle(graph) or [])}"


def test_the_parser_sees_every_kind_of_import() -> None:
    source = (
        "import a.b\nfrom c import d\nfrom . import e\nfrom ..f import g\n"
        "if TYPE_CHECKING:\n    import h\n"
        "def late():\n    from i.j import k\n    importlib.import_module('l')\n    __import__('m.n')\n"
    )
    names = set(imported_names(ast.parse(source), "pkg.sub.mod", is_package=False))
    assert names == {"a.b", "c", "pkg.sub", "pkg.f", "h", "i.j", "l", "m.n"}
    assert set(imported_names(ast.parse("from . import x"), "pkg.sub", is_package=True)) == {"pkg.sub"}


def test_every_cross_package_import_is_allowed_by_the_table() -> None:
    new = sorted(violations() - KNOWN_VIOLATIONS)
    assert not new, (
        "imports the table in docs/architecture.md does not allow (move the code, or change the "
        "table and the page together; never add to KNOWN_VIOLATIONS):\n"
        + "\n".join(f"  {m} -> {i}" for m, i in new)
    )


def test_known_violations_still_exist() -> None:
    gone = sorted(KNOWN_VIOLATIONS - violations())
    assert not gone, "KNOWN_VIOLATIONS lists edges that no longer exist; delete them:\n" + "\n".join(
        f"  {m} -> {i}" for m, i in gone
    )


def test_nothing_imports_the_roof() -> None:
    importers = sorted((m, i) for m, i in edges() if package_of(i) == ROOF and (m, i) not in KNOWN_VIOLATIONS)
    assert not importers, "only tests and bench import supet:\n" + "\n".join(
        f"  {m} -> {i}" for m, i in importers
    )


def test_no_cycle_between_packages_beyond_the_known_violations() -> None:
    """Once KNOWN_VIOLATIONS is empty, this checks every import; until then, the rest."""
    graph: dict[str, set[str]] = {}
    for m, i in edges() - KNOWN_VIOLATIONS:
        graph.setdefault(package_of(m), set()).add(package_of(i))
    found = cycle(graph)
    assert found is None, f"the packages import each other in a cycle: {' -> '.join(found or [])}"


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _service_modules_loaded_by(code: str) -> list[str]:
    """The ``ledger_service`` modules a fresh interpreter has loaded after running ``code``."""
    probe = (
        f"{code}\nimport sys\nloaded = (m for m in sys.modules if m.split('.')[0] == 'ledger_service')\n"
        "print('LOADED:', *sorted(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1].split()
    assert last[0] == "LOADED:", done.stdout
    return last[1:]


def test_the_probe_sees_the_service() -> None:
    assert "ledger_service.service" in _service_modules_loaded_by("import supet.cli\nsupet.cli.app")


_RUN = "from supet.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize(
    "code",
    [
        "import supet.cli.verify, supet.cli.audit",
        _RUN.format(args=["verify", "--help"]),
        _RUN.format(args=["audit", "lot", "--help"]),
    ],
    ids=["modules", "supet verify", "supet audit"],
)
def test_auditor_commands_load_nothing_of_the_service(code: str) -> None:
    """``supet verify`` and ``supet audit`` run on ``auditor``: not one module of ``ledger_service``."""
    assert _service_modules_loaded_by(code) == []
