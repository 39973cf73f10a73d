"""The import structure follows an ordered list of layers (LAYERS below), lowest first:

    foundation < pure computation < models < storage (datasets, db, results, ...)
    < run options and the Task table < queue < worker < read side (queries, export, ...)
    < pages < entry points

A run's data flows import -> queue -> worker -> results -> queries -> pages, and no module
reaches up that chain; the stored results' types sit in storage, below the queue and the
worker that write them.

Every module of the `mirada` package (the source roots shared/, worker/ and dashboard/ each
hold part of it: shared/mirada/queue.py is mirada.queue) is parsed with `ast`, never
imported. "Every import" below means every `import`/`from ... import` naming a mirada
module, at module level or inside a function (a lazy import is still a dependency); only
imports under `if TYPE_CHECKING:` are left out, since they never run. Checked:

(a) layers: every module belongs to exactly one layer (each layer is a set of module
    prefixes; a prefix matches itself and its submodules), every prefix names a module, and
    a module imports only modules of its own layer or lower ones;
(b) named rules the layers alone would allow or that were once broken: `mirada.vlm` imports
    nothing from `mirada.run_options` or `mirada.queue` (models do not know how runs are
    configured or queued); only `mirada.cli` imports `mirada.worker` (besides the worker
    itself), and nothing outside `mirada.dashboard` imports it;
(c) no import cycle among mirada modules, counting every import. Importing `a.b.c` also runs
    the `__init__` of `a` and `a.b`, so those count too, except the importer's own enclosing
    packages (always initialised before it);
(d) no import of another module's private name (`from mirada.x import _y`, `x._y` on an
    imported module) or of a private module (`mirada.pkg._m`) from outside its package. A
    module's underscore means "internal to its package", so modules inside `mirada.pkg` may
    import `mirada.pkg._m` (the usual Python convention: `concurrent.futures.thread` imports
    `concurrent.futures._base`); everyone else goes through the package's public names
    (here `if TYPE_CHECKING:` imports count too);
(e) no Python file over 700 lines outside migrations and tests.

The self-checks at the end feed the same functions small synthetic packages, to prove each
rule fails on a violation (a function-level import cycle, vlm -> run_options, a module
reaching a higher layer, a module in no layer) and passes the clean variant.
"""

from __future__ import annotations

import ast
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parents[1]


# The design's top-level folders: source roots, each holding part of the `mirada` namespace.
SOURCE_ROOTS = ("shared", "worker", "dashboard")


MAX_LINES = 700
LONG_FILE_EXEMPT_DIRS = {"tests", "migrations"}
SKIP_DIRS = {"__pycache__", "node_modules", "build", "dist"}


@dataclass(frozen=True)
class Layer:
    name: str
    prefixes: tuple[str, ...]  # a prefix matches itself and its submodules


# Lowest first; a module may import its own layer and those before it.
LAYERS: tuple[Layer, ...] = (
    # Vocabularies, settings and helpers every layer uses; they import no other layer.
    Layer(
        "foundation",
        (
            "mirada.errors",
            "mirada.version",
            "mirada.domain",
            "mirada.text_safety",
            "mirada.atomic_file",
            "mirada.config",
        ),
    ),
    # Metrics on arrays: no database, no model, no run.
    Layer("pure computation", ("mirada.metrics",)),
    # Model ids, the family table and the adapters.
    Layer("models", ("mirada.vlm",)),
    # Tables and what reads or writes them without a run: datasets, caches, stored results.
    Layer(
        "storage",
        (
            "mirada.db",
            "mirada.datasets",
            "mirada.embedding_cache",
            "mirada.hardware",
            "mirada.results",
            "mirada.benchmark_records",
        ),
    ),
    # What a run asks for (validated against the models) and each task's facts.
    Layer("run options and the Task table", ("mirada.run_options", "mirada.tasks")),
    Layer("queue", ("mirada.queue",)),
    Layer("worker", ("mirada.worker",)),
    # Reading results back out: queries, 2-D projections of stored embeddings, exports and
    # bundles. mirada.projections reads embeddings through queries, so it lives here, not
    # beside mirada.metrics.projection (the pure t-SNE/PCA it calls).
    Layer("read side", ("mirada.queries", "mirada.projections", "mirada.export", "mirada.bundles")),
    Layer("pages", ("mirada.dashboard",)),
    # Commands: the CLI, `python -m mirada`, and the demo (its synthetic data and training).
    Layer("entry points", ("mirada.cli", "mirada.demo", "mirada.__main__")),
)

