"""Shared fixtures: an isolated MIRADA_HOME per test, databases on SQLite and PostgreSQL, the
synthetic demo dataset and tiny random models. Plain helpers (running the worker, back-dating
a heartbeat) are in run_helpers.py; tests/ and tests/dashboard are on sys.path through
pytest's `pythonpath` setting in pyproject.toml."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from run_helpers import POSTGRES_URL
from sqlalchemy import Engine, create_engine, text

from mirada.db import dispose_engines, get_engine

_SESSION_DATA: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """No test reads or writes the user's own data: MIRADA_HOME and the per-user default
    (XDG_DATA_HOME on Linux) point into a throwaway folder for the whole session, subprocesses
    included, and a MIRADA_DATABASE_URL from the developer's shell is dropped. Tests that need
    a home or database set their own (the fixtures below)."""
    root = Path(tempfile.mkdtemp(prefix="mirada-tests-"))
    _SESSION_DATA.append(root)
    os.environ["MIRADA_HOME"] = str(root / "home")
    os.environ["XDG_DATA_HOME"] = str(root / "xdg-data")
    os.environ.pop("MIRADA_DATABASE_URL", None)
    # the bundle property test's seed (tests/test_bundle_properties.py): fixed, or random for a
    # hunt (MIRADA_BUNDLE_EXAMPLES=N); set here so every xdist process draws the same examples
    if "MIRADA_BUNDLE_SEED" not in os.environ:
        hunt = "MIRADA_BUNDLE_EXAMPLES" in os.environ
        os.environ["MIRADA_BUNDLE_SEED"] = str(random.randrange(2**32) if hunt else BUNDLE_SEED)


BUNDLE_SEED = 20261207


def pytest_report_header(config: pytest.Config) -> str:
    seed = os.environ["MIRADA_BUNDLE_SEED"]
    return f"bundle property test: hypothesis seed {seed} (MIRADA_BUNDLE_SEED={seed} repeats it)"


# Modules that take over a minute on their own, mostly waiting (a local Ray, Streamlit and
# Chromium): handed out first, the other process meanwhile works through the rest.
LONGEST_MODULES = ("tests/test_ray_engine.py", "tests/browser/test_dashboard_browser.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, then modules by their number of slow tests; each module's
    order is kept. `make test` hands whole modules to its processes (pytest-xdist, --dist
    loadscope) in this order: a long module handed out last would leave one process working
    alone at the end."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow = Counter(
        module(item)
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("browser")
    )

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = module(item)
        first = LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)
        return first, -slow[name]

    items.sort(key=rank)


def pytest_unconfigure(config: pytest.Config) -> None:
    for root in _SESSION_DATA:
        shutil.rmtree(root, ignore_errors=True)


def postgres_unavailable_reason() -> str | None:
    try:
        eng = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
    except Exception as exc:  # any failure means "not here": report it and skip
        return f"PostgreSQL unreachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for a module of tiny models (CPUs are shared between the test
    processes; tiny models gain nothing from more): `pytestmark = usefixtures(...)`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head for the whole session. Migrating a new file costs about
    0.2-0.4 s and hundreds of tests each need one; tests of the migrations themselves build
    their databases from scratch (tests/test_db.py)."""
    path = tmp_path_factory.mktemp("template") / "mirada.db"
    get_engine(f"sqlite:///{path}")
    dispose_engines()  # closes the connections, which checkpoints the WAL into the file
    return path


@pytest.fixture
def mirada_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """A fresh MIRADA_HOME with the default embedded SQLite database (already at head, copied
    from the session's template; mark a test `empty_home` to start from nothing)."""
    home = tmp_path / "mirada-home"
    if request.node.get_closest_marker("empty_home") is None:
        home.mkdir(parents=True)
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), home / "mirada.db")
    monkeypatch.setenv("MIRADA_HOME", str(home))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield home
    dispose_engines()


@pytest.fixture
def postgres_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private schema in the test PostgreSQL database, dropped afterwards."""
    reason = postgres_unavailable_reason()
    if reason:
        print(reason)
        pytest.skip(reason)
    schema = f"mirada_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    yield url
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(
    request: pytest.FixtureRequest, mirada_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run a test on both backends; sets MIRADA_DATABASE_URL so subprocesses agree."""
    if request.param == "sqlite":
        url = f"sqlite:///{mirada_home / 'mirada.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("MIRADA_DATABASE_URL", url)
    dispose_engines()
    return url


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


DATASET_IMAGES = 6


@pytest.fixture
def dataset(mirada_home: Path, tmp_path: Path, request: pytest.FixtureRequest) -> int:
    """The synthetic demo dataset, imported into the test's home as "tiny-demo": its id. A
    test module sets DATASET_IMAGES to import another number of images (default 6)."""
    from mirada.datasets import import_dataset
    from mirada.demo.synthetic import write_demo_dataset

    n = getattr(request.module, "DATASET_IMAGES", DATASET_IMAGES)
    src = write_demo_dataset(tmp_path / "demo", split="demo", n=n)
    return import_dataset(src, name="tiny-demo").id


# The tiny random models a test may ask for: (id prefix, builder in tests/tiny_models.py).
TINY_MODELS: dict[str, tuple[str, Callable[[Any, Path], Path]]] = {
    "clip": ("hf-clip", lambda tm, where: tm.make_hf_clip(where)),
    "itm": ("blip-itm", lambda tm, where: tm.make_blip(where, kind="itm")),
    "caption": ("blip-caption", lambda tm, where: tm.make_blip(where, kind="caption")),
}


class TinyModels(Mapping[str, str]):
    """Model ids of tiny random models, each built on first use: "clip" (hf-clip), "itm"
    (blip-itm), "caption" (blip-caption). Plumbing only: random weights give near-constant
    scores."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._ids: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key not in self._ids:
            import tiny_models  # torch and transformers: only for the tests that use a model

            prefix, build = TINY_MODELS[key]
            self._ids[key] = f"{prefix}:{build(tiny_models, self._root / key)}"
        return self._ids[key]

    def __iter__(self) -> Iterator[str]:
        return iter(TINY_MODELS)

    def __len__(self) -> int:
        return len(TINY_MODELS)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny random models shared by the session's tests (read-only: a test that changes a
    model's files builds its own)."""
    return TinyModels(tmp_path_factory.mktemp("models"))
