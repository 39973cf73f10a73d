"""The import structure reads one way: import -> queue -> worker -> results -> queries -> pages.

Every module of the `mirada` package (the source roots shared/, worker/ and dashboard/ each
hold part of it: shared/mirada/queue.py is mirada.queue) is parsed with `ast`, never
imported, and checked for:

(a) no import cycle among mirada modules, counting module-level imports (those run when the
    module is imported; function-level imports and `if TYPE_CHECKING:` blocks do not);
(b) no import of another module's private name (`from mirada.x import _y`, `x._y` on an
    imported module) or of a private module (`mirada.pkg._m`) from outside its package. A
    module's underscore means "internal to its package", so modules inside `mirada.pkg` may
    import `mirada.pkg._m` (the usual Python convention: `concurrent.futures.thread` imports
    `concurrent.futures._base`); everyone else goes through the package's public names;
(c) layers: only `mirada.cli*` imports `mirada.worker` (besides the worker itself);
    `mirada.metrics*` imports none of mirada.db / results / queries / worker / dashboard;
    nothing outside `mirada.dashboard` imports it. Every import counts here, lazy ones too;
(d) no Python file over 700 lines outside migrations and tests.

The self-checks at the end feed the same functions small synthetic packages, to prove each
rule fails on a violation.
"""

from __future__ import annotations

import ast
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# The design's top-level folders: source roots, each holding part of the `mirada` namespace.
SOURCE_ROOTS = ("shared", "worker", "dashboard")


MAX_LINES = 700
LONG_FILE_EXEMPT_DIRS = {"tests", "migrations"}
SKIP_DIRS = {"__pycache__", "node_modules", "build", "dist"}

# (importer prefix, forbidden target prefixes); a prefix matches itself and its submodules.
FORBIDDEN: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "mirada.metrics",
        ("mirada.db", "mirada.results", "mirada.queries", "mirada.worker", "mirada.dashboard"),
    ),
)
# target prefix -> importer prefixes allowed to import it (besides the target's own modules).
ONLY_FROM: dict[str, tuple[str, ...]] = {
    "mirada.worker": ("mirada.cli",),
    "mirada.dashboard": (),
}


# --------------------------------------------------------------------------------------------
# reading the package
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    target: str  # a mirada module, resolved (`from X import sub` gives X.sub and X)
    line: int
    module_level: bool  # runs when the importer is imported (not in a function/TYPE_CHECKING)
    # False for X in `from X import submodule`: X is only the path to the submodule (its
    # __init__ still runs, unless X is a package the importer itself belongs to).
    direct: bool = True


@dataclass(frozen=True)
class PrivateUse:
    what: str  # "mirada.x._y"
    line: int


@dataclass
class ModuleInfo:
    name: str
    path: str
    is_package: bool
    imports: list[Import]
    private_uses: list[PrivateUse]


def is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def package_files(repo: Path = REPO) -> dict[str, Path]:
    """{module name: file} for every .py file under the source roots' mirada/ folders."""
    out: dict[str, Path] = {}
    for root in SOURCE_ROOTS:
        base = repo / root
        for path in sorted((base / "mirada").rglob("*.py")):
            rel = path.relative_to(base)
            if SKIP_DIRS & set(rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            # Two roots holding the same module would shadow each other; say so.
            assert name not in out, f"{path} and {out[name]} are both {name}"
            out[name] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, module_level: bool = True
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under `node`, with whether it runs at import time."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, module_level
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), False)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), module_level)
        else:
            yield from _walk(child, module_level)


def _base(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = name if is_package else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def analyse(
    name: str, source: str, is_package: bool, known: set[str], path: str = ""
) -> ModuleInfo:
    """Imports of mirada modules and uses of other modules' private names in one module."""
    tree = ast.parse(source, filename=path or name)
    info = ModuleInfo(name, path or name, is_package, [], [])
    bound: dict[str, str] = {}  # local name -> mirada module it refers to

    def add(target: str, line: int, module_level: bool, direct: bool = True) -> None:
        if within(target, "mirada"):
            info.imports.append(Import(target, line, module_level, direct))

    for node, module_level in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, module_level)
                if within(alias.name, "mirada"):
                    bound[alias.asname or "mirada"] = alias.name if alias.asname else "mirada"
            continue
        base = _base(node, name, is_package)
        if not within(base, "mirada"):
            continue
        names_only = True
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in known:
                add(full, node.lineno, module_level)
                bound[alias.asname or alias.name] = full
                continue
            names_only = False
            if is_private(alias.name):
                info.private_uses.append(PrivateUse(full, node.lineno))
        add(base, node.lineno, module_level, direct=not names_only)

    def resolve(expr: ast.expr) -> str | None:
        """The mirada module an expression names (`stats`, `mirada.metrics.stats`), if any."""
        if isinstance(expr, ast.Name):
            return bound.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = resolve(expr.value)
            if base is not None and f"{base}.{expr.attr}" in known:
                return f"{base}.{expr.attr}"
        return None

    for node in ast.walk(tree):  # x._y where x is an imported mirada module
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            base = resolve(node.value)
            if base is not None and f"{base}.{node.attr}" not in known:
                info.private_uses.append(PrivateUse(f"{base}.{node.attr}", node.lineno))
    return info


