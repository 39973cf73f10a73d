"""Fixtures: one seeded MIRADA_HOME per session (demo dataset + finished runs) and an empty one."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashboard_seed import Seeded, seed_demo, use_home

from mirada.db import dispose_engines


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    dispose_engines()


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    saved = {k: os.environ.get(k) for k in ("MIRADA_HOME", "MIRADA_DATABASE_URL")}
    result = seed_demo(tmp_path_factory.mktemp("seeded") / "home")
    _restore(saved)
    yield result


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
def empty_env(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MIRADA_HOME", str(empty_home))
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    dispose_engines()
    yield empty_home
    dispose_engines()
