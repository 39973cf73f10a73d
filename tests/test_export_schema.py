"""One CSV schema, as the README states it: `mirada export --format csv --table T` writes the
README's columns for each table, and the dashboard's downloads of a run's per-image results and
metrics are the same files byte for byte (issue 23 §3)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from cli_runner import run_cli
from test_export import Seeded, seeded  # noqa: F401 - the fixture

from mirada.export import CSV_COLUMNS, CSV_TABLES, build_export, to_csv

README = Path(__file__).resolve().parents[1] / "README.md"
# Columns after the fixed ones that the README names as a pattern: caption_<metric>, flag_<name>.
DYNAMIC = re.compile(r"^(caption|flag)_.+$")


def readme_csv_tables() -> dict[str, tuple[str, ...]]:
    """{table: fixed columns} from the README's "| table | one row per | columns |" table."""
    text = README.read_text(encoding="utf-8")
    start = text.index("| table | one row per | columns |")
    rows = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    tables = {}
    for row in rows:
        name, _, columns = (cell.strip() for cell in row.strip("|").split(" | "))
        names = re.findall(r"`([^`]+)`", columns)
        tables[re.findall(r"`([^`]+)`", name)[0]] = tuple(c for c in names if "<" not in c)
    return tables


def _header(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text)))


def test_readme_lists_every_table_with_its_columns() -> None:
    assert readme_csv_tables() == CSV_COLUMNS
    assert tuple(readme_csv_tables()) == CSV_TABLES


@pytest.mark.parametrize("table", CSV_TABLES)
def test_exported_files_have_the_readme_columns(seeded: Seeded, table: str) -> None:  # noqa: F811
    fixed = readme_csv_tables()[table]
    for run_id in (seeded.match_run, seeded.caption_run):
        header = _header(to_csv(build_export(run_id), table))
        assert tuple(header[: len(fixed)]) == fixed, (table, header)
        rest = header[len(fixed) :]
        if table == "items":
            assert all(DYNAMIC.match(c) for c in rest), rest
        else:
            assert rest == []
    caption_items = _header(to_csv(build_export(seeded.caption_run), "items"))
    if table == "items":  # the patterns are really there for a caption run
        assert "caption_CIDEr" in caption_items and "flag_degenerate" in caption_items


@pytest.mark.parametrize("table", ["items", "metrics"])
def test_dashboard_downloads_are_the_cli_files(seeded: Seeded, table: str) -> None:  # noqa: F811
    """The Results page downloads `data.export_table(run, T)` through `data.csv_bytes`: the same
    bytes as `mirada export RUN --format csv --table T`."""
    from mirada.dashboard import data

    for run_id in (seeded.match_run, seeded.caption_run):
        cli = run_cli("export", str(run_id), "--format", "csv", "--table", table)
        assert cli.returncode == 0, cli.stderr
        frame = data.export_table(run_id, table)
        assert data.csv_bytes(frame).decode("utf-8") == cli.stdout
    rows = list(csv.DictReader(io.StringIO(to_csv(build_export(seeded.match_run), "items"))))
    assert {r["correct"] for r in rows} == {"true", "false"}


def test_every_dashboard_csv_writes_cells_as_the_export_does() -> None:
    """Booleans true/false (not pandas' True/False), missing values empty (not nan), text that
    would be a formula quoted, numbers raw."""
    from mirada.dashboard import data

    frame = pd.DataFrame(
        {
            "correct": [True, False, None],
            "rank": [1, None, 3],
            "caption": ["=1+1 a cat", "a dog", None],
            "score": [-0.5, float("nan"), 0.25],
        }
    )
    lines = data.csv_bytes(frame).decode("utf-8").splitlines()
    assert lines == [
        "correct,rank,caption,score",
        "true,1.0,'=1+1 a cat,-0.5",
        "false,,a dog,",
        ",3.0,,0.25",
    ]


def test_export_command_offers_the_tables() -> None:
    from test_readme import _subparsers

    from mirada.cli import build_parser

    export = _subparsers(build_parser())["export"]
    table = next(a for a in export._actions if "--table" in a.option_strings)
    assert tuple(table.choices or ()) == CSV_TABLES