def load_package(sources: Mapping[str, tuple[str, bool, str]]) -> dict[str, ModuleInfo]:
    """{name: ModuleInfo} from {name: (source, is_package, path)}."""
    known = set(sources)
    return {n: analyse(n, src, pkg, known, path) for n, (src, pkg, path) in sources.items()}


def real_package() -> dict[str, ModuleInfo]:
    files = package_files()
    return load_package(
        {
            name: (path.read_text(encoding="utf-8"), path.name == "__init__.py", rel(path))
            for name, path in files.items()
        }
    )


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --------------------------------------------------------------------------------------------
# the rules
# --------------------------------------------------------------------------------------------
def import_cycles(modules: Mapping[str, ModuleInfo]) -> list[str]:
    """One cycle per strongly connected component of the module-level import graph, as
    "a -> b (file:line) -> a (file:line)".

    Importing `a.b.c` also runs the `__init__` of `a` and `a.b`: those are edges too, except
    to the importer's own enclosing packages, which are always initialised before it (so
    `from mirada.datasets import store` inside mirada.datasets is no cycle, while
    `from mirada.datasets import list_datasets` there is: it needs the package's names).
    """
    graph: dict[str, dict[str, int]] = {n: {} for n in modules}
    for m in modules.values():
        for imp in m.imports:
            if not imp.module_level:
                continue
            parts = imp.target.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                enclosing = within(m.name, target)
                wanted = (target == imp.target and imp.direct) or not enclosing
                if wanted and target in modules and target != m.name:
                    graph[m.name].setdefault(target, imp.line)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph has ~100 nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        start = comp[0]
        members = set(comp)
        # Shortest way back to `start` inside the component (breadth-first).
        prev: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w not in members:
                        continue
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        assert found is not None
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        path.reverse()
        path.append(start)
        hops = [f"{b} ({modules[a].path}:{graph[a][b]})" for a, b in itertools.pairwise(path)]
        cycles.append(" -> ".join([start, *hops]))
    return cycles


def private_imports(modules: Mapping[str, ModuleInfo]) -> list[str]:
    """Uses of another module's private name, and imports of private modules from outside
    their package."""
    out = []
    for m in modules.values():
        for use in m.private_uses:
            out.append(f"{m.path}:{use.line}: uses private {use.what}")
        for imp in m.imports:
            parts = imp.target.split(".")
            for i, part in enumerate(parts):
                if is_private(part):
                    owner = ".".join(parts[:i])  # the package the private module belongs to
                    if not within(m.name, owner):
                        out.append(f"{m.path}:{imp.line}: imports private module {imp.target}")
                    break
    return sorted(set(out))


def layer_violations(modules: Mapping[str, ModuleInfo]) -> list[str]:
    out = []
    for m in modules.values():
        for imp in m.imports:
            if not imp.direct:
                continue  # `from X import sub`: reported as X.sub
            for importer, targets in FORBIDDEN:
                if within(m.name, importer):
                    for t in targets:
                        if within(imp.target, t):
                            out.append(f"{m.path}:{imp.line}: {m.name} imports {imp.target}")
            for target, allowed in ONLY_FROM.items():
                if within(imp.target, target) and not within(m.name, target):
                    if not any(within(m.name, a) for a in allowed):
                        who = ", ".join(allowed) or f"{target} itself"
                        out.append(
                            f"{m.path}:{imp.line}: {m.name} imports {imp.target} (only {who} may)"
                        )
    return sorted(set(out))


def long_files(paths: Iterable[tuple[str, int]]) -> list[str]:
    """(path relative to the repository, line count) pairs over the limit, outside the
    exempt folders."""
    return [
        f"{p}: {n} lines (limit {MAX_LINES})"
        for p, n in paths
        if n > MAX_LINES and not LONG_FILE_EXEMPT_DIRS & set(Path(p).parts[:-1])
    ]