# (importer prefix, forbidden target prefixes).
FORBIDDEN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mirada.vlm", ("mirada.run_options", "mirada.queue")),
)
# target prefix -> importer prefixes allowed to import it (besides the target's own modules).
ONLY_FROM: dict[str, tuple[str, ...]] = {
    "mirada.worker": ("mirada.cli",),
    "mirada.dashboard": (),
}


# --------------------------------------------------------------------------------------------
# reading the package
# --------------------------------------------------------------------------------------------
# Where an import statement sits: at module level, inside a function (runs when called), or
# under `if TYPE_CHECKING:` (never runs; the only kind no rule counts).
Where = Literal["module", "function", "type_checking"]


@dataclass(frozen=True)
class Import:
    target: str  # a mirada module, resolved (`from X import sub` gives X.sub and X)
    line: int
    where: Where
    # False for X in `from X import submodule`: X is only the path to the submodule (its
    # __init__ still runs, unless X is a package the importer itself belongs to).
    direct: bool = True

    @property
    def counts(self) -> bool:
        return self.where != "type_checking"


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
    node: ast.AST, where: Where = "module"
) -> Iterator[tuple[ast.Import | ast.ImportFrom, Where]]:
    """Every import statement under `node`, with where it sits."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, where
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, "type_checking" if where == "type_checking" else "function")
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), "type_checking")
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), where)
        else:
            yield from _walk(child, where)


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

    def add(target: str, line: int, where: Where, direct: bool = True) -> None:
        if within(target, "mirada"):
            info.imports.append(Import(target, line, where, direct))

    for node, where in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, where)
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
                add(full, node.lineno, where)
                bound[alias.asname or alias.name] = full
                continue
            names_only = False
            if is_private(alias.name):
                info.private_uses.append(PrivateUse(full, node.lineno))
        add(base, node.lineno, where, direct=not names_only)

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
    """One cycle per strongly connected component of the import graph (every import but
    `if TYPE_CHECKING:` ones), as "a -> b (file:line) -> a (file:line, in a function)".

    Importing `a.b.c` also runs the `__init__` of `a` and `a.b`: those are edges too, except
    to the importer's own enclosing packages, which are always initialised before it (so
    `from mirada.datasets import store` inside mirada.datasets is no cycle, while
    `from mirada.datasets import list_datasets` there is: it needs the package's names).
    """
    graph: dict[str, dict[str, str]] = {n: {} for n in modules}  # a -> {b: where a imports b}
    for m in modules.values():
        for imp in m.imports:
            if not imp.counts:
                continue
            lazy = ", in a function" if imp.where == "function" else ""
            parts = imp.target.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                enclosing = within(m.name, target)
                wanted = (target == imp.target and imp.direct) or not enclosing
                if wanted and target in modules and target != m.name:
                    graph[m.name].setdefault(target, f"{m.path}:{imp.line}{lazy}")
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
        hops = [f"{b} ({graph[a][b]})" for a, b in itertools.pairwise(path)]
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


def layer_index(name: str, layers: Sequence[Layer] = LAYERS) -> list[int]:
    """The layers (their positions) whose prefixes match `name`: exactly one, for a sound
    table."""
    return [i for i, layer in enumerate(layers) if any(within(name, p) for p in layer.prefixes)]


def layer_membership(
    modules: Mapping[str, ModuleInfo], layers: Sequence[Layer] = LAYERS
) -> list[str]:
    """Modules in no layer or in several, and prefixes that name no module (a typo would
    leave a layer silently empty)."""
    out = []
    for name in sorted(modules):
        found = layer_index(name, layers)
        if not found:
            out.append(f"{modules[name].path}: {name} belongs to no layer (add it to LAYERS)")
        elif len(found) > 1:
            which = ", ".join(layers[i].name for i in found)
            out.append(f"{modules[name].path}: {name} belongs to several layers: {which}")
    for layer in layers:
        for prefix in layer.prefixes:
            if not any(within(name, prefix) for name in modules):
                out.append(f"layer {layer.name!r}: {prefix} names no module")
    return out


def layer_violations(
    modules: Mapping[str, ModuleInfo], layers: Sequence[Layer] = LAYERS
) -> list[str]:
    """Imports (every kind but `if TYPE_CHECKING:`) of a module in a higher layer. Modules
    outside exactly one layer are layer_membership's to report."""
    out = []
    for m in modules.values():
        own = layer_index(m.name, layers)
        if len(own) != 1:
            continue
        for imp in m.imports:
            if not imp.direct or not imp.counts:
                continue  # `from X import sub`: reported as X.sub
            theirs = layer_index(imp.target, layers)
            if len(theirs) == 1 and theirs[0] > own[0]:
                lazy = " (in a function)" if imp.where == "function" else ""
                out.append(
                    f"{m.path}:{imp.line}: {m.name} ({layers[own[0]].name}) imports "
                    f"{imp.target} ({layers[theirs[0]].name}), a higher layer{lazy}"
                )
    return sorted(set(out))


