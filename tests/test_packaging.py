"""The wheel: one top-level import name (`mirada`) holding every module and data file of the
three source roots it is built from. The editable install puts the roots on sys.path, so only a
built wheel shows a subpackage or data file left out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# The design's top-level folders, each a source root holding part of the `mirada` namespace.
SOURCE_ROOTS = ("shared", "worker", "dashboard")


def package_files() -> dict[str, Path]:
    """Every file under the roots' mirada/ folders, by its path relative to its root."""
    found = {}
    for root in SOURCE_ROOTS:
        for path in (ROOT / root / "mirada").rglob("*"):
            rel = path.relative_to(ROOT / root)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            assert rel.as_posix() not in found, f"{path} and {found[rel.as_posix()]} collide"
            found[rel.as_posix()] = path
    return found


def source_files() -> dict[str, Path]:
    """Every file the wheel must hold, by its path inside the wheel (mirada/...)."""
    return package_files()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so a stale build/ folder in the checkout cannot
    supply files that the tree no longer has (or hide ones it lacks)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in SOURCE_ROOTS:
        shutil.copytree(ROOT / folder, src / folder, ignore=skip)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("mirada-*.whl")
    return built


def test_wheel_has_one_top_level_name_and_every_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"mirada"}

    expected = source_files()
    missing = sorted(set(expected) - set(names))
    assert not missing, f"files of the tree missing from the wheel: {missing}"
    stray = sorted(n for n in names if ".dist-info/" not in n and n not in expected)
    assert not stray, f"files in the wheel that the tree does not have: {stray}"


def test_every_subpackage_and_the_package_data_are_named(wheel: Path) -> None:
    """Spelled out, so an emptied folder or a narrowed glob cannot pass by matching itself."""
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith(".py")}
    for rel in package_files():
        if rel.endswith(".py"):
            assert rel.rsplit("/", 1)[0].replace("/", ".") in packages
    assert {
        "mirada.cli",
        "mirada.worker.tasks",
        "mirada.dashboard.app_pages",
        "mirada.db.migrations.versions",
    } <= packages
    assert {
        "mirada/db/migrations/env.py",
        "mirada/db/migrations/script.py.mako",
        "mirada/demo/assets/clip-bpe/vocab.json",
        "mirada/demo/assets/clip-bpe/merges.txt",
        "mirada/vlm/demo_models/MODEL_CARD.md",
    } <= names
    assert len([n for n in names if n.startswith("mirada/db/migrations/versions/")]) >= 2
    for model in ("demo-clip", "demo-clip-random", "demo-blip"):
        for file in ("config.json", "model.safetensors", "tokenizer.json"):
            assert f"mirada/vlm/demo_models/{model}/{file}" in names


def test_installed_wheel_imports_as_mirada_only(wheel: Path, tmp_path: Path) -> None:
    """Installed on its own (dependencies come from this venv), away from the checkout."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    # PYTHONPATH comes before the editable install's source roots (a .pth in site-packages),
    # so the wheel's copy answers first; the asserts below check that it was used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import importlib.util, sys, mirada, mirada.version, mirada.worker, mirada.dashboard,"
        " mirada.cli;"
        "print(all(m.__file__.startswith(sys.argv[1]) for m in"
        " (mirada.version, mirada.worker, mirada.dashboard, mirada.cli))"
        " and list(mirada.__path__)[0] == sys.argv[1] + '/mirada');"
        "print([n for n in ('shared', 'worker', 'dashboard') if importlib.util.find_spec(n)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True", "[]"]
    assert {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")} == {
        "bin",
        "mirada",
    }
    # The console script a user of the wheel gets.
    version = subprocess.run(
        [str(target / "bin" / "mirada"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.returncode == 0 and version.stdout.startswith("mirada "), version.stderr