def repo_python_files(repo: Path = REPO) -> Iterator[tuple[str, int]]:
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info")
        ]
        for f in filenames:
            if f.endswith(".py"):
                path = Path(dirpath, f)
                with path.open(encoding="utf-8") as fh:
                    yield str(path.relative_to(repo)), sum(1 for _ in fh)


# --------------------------------------------------------------------------------------------
# the real tree
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def package() -> dict[str, ModuleInfo]:
    return real_package()


def _report(title: str, problems: list[str]) -> str:
    return f"{len(problems)} {title}:\n  " + "\n  ".join(problems)


def test_the_package_is_all_there(package: dict[str, ModuleInfo]) -> None:
    # Guards the other tests against walking an empty or wrongly mapped tree.
    for name in ("mirada.version", "mirada.cli", "mirada.metrics.report", "mirada.worker"):
        assert name in package
    assert "mirada.dashboard" in package and len(package) > 50


def test_no_import_cycles(package: dict[str, ModuleInfo]) -> None:
    cycles = import_cycles(package)
    assert not cycles, _report("import cycles (module-level imports)", cycles)


def test_no_private_imports(package: dict[str, ModuleInfo]) -> None:
    problems = private_imports(package)
    assert not problems, _report("uses of another module's private names", problems)


def test_layers(package: dict[str, ModuleInfo]) -> None:
    problems = layer_violations(package)
    assert not problems, _report("imports against the layering", problems)


def test_no_long_files() -> None:
    problems = long_files(repo_python_files())
    assert not problems, _report(f"Python files over {MAX_LINES} lines", problems)


# --------------------------------------------------------------------------------------------
# self-checks: each rule fails on a synthetic violation and passes the clean variant
# --------------------------------------------------------------------------------------------
def _pkg(**sources: str) -> dict[str, ModuleInfo]:
    """Modules from name=source; names use "__" for "." and a trailing "__init" marks a
    package, e.g. mirada__vlm__init="..." is mirada/vlm/__init__.py."""
    spec = {}
    for key, src in sources.items():
        parts = key.split("__")
        is_pkg = parts[-1] == "init"
        if is_pkg:
            parts.pop()
        spec[".".join(parts)] = (src, is_pkg, "/".join(parts) + ".py")
    spec.setdefault("mirada", ("", True, "mirada/__init__.py"))
    return load_package(spec)


@pytest.mark.parametrize(
    ("sources", "expect"),
    [
        pytest.param(
            {"mirada__a": "import mirada.b\n", "mirada__b": "from mirada import a\n"},
            ["mirada.a -> mirada.b (mirada/a.py:1) -> mirada.a (mirada/b.py:1)"],
            id="two-module-cycle",
        ),
        pytest.param(
            {
                "mirada__a": "from mirada.b import x\n",
                "mirada__b": "from . import c\n",
                "mirada__c": "from .a import y\n",
            },
            [
                "mirada.a -> mirada.b (mirada/a.py:1) -> mirada.c (mirada/b.py:1) "
                "-> mirada.a (mirada/c.py:1)"
            ],
            id="three-module-cycle-relative",
        ),
        pytest.param(
            {"mirada__a": "import mirada.b\n", "mirada__b": "def f():\n    import mirada.a\n"},
            [],
            id="lazy-import-breaks-it",
        ),
        pytest.param(
            {
                "mirada__a": "import mirada.b\n",
                "mirada__b": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from mirada.a import A\n",
            },
            [],
            id="type-checking-only",
        ),
        pytest.param(
            {"mirada__a": "import mirada.b\n", "mirada__b": "import os\n"}, [], id="acyclic"
        ),
        pytest.param(
            {
                "mirada__d__init": "from mirada.d.importer import run\n",
                "mirada__d__importer": "from mirada.d import store\n",
                "mirada__d__store": "",
            },
            [],
            id="submodule-from-own-package",
        ),
        pytest.param(
            {
                "mirada__d__init": "from mirada.d.importer import run\n",
                "mirada__d__importer": "from mirada.d import store, listing\n",
                "mirada__d__store": "",
            },
            ["mirada.d -> mirada.d.importer (mirada/d.py:1) -> mirada.d (mirada/d/importer.py:1)"],
            id="name-from-own-package-init",
        ),
        pytest.param(
            {
                "mirada__d__init": "from mirada.q import x\n",
                "mirada__d__store": "",
                "mirada__q": "import mirada.d.store\n",
            },
            ["mirada.d -> mirada.q (mirada/d.py:1) -> mirada.d (mirada/q.py:1)"],
            id="through-a-package-init",
        ),
    ],
)
def test_self_check_cycles(sources: dict[str, str], expect: list[str]) -> None:
    assert import_cycles(_pkg(**sources)) == expect


