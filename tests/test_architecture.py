"""The package's shape, read from its source with ``ast`` (nothing is imported):

- no import cycle among the package's modules (docs/architecture.md: imports only go down);
- ``core`` is pure: it imports ``core``, the standard library and a few pure libraries only
  (``src/oauth_vault_mw/core/README.md``), never a framework, HTTP client or database driver;
- every module in ``_sync/`` is generated from one in ``_async/`` (``scripts/unasync.py``;
  the test command's ``unasync.py --check`` also checks that each is up to date);
- the tests name the exceptions they expect or catch.

Every ``import`` and ``from ... import`` counts, at module level or inside a function (a
deferred import still runs), relative ones resolved against the importing module.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "oauth_vault_mw"
CORE = f"{PACKAGE}.core"

CORE_MAY_IMPORT = (
    "cryptography",  # AES-GCM sealing, Ed25519 app-token keys
    "itsdangerous",  # signed cookies
    "jwt",  # PyJWT: app tokens
    "joserfc",  # ID token signatures, JWKS
    "authlib.oidc",  # ID token claims (authlib's OIDC claims only, not its clients)
    "tomli",  # the standard library's tomllib, before Python 3.11
)
"""What ``core`` may import besides itself and the standard library: pure libraries."""


@dataclass(frozen=True)
class Import:
    """One name an ``import`` statement brings in, resolved to an absolute module name."""

    importer: str
    target: str
    path: Path
    line: int
    statement: str
    typing_only: bool  # under ``if TYPE_CHECKING:``: never runs

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.statement}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name ``from <level dots><module> import ...`` means in ``importer``."""
    if level == 0:
        assert module is not None
        return module
    parts = importer.split(".") if is_package else importer.split(".")[:-1]
    base = parts[: len(parts) - (level - 1)]
    assert base, f"{importer}: relative import beyond the top-level package"
    return ".".join([*base, module] if module else base)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> Iterator[Import]:
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, typing_only: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, path, node.lineno, ast.unparse(node), typing_only)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"  # ``from pkg import module`` imports the module
                target = sub if sub in MODULES else base
                yield Import(name, target, path, node.lineno, ast.unparse(node), typing_only)
        for child in ast.iter_child_nodes(node):
            guarded = typing_only or (isinstance(node, ast.If) and _is_type_checking(node))
            yield from visit(child, guarded)

    yield from visit(tree, False)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, dict[str, Import]]:
    """For each module, the package modules importing it runs, with the statement that does.

    ``import a.b.c`` also runs the ``__init__`` of ``a.b`` (and ``a``): an edge to each
    package on the way, but not to the importer's own packages (already being imported when
    it runs) unless it imports from one (``from .. import X`` reads a half-imported package).
    """
    graph: dict[str, dict[str, Import]] = {name: {} for name in MODULES}
    for name in MODULES:
        own = {*_ancestors(name), name}
        for imp in imports_of(name):
            if imp.typing_only or imp.target not in MODULES:
                continue
            passed = [p for p in _ancestors(imp.target) if p in MODULES and p not in own]
            for target in [*passed, imp.target]:
                if target != name:
                    graph[name].setdefault(target, imp)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle through each strongly connected component (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)

    found = []
    for component in components:
        start = min(component)
        # Breadth-first inside the component: the shortest way from start back to start.
        paths = {start: [start]}
        queue = [start]
        while queue:
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append([*paths[node], start])
                    queue = []
                    break
                if nxt in component and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
    return found


def test_no_import_cycle() -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(MODULES)))
    graph = import_graph()
    assert len(graph) > 30, "the package's modules were not found"
    reports = []
    for cycle in cycles(graph):
        steps = [f"  {a} imports {b}\n      {graph[a][b].where()}" for a, b in pairwise(cycle)]
        reports.append(" -> ".join(cycle) + "\n" + "\n".join(steps))
    assert not reports, (
        "import cycles (one per group of modules that import each other):\n" + "\n".join(reports)
    )


def _core_may_import(target: str) -> bool:
    if target == PACKAGE or target.startswith(PACKAGE + "."):
        return target == CORE or target.startswith(CORE + ".")
    if target.split(".")[0] in sys.stdlib_module_names:
        return True
    return any(target == allowed or target.startswith(allowed + ".") for allowed in CORE_MAY_IMPORT)


def test_core_imports_only_core_the_standard_library_and_pure_libraries() -> None:
    core = [name for name in MODULES if name == CORE or name.startswith(CORE + ".")]
    assert len(core) > 10, "the core modules were not found"
    refused = [
        f"{imp.importer} imports {imp.target}\n    {imp.where()}"
        for name in core
        for imp in imports_of(name)
        if not _core_may_import(imp.target)
    ]
    assert not refused, (
        "core must stay pure (standard library, core and "
        f"{', '.join(CORE_MAY_IMPORT)} only):\n" + "\n".join(refused)
    )


def _unasync_header() -> str:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    header: str = script.HEADER
    return header


def test_every_sync_module_is_generated_from_an_async_one() -> None:
    header = _unasync_header()
    sync_dir, async_dir = SRC / PACKAGE / "_sync", SRC / PACKAGE / "_async"
    generated = sorted(p.name for p in sync_dir.glob("*.py"))
    sources = sorted(p.name for p in async_dir.glob("*.py"))
    assert sources, "no _async modules found"
    problems = [
        f"_sync/{name} has no source _async/{name}" for name in generated if name not in sources
    ]
    problems += [
        f"_async/{name} has no generated _sync/{name}" for name in sources if name not in generated
    ]
    for name in generated:
        with (sync_dir / name).open() as text:
            first = text.readline()
        if first != header.format(name=name):
            problems.append(f"_sync/{name} does not start with the header: {first.rstrip()!r}")
    assert not problems, "run python scripts/unasync.py:\n" + "\n".join(problems)


# -- the tests themselves --------------------------------------------------------------------

BLIND = {"Exception", "BaseException"}


def _blind(node: ast.expr | None) -> bool:
    if node is None:
        return True  # a bare except
    if isinstance(node, ast.Tuple):
        return any(_blind(element) for element in node.elts)
    return isinstance(node, ast.Name) and node.id in BLIND


def _reraises(handler: ast.ExceptHandler) -> bool:
    """A cleanup handler: it ends by raising the exception again (bare ``raise``)."""
    last = handler.body[-1]
    return isinstance(last, ast.Raise) and last.exc is None


def _is_pytest_raises(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "raises"


def test_tests_name_the_exceptions_they_expect() -> None:
    """No ``except Exception``, bare ``except:`` or ``pytest.raises(Exception)`` in tests/:
    a test that accepts any exception passes on the wrong one."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and _blind(node.type) and not _reraises(node):
                kind = f"except {ast.unparse(node.type)}:" if node.type else "bare except:"
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {kind}")
            elif (
                isinstance(node, ast.Call)
                and _is_pytest_raises(node)
                and node.args
                and _blind(node.args[0])
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "name the exception:\n" + "\n".join(found)
