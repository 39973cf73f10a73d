"""Bad environment settings are one-line MiradaErrors naming the variable, never tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirada.config import ConfigError, get_settings
from mirada.errors import MiradaError

INT_VARIABLES = (
    "MIRADA_MAX_ZIP_BYTES",
    "MIRADA_MAX_ZIP_FILES",
    "MIRADA_MAX_IMAGE_PIXELS",
    "MIRADA_MAX_CSV_ROWS",
    "MIRADA_MAX_FILE_BYTES",
    "MIRADA_MAX_ZIP_RATIO",
    "MIRADA_MAX_LINE_CHARS",
    "MIRADA_HEARTBEAT_SECONDS",
    "MIRADA_STALE_AFTER_SECONDS",
)


@pytest.mark.parametrize("name", INT_VARIABLES)
@pytest.mark.parametrize("raw", ["abc", "1.5", "0", "-3"])
def test_bad_integers_name_the_variable_and_the_form(
    mirada_home: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        get_settings()
    message = str(info.value)
    assert f"{name}={raw!r}" in message and "positive whole number" in message
    assert isinstance(info.value, MiradaError)


def test_good_and_empty_values(mirada_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRADA_MAX_CSV_ROWS", " 25 ")
    monkeypatch.setenv("MIRADA_HEARTBEAT_SECONDS", "")
    monkeypatch.setenv("MIRADA_IMAGES_IN_DATABASE", "Yes")
    settings = get_settings()
    assert settings.max_csv_rows == 25 and settings.heartbeat_seconds == 10
    assert settings.images_in_database is True
    assert settings.database_url == f"sqlite:///{mirada_home.resolve() / 'mirada.db'}"


@pytest.mark.parametrize(
    ("name", "raw", "needle"),
    [
        ("MIRADA_IMAGES_IN_DATABASE", "maybe", "auto, true or false"),
        ("MIRADA_DATABASE_URL", "mysql://u@h/db", "postgresql+psycopg://"),
        ("MIRADA_DATABASE_URL", "mirada.db", "sqlite:///PATH"),
    ],
)
def test_bad_choices_and_urls(
    mirada_home: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, needle: str
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name) as info:
        get_settings()
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("name", "raw", "argv"),
    [
        ("MIRADA_MAX_CSV_ROWS", "abc", ["runs"]),
        ("MIRADA_DATABASE_URL", "nonsense", ["datasets"]),
        ("MIRADA_STALE_AFTER_SECONDS", "soon", ["worker", "--burst", "--no-progress"]),
    ],
)
def test_cli_prints_one_clean_line(
    mirada_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    raw: str,
    argv: list[str],
) -> None:
    from mirada.cli import main

    monkeypatch.setenv(name, raw)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"mirada {argv[0]}: error: environment variable {name}=")
    assert len(lines) == 1, err