@pytest.mark.parametrize(
    ("sources", "expect"),
    [
        pytest.param(
            {"mirada__a": "x = 1\n_y = 2\n", "mirada__b": "from mirada.a import x, _y\n"},
            ["mirada/b.py:1: uses private mirada.a._y"],
            id="private-name-from-import",
        ),
        pytest.param(
            {
                "mirada__m__init": "",
                "mirada__m__stats": "def _interval(): ...\n",
                "mirada__m__report": "from mirada.m import stats\n\nstats._interval()\n",
            },
            ["mirada/m/report.py:3: uses private mirada.m.stats._interval"],
            id="private-attribute-of-imported-module",
        ),
        pytest.param(
            {
                "mirada__m__stats": "def _interval(): ...\n",
                "mirada__n": "import mirada.m.stats as s\n\nv = s._interval\n",
            },
            ["mirada/n.py:3: uses private mirada.m.stats._interval"],
            id="private-attribute-via-alias",
        ),
        pytest.param(
            {
                "mirada__vlm__init": "",
                "mirada__vlm___common": "x = 1\n",
                "mirada__cli": "from mirada.vlm._common import x\n",
            },
            ["mirada/cli.py:1: imports private module mirada.vlm._common"],
            id="private-module-from-outside",
        ),
        pytest.param(
            {
                "mirada__vlm__init": "from . import _common\n",
                "mirada__vlm___common": "x = 1\n",
                "mirada__vlm__clip": "from mirada.vlm._common import x\n",
            },
            [],
            id="private-module-inside-its-package",
        ),
        pytest.param(
            {
                "mirada__a": "__all__ = ['x']\nx = 1\n",
                "mirada__b": "from mirada import __version__\n",
            },
            [],
            id="dunder-is-public",
        ),
    ],
)
def test_self_check_private(sources: dict[str, str], expect: list[str]) -> None:
    assert private_imports(_pkg(**sources)) == expect


@pytest.mark.parametrize(
    ("sources", "expect"),
    [
        pytest.param(
            {
                "mirada__worker__init": "",
                "mirada__worker__main": "",
                "mirada__demo_session": "def run():\n    from mirada.worker.main import Loop\n",
            },
            [
                "mirada/demo_session.py:2: mirada.demo_session imports mirada.worker.main "
                "(only mirada.cli may)"
            ],
            id="worker-imported-outside-cli-even-lazily",
        ),
        pytest.param(
            {
                "mirada__worker__init": "",
                "mirada__worker__main": "from mirada.worker import tasks\n",
                "mirada__worker__tasks": "",
                "mirada__cli__init": "",
                "mirada__cli__runs": "from mirada.worker.main import Loop\n",
            },
            [],
            id="cli-and-worker-itself-may",
        ),
        pytest.param(
            {
                "mirada__metrics__init": "",
                "mirada__metrics__report": "from mirada.results import MetricValue\n",
                "mirada__results": "",
            },
            ["mirada/metrics/report.py:1: mirada.metrics.report imports mirada.results"],
            id="metrics-imports-storage",
        ),
        pytest.param(
            {
                "mirada__metrics__init": "",
                "mirada__metrics__report": "import mirada.db.models\n",
                "mirada__db__init": "",
                "mirada__db__models": "",
            },
            ["mirada/metrics/report.py:1: mirada.metrics.report imports mirada.db.models"],
            id="metrics-imports-db",
        ),
        pytest.param(
            {
                "mirada__dashboard__init": "",
                "mirada__dashboard__charts": "",
                "mirada__export": "from mirada.dashboard import charts\n",
            },
            [
                "mirada/export.py:1: mirada.export imports mirada.dashboard.charts (only "
                "mirada.dashboard itself may)",
            ],
            id="dashboard-imported-from-outside",
        ),
        pytest.param(
            {
                "mirada__results": "from mirada.metrics.types import MetricValue\n",
                "mirada__metrics__types": "",
            },
            [],
            id="storage-may-import-metrics",
        ),
    ],
)
def test_self_check_layers(sources: dict[str, str], expect: list[str]) -> None:
    assert layer_violations(_pkg(**sources)) == expect


def test_self_check_long_files() -> None:
    files = [
        ("shared/queries/dashboard.py", 1244),
        ("shared/db/migrations/versions/0001_initial.py", 900),
        ("tests/test_big.py", 2000),
        ("shared/queue.py", 700),
    ]
    assert long_files(files) == ["shared/queries/dashboard.py: 1244 lines (limit 700)"]
