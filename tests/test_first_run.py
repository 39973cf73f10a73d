"""First-run smoothness (issue 13 §5): one data folder wherever `mirada` runs, `mirada info`,
a busy port refused before anything starts, a dashboard that asks nothing of the internet."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_mirada_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MIRADA_HOME unset; the per-user default lands in tmp_path/xdg (Linux: XDG_DATA_HOME)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the per-user folder is moved with XDG_DATA_HOME, which is Linux's")
    monkeypatch.delenv("MIRADA_HOME", raising=False)
    monkeypatch.delenv("MIRADA_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return (tmp_path / "xdg" / "mirada").resolve()


# --- one data folder -------------------------------------------------------------------------


def test_runs_from_another_directory_find_the_same_data(
    no_mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.datasets import import_dataset
    from mirada.demo.synthetic import write_demo_dataset

    src = tmp_path / "src"
    write_demo_dataset(src, split="demo")
    import_dataset(src, name="shapes")
    for where in ("one", "two"):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        result = run_cli("datasets")
        assert result.returncode == 0, result.stderr
        assert "shapes" in result.stdout
        assert not (tmp_path / where / "mirada-data").exists()  # nothing created in the cwd
    assert (no_mirada_home / "mirada.db").is_file()


def test_a_legacy_folder_is_named_once_on_stderr(
    no_mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old-checkout"
    (old / "mirada-data").mkdir(parents=True)
    monkeypatch.chdir(old)
    first, second = run_cli("runs"), run_cli("datasets")
    assert first.returncode == 0 and second.returncode == 0
    notes = [line for line in (first.stderr + second.stderr).splitlines() if "note:" in line]
    assert len(notes) == 1, notes  # once per process, however often settings are read
    assert f"export MIRADA_HOME={old / 'mirada-data'}" in notes[0]
    assert str(no_mirada_home) in notes[0]
    # the old folder is left alone: the database went to the per-user folder
    assert list((old / "mirada-data").iterdir()) == []
    assert (no_mirada_home / "mirada.db").is_file()


# --- mirada info -----------------------------------------------------------------------------


@pytest.mark.empty_home  # info must create nothing
def test_info_json_names_home_database_device_and_caches(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.version import __version__

    monkeypatch.setenv(
        "MIRADA_DATABASE_URL", "postgresql+psycopg://mirada:s3cret-pw@db.example:5432/mirada"
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    info = json.loads(result.stdout)
    assert info["version"] == __version__
    assert info["home"] == str(mirada_home.resolve())
    assert info["home_from"] == "MIRADA_HOME"
    assert info["database_url"] == "postgresql+psycopg://mirada:***@db.example:5432/mirada"
    assert info["device"] in ("cpu", "cuda", "mps")
    assert info["hf_cache"] == str(tmp_path / "hf" / "hub")
    assert info["open_clip_cache"].endswith("clip")
    assert (info["java"] is None) == (info["meteor_unavailable"] is not None)
    assert not mirada_home.exists()  # info reports; it creates nothing


def test_info_text(no_mirada_home: Path) -> None:
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert lines["mirada"].strip()
    assert "home " in result.stdout and str(no_mirada_home) in result.stdout
    assert f"sqlite:///{no_mirada_home / 'mirada.db'}" in result.stdout
    assert "default (per-user folder)" in result.stdout
    assert "weights (HF cache)" in result.stdout and "java (METEOR)" in result.stdout


def test_info_never_prints_an_unparsable_url() -> None:
    from mirada.cli.info import safe_database_url

    assert "hunter2" not in safe_database_url("postgresql://u:hunter2@host:notaport/db")


# --- a busy port -----------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


class Launches:
    """Records every subprocess.Popen instead of starting it."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, cmd: list[str], **_: Any) -> Any:
        self.commands.append([str(c) for c in cmd])
        return FakeProcess()


class FakeProcess:
    returncode = 0

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Launches:
    fake = Launches()
    monkeypatch.setattr(subprocess, "Popen", fake)
    return fake


@pytest.mark.empty_home  # nothing may be created before the port check
@pytest.mark.parametrize("command", ["dashboard", "demo"])
def test_a_busy_port_stops_before_anything_starts(
    mirada_home: Path, busy_port: int, launches: Launches, command: str
) -> None:
    result = run_cli(command, "--port", str(busy_port))
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"port {busy_port} on 127.0.0.1 is already in use" in line
    assert f"`mirada {command} --port {busy_port + 1}`" in line
    if command == "demo":
        assert f"make demo PORT={busy_port + 1}" in line
    assert launches.commands == []  # neither a worker nor streamlit
    assert not mirada_home.exists()  # and the demo imported nothing


def test_a_free_port_starts_streamlit_without_deploy_button_or_usage_stats(
    mirada_home: Path, launches: Launches
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    result = run_cli("dashboard", "--port", str(port))
    assert result.returncode == 0, result.stderr
    (cmd,) = launches.commands
    assert cmd[2:4] == ["streamlit", "run"]
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.port"] == str(port)
    assert opts["--client.toolbarMode"] == "minimal"
    assert opts["--browser.gatherUsageStats"] == "false"


def test_make_demo_passes_port() -> None:
    def demo_line(*make_args: str) -> str:
        out = subprocess.run(
            ["make", "-n", "demo", *make_args], cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        (line,) = [x for x in out.stdout.splitlines() if "bin/mirada demo" in x]
        return line.strip()

    assert demo_line("PORT=8502").endswith("mirada demo --port 8502")
    assert demo_line().endswith("mirada demo")


def test_make_demo_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    """A fresh `make demo` installs Mirada without the test, PostgreSQL and Ray extras;
    `make test` still installs them all."""

    def installs(target: str) -> list[str]:
        out = subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        return [x for x in out.stdout.splitlines() if "pip install" in x and " -e " in x]

    (demo,) = installs("demo")
    assert demo.rstrip().endswith("-e .")
    (full,) = installs("test")
    assert "[postgres,test,ray]" in full


# --- nothing leaves the machine --------------------------------------------------------------


def test_the_favicon_is_drawn_locally() -> None:
    """A ":material/x:" page icon makes the browser fetch an SVG from fonts.gstatic.com; an
    emoji becomes a data: URL."""
    from streamlit.string_util import is_emoji

    tree = ast.parse((ROOT / "dashboard/mirada/dashboard/app.py").read_text(encoding="utf-8"))
    icons = [
        kw.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "set_page_config"
        for kw in node.keywords
        if kw.arg == "page_icon"
    ]
    assert len(icons) == 1
    icon = icons[0]
    assert isinstance(icon, ast.Constant) and isinstance(icon.value, str)
    assert is_emoji(icon.value), icon.value
