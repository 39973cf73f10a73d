"""The wheel: one top-level import name (`mirada`) holding every module and data file of the
three folders it is built from. The editable install resolves folders directly, so only a built
wheel shows a subpackage or data file left out."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_roots() -> dict[str, str]:
    """setup.py's ROOTS ({import name: folder}), read without running setup()."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ROOTS" for t in node.targets
        ):
            return dict(ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no ROOTS mapping")


def source_files() -> dict[str, Path]:
    """Every file the wheel must hold, by its path inside the wheel (mirada/...)."""
    expected = {}
    for package, folder in package_roots().items():
        base = ROOT / folder
        for path in base.rglob("*"):
            rel = path.relative_to(base)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            expected["/".join((*package.split("."), *rel.parts))] = path
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so a stale build/ folder in the checkout cannot
    supply files that the tree no longer has (or hide ones it lacks)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in package_roots().values():
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
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["mirada"]

    expected = source_files()
    missing = sorted(set(expected) - set(names))
    assert not missing, f"files of the tree missing from the wheel: {missing}"
    stray = sorted(n for n in names if ".dist-info/" not in n and n not in expected)
    assert not stray, f"files in the wheel that the tree does not have: {stray}"


def test_every_subpackage_and_the_package_data_are_named(wheel: Path) -> None:
    """Spelled out, so an emptied folder or a narrowed glob cannot pass by matching itself."""
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith(".py")}
    for package, folder in package_roots().items():
        for init in (ROOT / folder).rglob("*.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in rel:
                assert ".".join((package, *rel)) in packages
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
    # PYTHONPATH comes before the editable install's finder, which only answers what the
    # normal path search does not find; the asserts below check that the copy was used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import importlib.util, sys, mirada, mirada.worker, mirada.dashboard, mirada.cli;"
        "print(all(m.__file__.startswith(sys.argv[1]) for m in"
        " (mirada, mirada.worker, mirada.dashboard, mirada.cli)));"
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