def rule_violations(modules: Mapping[str, ModuleInfo]) -> list[str]:
    """The named rules: FORBIDDEN and ONLY_FROM, counting every import but
    `if TYPE_CHECKING:` ones."""
    out = []
    for m in modules.values():
        for imp in m.imports:
            if not imp.direct or not imp.counts:
                continue  # `from X import sub`: reported as X.sub
            for importer, targets in FORBIDDEN:
                if within(m.name, importer):
                    for t in targets:
                        if within(imp.target, t):
                            out.append(
                                f"{m.path}:{imp.line}: {m.name} imports {imp.target} "
                                f"({importer} may import nothing from {t})"
                            )
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


def test_every_module_in_one_layer(package: dict[str, ModuleInfo]) -> None:
    problems = layer_membership(package)
    assert not problems, _report("modules outside exactly one layer", problems)


def test_no_import_cycles(package: dict[str, ModuleInfo]) -> None:
    cycles = import_cycles(package)
    assert not cycles, _report("import cycles (imports inside functions count)", cycles)


def test_no_private_imports(package: dict[str, ModuleInfo]) -> None:
    problems = private_imports(package)
    assert not problems, _report("uses of another module's private names", problems)


def test_layers(package: dict[str, ModuleInfo]) -> None:
    problems = layer_violations(package)
    assert not problems, _report("imports of a higher layer", problems)


def test_named_rules(package: dict[str, ModuleInfo]) -> None:
    problems = rule_violations(package)
    assert not problems, _report("imports against the named rules", problems)


def test_no_long_files() -> None:
    problems = long_files(repo_python_files())
    assert not problems, _report(f"Python files over {MAX_LINES} lines", problems)


