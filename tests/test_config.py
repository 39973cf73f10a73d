"""Bad environment settings are one-line MiradaErrors naming the variable, never tracebacks."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from mirada.config import ConfigError, default_home, get_settings, legacy_home_notice
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


# --- where the data lives --------------------------------------------------------------------


@pytest.fixture
def no_mirada_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MIRADA_HOME unset; the per-user default lands in tmp_path/xdg (Linux: XDG_DATA_HOME)."""
    monkeypatch.delenv("MIRADA_HOME", raising=False)
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return (tmp_path / "xdg" / "mirada").resolve()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_DATA_HOME is Linux's")
@pytest.mark.parametrize("unset", [None, ""])
def test_default_home_is_per_user_not_the_working_directory(
    no_mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unset: str | None
) -> None:
    if unset is not None:
        monkeypatch.setenv("MIRADA_HOME", unset)  # empty counts as unset
    homes = set()
    for where in ("a", "b/c"):
        (tmp_path / where).mkdir(parents=True)
        monkeypatch.chdir(tmp_path / where)
        homes.add(get_settings().home)
    assert homes == {no_mirada_home} == {default_home()}
    assert get_settings().database_url == f"sqlite:///{no_mirada_home / 'mirada.db'}"


def test_mirada_home_overrides_the_default(
    no_mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIRADA_HOME", "somewhere")  # relative: resolved once, here
    assert get_settings().home == (tmp_path / "somewhere").resolve()


def test_legacy_folder_notice(no_mirada_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "project dir"  # a space: the suggested commands are shell-quoted
    project.mkdir()
    assert legacy_home_notice(project) is None  # no ./mirada-data: nothing to say
    (project / "mirada-data").mkdir()
    notice = legacy_home_notice(project)
    assert notice is not None and "\n" not in notice
    assert str(default_home()) in notice
    assert f"export MIRADA_HOME='{project.resolve() / 'mirada-data'}'" in notice
    assert "mv " in notice  # the new folder does not exist yet, so moving is offered
    default_home().mkdir(parents=True)
    assert "mv " not in (legacy_home_notice(project) or "")


def test_no_legacy_notice_when_mirada_home_is_set(
    no_mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mirada-data").mkdir()
    monkeypatch.setenv("MIRADA_HOME", str(tmp_path / "mirada-data"))
    assert legacy_home_notice(tmp_path) is None


def test_tests_never_touch_the_users_data() -> None:
    """conftest points MIRADA_HOME and the per-user default into a temporary folder."""
    temp = Path(tempfile.gettempdir()).resolve()
    assert Path(os.environ["MIRADA_HOME"]).resolve().is_relative_to(temp)
    if sys.platform.startswith("linux"):
        assert default_home().is_relative_to(temp)
