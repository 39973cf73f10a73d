"""Fixtures: one seeded MIRADA_HOME per session (demo dataset + finished runs) and an empty one.

Tests that only read use `seeded_env` (the shared seed; its database must not change, which the
session fixture checks at the end). A test that writes (queues, cancels, stores a projection,
which opening the Results page does) uses `seeded_copy`, a private copy of the seed, so tests
pass in any order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_seed import Seeded, copy_home, shared_seed, use_home

from mirada.db import dispose_engines


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    dispose_engines()


def _digest(home: Path) -> str:
    return hashlib.sha256((home / "mirada.db").read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    result = shared_seed(tmp_path_factory)
    _restore(saved)
    before = _digest(result.home)
    yield result
    dispose_engines()
    assert _digest(result.home) == before, "a test wrote into the shared seed: use seeded_copy"


@pytest.fixture(scope="session")
def empty_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    home = tmp_path_factory.mktemp("empty") / "home"
    use_home(home)
    _restore(saved)
    return home


@pytest.fixture
def seeded_env(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """Point this test at the seeded home."""
    monkeypatch.setenv("MIRADA_HOME", str(seeded.home))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield seeded
    dispose_engines()


@pytest.fixture
def seeded_copy(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Seeded]:
    """Point this test at a private copy of the seeded home, for tests that write."""
    dispose_engines()
    home = tmp_path / "home"
    copy_home(seeded.home, home)
    monkeypatch.setenv("MIRADA_HOME", str(home))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield dataclasses.replace(seeded, home=home)
    dispose_engines()


@pytest.fixture
def empty_env(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MIRADA_HOME", str(empty_home))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield empty_home
    dispose_engines()


@pytest.fixture(scope="session")
def hostile_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding only the hostile-text dataset and its runs (pages may write into it)."""
    from dashboard_seed import seed_hostile

    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    root = tmp_path_factory.mktemp("hostile")
    seed_hostile(root / "home", root / "src")
    _restore(saved)
    return root / "home"


@pytest.fixture
def hostile_env(hostile_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MIRADA_HOME", str(hostile_home))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield hostile_home
    dispose_engines()
