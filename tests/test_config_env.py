"""Where the data and the database live, as the environment says (issue 22 §5): a MIRADA_HOME
that is a file, and a SQLite MIRADA_DATABASE_URL in a directory that does not exist, are one
clear line each; Mirada creates its own data directory, never a directory the user typed."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mirada.config import ConfigError, get_settings
from mirada.db import dispose_engines
from mirada.text_safety import markdown_text

APP = str(Path(__file__).resolve().parents[1] / "dashboard/mirada/dashboard/app.py")


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `mirada ARGV`, which must fail with one line on stderr; return that line."""
    from mirada.cli import main

    dispose_engines()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def cli_ok(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from mirada.cli import main

    dispose_engines()
    assert main(argv) == 0
    assert "error" not in capsys.readouterr().err
    dispose_engines()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment in tmp_path: no MIRADA_HOME or database URL yet, cwd there."""
    monkeypatch.delenv("MIRADA_HOME", raising=False)
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- MIRADA_HOME -------------------------------------------------------------------------------


@pytest.mark.parametrize("below", ["", "sub/deeper"])
@pytest.mark.parametrize("argv", [["runs"], ["worker", "--burst", "--no-progress"]])
def test_mirada_home_naming_a_file_is_one_line(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    below: str,
    argv: list[str],
) -> None:
    file = env / "not-a-dir"
    file.write_text("x", encoding="utf-8")
    home = file / below if below else file
    monkeypatch.setenv("MIRADA_HOME", str(home))
    line = cli_error(argv, capsys)
    assert line.startswith(f"mirada {argv[0]}: error: environment variable MIRADA_HOME=")
    assert f"expected a directory, but {file} " in line and "is a file" in line
    assert file.read_text(encoding="utf-8") == "x"


def test_a_home_that_cannot_be_created_is_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    locked = env / "locked"  # read-only for us: a read-only mount, or another user's folder
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    monkeypatch.setenv("MIRADA_HOME", str(locked / "mirada"))
    line = cli_error(["runs"], capsys)
    assert line.startswith("mirada runs: error: environment variable MIRADA_HOME=")
    assert f"does not exist and cannot be created in {locked} (not writable)" in line
    monkeypatch.setenv("MIRADA_HOME", str(locked))  # an existing one: the engine opens it
    get_settings()  # read-only, as the engine handles it


def test_a_file_in_place_of_the_default_home(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "xdg").mkdir()
    (env / "xdg" / "mirada").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="Set MIRADA_HOME to a directory"):
        get_settings()
    assert "data directory" in cli_error(["runs"], capsys)


def test_the_dashboard_shows_the_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = env / "not-a-dir"
    file.write_text("x", encoding="utf-8")
    monkeypatch.setenv("MIRADA_HOME", str(file))
    with pytest.raises(ConfigError) as refused:
        get_settings()
    at = AppTest.from_file(APP, default_timeout=30).run()  # the Datasets page
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [markdown_text(str(refused.value))]


# --- MIRADA_DATABASE_URL -----------------------------------------------------------------------


def test_a_missing_database_directory_is_refused_not_created(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = env / "some" / "missing" / "dir"
    url = f"sqlite:///{missing / 'm.db'}"
    monkeypatch.setenv("MIRADA_HOME", str(env / "home"))
    monkeypatch.setenv("MIRADA_DATABASE_URL", url)
    for argv in (["runs"], ["datasets"], ["worker", "--burst", "--no-progress"]):
        line = cli_error(argv, capsys)
        assert line.startswith(f"mirada {argv[0]}: error: environment variable ")
        assert f"MIRADA_DATABASE_URL={url!r}" in line
        assert f"{missing} does not exist" in line and f"mkdir -p {missing}" in line
    assert not (env / "some").exists()  # nothing was created
    missing.mkdir(parents=True)  # what the message says to do
    cli_ok(["runs"], capsys)
    assert (missing / "m.db").is_file()


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("a-file/m.db", "a file in a directory, but {env}/a-file is a file"),
        ("a-file/deeper/m.db", "a file in a directory, but {env}/a-file is a file"),
        ("a-dir", "a database file, but {env}/a-dir is a directory"),
    ],
)
def test_a_database_path_through_a_file_or_at_a_directory(
    env: Path, monkeypatch: pytest.MonkeyPatch, path: str, needle: str
) -> None:
    (env / "a-file").write_text("x", encoding="utf-8")
    (env / "a-dir").mkdir()
    monkeypatch.setenv("MIRADA_DATABASE_URL", f"sqlite:///{env / path}")
    with pytest.raises(ConfigError, match="MIRADA_DATABASE_URL") as info:
        get_settings()
    assert needle.format(env=env) in str(info.value)


def test_directories_mirada_still_creates(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the default: the per-user home and its database are created on first use
    cli_ok(["runs"], capsys)
    assert (env / "xdg" / "mirada" / "mirada.db").is_file()
    # MIRADA_HOME that does not exist yet, and a URL naming the database inside it
    home = env / "new" / "home"
    monkeypatch.setenv("MIRADA_HOME", str(home))
    cli_ok(["runs"], capsys)
    assert (home / "mirada.db").is_file()
    other = env / "other" / "home"
    monkeypatch.setenv("MIRADA_HOME", str(other))
    monkeypatch.setenv("MIRADA_DATABASE_URL", f"sqlite:///{other / 'mine.db'}")
    cli_ok(["runs"], capsys)
    assert (other / "mine.db").is_file()
    # a relative path names a file in the working directory, which exists
    monkeypatch.setenv("MIRADA_DATABASE_URL", "sqlite:///relative.db")
    cli_ok(["runs"], capsys)
    assert (env / "relative.db").is_file()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:mem?mode=memory&uri=true"]
)
def test_in_memory_and_uri_databases_are_not_paths(
    env: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("MIRADA_DATABASE_URL", url)
    assert get_settings().database_url == url
