"""Ids typed by people (issue 22 §5, the command-line sibling of ?run=²): one parser,
mirada.domain.parse_id, so "²" (which str.isdigit() accepts and int() refuses) and 23 digits
(which overflow SQLite's INTEGER) are one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirada.domain import MAX_ID, parse_id
from mirada.errors import NotFoundError

NOT_IDS = ["²", "³", "1" * 23, "-1", "", " ", "0", str(MAX_ID + 1), "٣", "１", "1_000", "+1",
           "1e3", "0x10", "1.0", "9" * 5000, "run", "1\n", "1,2"]  # fmt: skip


@pytest.mark.parametrize("text", NOT_IDS)
def test_what_is_not_an_id(text: str) -> None:
    assert parse_id(text) is None


@pytest.mark.parametrize(
    ("text", "expected"), [("1", 1), ("007", 7), (" 12 ", 12), (str(MAX_ID), MAX_ID)]
)
def test_ids(text: str, expected: int) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize("command", ["show", "cancel", "retry", "export"])
@pytest.mark.parametrize("text", ["²", "1" * 23, "0"])
def test_run_ids_on_the_command_line(
    mirada_home: Path, capsys: pytest.CaptureFixture[str], command: str, text: str
) -> None:
    from mirada.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, text])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.strip().splitlines()[-1] == (
        f"mirada {command}: error: argument run_id: not a run id: {text!r} "
        f"(a whole number from 1 to {MAX_ID}; see `mirada runs`)"
    )


@pytest.mark.parametrize("text", ["²", "1" * 23])
def test_dataset_ids_on_the_command_line(
    mirada_home: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    from mirada.cli import main
    from mirada.datasets.catalog import resolve_dataset

    with pytest.raises(NotFoundError, match="no dataset"):
        resolve_dataset(text)
    argv = ["queue", "--dataset", text, "--model", "hf-clip:mirada/demo-clip", "--task", "match"]
    assert main(argv) != 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.strip() == (
        f"mirada queue: error: no dataset {text!r}; no datasets yet; "
        "import one with `mirada import PATH`"
    )