# --------------------------------------------------------------------------------------------
# self-checks: each rule fails on a synthetic violation and passes the clean variant
# --------------------------------------------------------------------------------------------
def _pkg(**sources: str) -> dict[str, ModuleInfo]:
    """Modules from name=source; names use "__" for "." and a trailing "__init" marks a
    package, e.g. mirada__vlm__init="..." is mirada/vlm/__init__.py. Like the real tree,
    `mirada` itself is a namespace package with no module of its own."""
    spec = {}
    for key, src in sources.items():
        parts = key.split("__")
        is_pkg = parts[-1] == "init"
        if is_pkg:
            parts.pop()
        spec[".".join(parts)] = (src, is_pkg, "/".join(parts) + ".py")
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
            ["mirada.a -> mirada.b (mirada/a.py:1) -> mirada.a (mirada/b.py:2, in a function)"],
            id="function-level-import-cycle",
        ),
        pytest.param(
            {
                "mirada__run_options": "def seed():\n    from mirada.vlm.registry import S\n",
                "mirada__vlm__init": "",
                "mirada__vlm__registry": "def load():\n"
                "    from mirada.run_options import DEFAULT_SEED\n",
            },
            [
                "mirada.run_options -> mirada.vlm.registry (mirada/run_options.py:2, in a "
                "function) -> mirada.run_options (mirada/vlm/registry.py:2, in a function)"
            ],
            id="both-sides-lazy",
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
                "mirada__vlm__init": "",
                "mirada__vlm__registry": "def load():\n"
                "    from mirada.run_options import DEFAULT_SEED\n",
                "mirada__run_options": "",
            },
            [
                "mirada/vlm/registry.py:2: mirada.vlm.registry (models) imports "
                "mirada.run_options (run options and the Task table), a higher layer "
                "(in a function)"
            ],
            id="vlm-imports-run-options-lazily",
        ),
        pytest.param(
            {
                "mirada__db__init": "",
                "mirada__db__models": "from mirada.queue import claim\n",
                "mirada__queue": "from mirada.db.models import Run\n",
            },
            [
                "mirada/db/models.py:1: mirada.db.models (storage) imports mirada.queue "
                "(queue), a higher layer"
            ],
            id="storage-imports-queue",
        ),
        pytest.param(
            {
                "mirada__metrics__init": "",
                "mirada__metrics__report": "from mirada.results import MetricValue\n",
                "mirada__results": "",
            },
            [
                "mirada/metrics/report.py:1: mirada.metrics.report (pure computation) imports "
                "mirada.results (storage), a higher layer"
            ],
            id="metrics-imports-storage",
        ),
        pytest.param(
            {
                "mirada__queries__init": "",
                "mirada__queries__runs": "from mirada import queue\n",
                "mirada__queue": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from mirada.queries.runs import RunRow\n",
            },
            [],
            id="type-checking-import-is-exempt",
        ),
        pytest.param(
            {
                "mirada__results": "from mirada.metrics.types import MetricValue\n",
                "mirada__metrics__init": "",
                "mirada__metrics__types": "from mirada.domain import Task\n",
                "mirada__domain": "",
                "mirada__queue": "from mirada import results\n",
            },
            [],
            id="downward-and-same-layer-imports",
        ),
    ],
)
def test_self_check_layers(sources: dict[str, str], expect: list[str]) -> None:
    assert layer_violations(_pkg(**sources)) == expect


@pytest.mark.parametrize(
    ("sources", "expect"),
    [
        pytest.param(
            {
                "mirada__vlm__init": "",
                "mirada__vlm__registry": "def load():\n"
                "    from mirada.run_options import DEFAULT_SEED\n",
                "mirada__vlm__hf": "import mirada.queue\n",
                "mirada__run_options": "",
                "mirada__queue": "",
            },
            [
                "mirada/vlm/hf.py:1: mirada.vlm.hf imports mirada.queue (mirada.vlm may import "
                "nothing from mirada.queue)",
                "mirada/vlm/registry.py:2: mirada.vlm.registry imports mirada.run_options "
                "(mirada.vlm may import nothing from mirada.run_options)",
            ],
            id="vlm-imports-run-options-or-queue",
        ),
        pytest.param(
            {
                "mirada__worker__init": "",
                "mirada__worker__main": "",
                "mirada__dashboard__init": "",
                "mirada__dashboard__data": "def run():\n    from mirada.worker.main import Loop\n",
            },
            [
                "mirada/dashboard/data.py:2: mirada.dashboard.data imports mirada.worker.main "
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
    ],
)
def test_self_check_named_rules(sources: dict[str, str], expect: list[str]) -> None:
    assert rule_violations(_pkg(**sources)) == expect


def test_self_check_layer_membership() -> None:
    layers = (
        Layer("low", ("mirada.a", "mirada.gone")),
        Layer("high", ("mirada.b", "mirada.a.deep")),
    )
    modules = _pkg(mirada__a__init="", mirada__a__deep="", mirada__b="", mirada__c="")
    assert layer_membership(modules, layers) == [
        "mirada/a/deep.py: mirada.a.deep belongs to several layers: low, high",
        "mirada/c.py: mirada.c belongs to no layer (add it to LAYERS)",
        "layer 'low': mirada.gone names no module",
    ]


def test_self_check_long_files() -> None:
    files = [
        ("shared/queries/dashboard.py", 1244),
        ("shared/db/migrations/versions/0001_initial.py", 900),
        ("tests/test_big.py", 2000),
        ("shared/queue.py", 700),
    ]
    assert long_files(files) == ["shared/queries/dashboard.py: 1244 lines (limit 700)"]
