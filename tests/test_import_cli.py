"""`mirada import` and `mirada datasets` (in-process), and the importer on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import CliResult, run_cli
from data_import.builders import csv_bytes, sample_photo, solid, stray_files, write_files

from mirada.datasets import import_dataset, list_datasets, load_items

Mirada = Callable[..., CliResult]


@pytest.fixture
def mirada(monkeypatch: pytest.MonkeyPatch) -> Mirada:
    """`mirada ARGS` against the MIRADA_HOME given as `home=` (embedded SQLite)."""

    def run(*args: str, home: Path) -> CliResult:
        monkeypatch.setenv("MIRADA_HOME", str(home))
        monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
        return run_cli(*args)

    return run


def study(root: Path) -> Path:
    return write_files(
        root,
        {
            "photos/china.jpg": sample_photo("china.jpg"),
            "photos/blue.png": solid((0, 0, 255)),
            "captions.csv": csv_bytes(
                [
                    ("photos/china.jpg", "Un templo", "lugares"),
                    ("photos/china.jpg", "Un tejado", "lugares"),
                    ("photos/blue.png", "Un cuadrado azul", "formas"),
                ],
                delimiter=";",
                encoding="cp1252",
            ),
        },
    )


def test_cli_import_and_list_as_json(mirada: Mirada, tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = study(tmp_path / "estudio")

    done = mirada("import", str(src), "--name", "estudio-1", "--json", home=home)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout)
    assert imported == {
        "id": imported["id"],
        "name": "estudio-1",
        "images": 2,
        "captions": 3,
        "categories": 2,
    }

    listed = mirada("datasets", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [imported]

    table = mirada("datasets", home=home)
    assert table.stdout.splitlines()[0].split() == [
        "id",
        "name",
        "format",
        "images",
        "captions",
        "categories",
        "created",
    ]
    assert "estudio-1" in table.stdout

    again = mirada("import", str(src), "--name", "estudio-1", home=home)
    assert again.returncode == 2
    assert "mirada import: error:" in again.stderr and "--name" in again.stderr


def test_cli_rejection_exits_2_and_names_the_row(mirada: Mirada, tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = write_files(
        tmp_path / "bad",
        {
            "a.png": solid((1, 1, 1)),
            "captions.csv": csv_bytes([("a.png", "ok"), ("b.png", "missing")]),
        },
    )
    done = mirada("import", str(src), "--json", home=home)
    assert done.returncode == 2 and done.stdout == ""
    assert "captions.csv row 3" in done.stderr and "'b.png' not found" in done.stderr
    assert stray_files(home) == []

    lenient = mirada("import", str(src), "--lenient", "--json", home=home)
    assert lenient.returncode == 0, lenient.stderr
    report = json.loads(lenient.stdout)
    assert report["images"] == 1 and report["skipped"][0]["where"] == "captions.csv row 3"
    assert "Skipped 1 problem" in lenient.stderr


def test_cli_help(mirada: Mirada, tmp_path: Path) -> None:
    for cmd, expected in (("import", "--lenient"), ("datasets", "--json")):
        done = mirada(cmd, "--help", home=tmp_path / "home")
        assert done.returncode == 0 and expected in done.stdout
    assert "karpathy" in mirada("import", "--help", home=tmp_path / "home").stdout


def test_import_on_both_backends(db_url: str, mirada_home: Path, tmp_path: Path) -> None:
    src = study(tmp_path / "estudio")
    first = import_dataset(src)
    second = import_dataset(src, name="copy")
    assert [d.name for d in list_datasets()] == ["estudio", "copy"]
    items = load_items(second.id)
    assert [t for _, t in items[0].captions] == ["Un templo", "Un tejado"]
    assert [i.sha256 for i in items] == [i.sha256 for i in load_items(first.id)]
    assert all(i.path.is_file() for i in items)
