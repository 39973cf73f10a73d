"""docker-compose.yml and the Dockerfile: structure checks, plus `docker-compose config`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DATABASE_URL = "postgresql://mirada:mirada@postgres:5432/mirada"


def _docker_compose() -> str | None:
    return shutil.which("docker-compose")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _expand_defaults(value: str) -> str:
    """${VAR:-default} -> default, as compose does with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_services_present(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "dashboard", "worker", "worker-gpu"}


def test_postgres(services: dict[str, Any], compose: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert pg["image"] == "postgres:16"
    assert "postgres-data:/var/lib/postgresql/data" in pg["volumes"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(pg["environment"])
    # Published on localhost unless the operator says otherwise.
    assert all(_expand_defaults(p).startswith("127.0.0.1:") for p in pg.get("ports", []))
    assert pg["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", ["dashboard", "worker", "worker-gpu"])
def test_app_services_share_settings(services: dict[str, Any], name: str) -> None:
    svc = services[name]
    env = svc["environment"]
    assert _expand_defaults(env["MIRADA_DATABASE_URL"]) == DATABASE_URL
    assert env["MIRADA_HOME"] == "/data"
    assert env["HF_HOME"] == "/hf-cache"
    assert "mirada-data:/data" in svc["volumes"]
    assert "hf-cache:/hf-cache" in svc["volumes"]
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svc["build"]["context"] == "."
    assert svc["restart"] == "unless-stopped"
    assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_dashboard(services: dict[str, Any]) -> None:
    dash = services["dashboard"]
    assert dash["command"] == ["mirada", "dashboard", "--host", "0.0.0.0", "--port", "8501"]
    assert dash["ports"] == ["127.0.0.1:8501:8501"]
    assert "/_stcore/health" in " ".join(dash["healthcheck"]["test"])


def test_worker_scalable(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"][:2] == ["mirada", "worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "profiles" not in worker  # started by a plain `up`
    test = " ".join(worker["healthcheck"]["test"])
    assert "ping" in test and "get_engine" in test


def test_worker_gpu(services: dict[str, Any]) -> None:
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["command"][:6] == ["mirada", "worker", "--device", "cuda", "--label", "gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "container_name" not in gpu and "ports" not in gpu
    assert gpu["image"] != services["worker"]["image"]  # CUDA torch, not the CPU image


def test_named_volumes(compose: dict[str, Any]) -> None:
    assert {"mirada-data", "hf-cache", "postgres-data"} <= set(compose["volumes"])


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "default-jre-headless" in text
    assert re.search(r"pip install .*\"\.\[postgres\]\"", text)
    assert re.search(r"^COPY shared ", text, re.M)
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "MIRADA_HOME=/data" in text and "HF_HOME=/hf-cache" in text
    assert re.search(r"^EXPOSE 8501", text, re.M)
    cmd = re.search(r"^CMD (.+)$", text, re.M)
    assert cmd and "dashboard" in cmd.group(1) and "0.0.0.0" in cmd.group(1)
    # Everything the image copies is in the build context.
    for src in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists() or part == "README.md", part


def test_dockerignore() -> None:
    lines = {
        ln.strip()
        for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".venv", "mirada-data", ".git", ".pytest_cache", "test-artifacts"} <= lines


def _config(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    exe = _docker_compose()
    assert exe
    return subprocess.run(
        [exe, "-f", str(path), *extra, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
        # Compose substitutes POSTGRES_* from the environment; test the defaults.
        env={k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")},
    )


def _need_docker_compose() -> None:
    if _docker_compose() is None:
        reason = "docker-compose not installed (make test-deps installs it)"
        print(reason)
        pytest.skip(reason)


def test_docker_compose_config_accepts_file() -> None:
    _need_docker_compose()
    proc = _config(COMPOSE_FILE)
    assert proc.returncode == 0, proc.stderr
    assert "worker-gpu" in proc.stdout  # profiled services are still validated
    gpu = _config(COMPOSE_FILE, "--profile", "gpu")
    assert gpu.returncode == 0, gpu.stderr
    assert DATABASE_URL in gpu.stdout


def test_docker_compose_config_rejects_misspelled_key(tmp_path: Path) -> None:
    """Proves the check above can fail: a typo in a key is an error, not ignored."""
    _need_docker_compose()
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "    healthcheck:\n" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("    healthcheck:\n", "    healthchek:\n", 1), encoding="utf-8")
    proc = _config(broken)
    assert proc.returncode != 0
    assert "healthchek" in proc.stderr


# --- the dashboard command the image runs ---------------------------------------------------


def test_streamlit_command_defaults() -> None:
    from mirada.cli.demo import DEFAULT_HOST, DEFAULT_PORT, dashboard_app_path, streamlit_command

    assert (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8501)  # localhost unless asked
    app = dashboard_app_path()
    assert app.name == "app.py" and app.parent.name == "dashboard"
    cmd = streamlit_command(app, "0.0.0.0", 8501)
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(app)]
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts == {
        "--server.address": "0.0.0.0",
        "--server.port": "8501",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--client.toolbarMode": "minimal",  # no "Deploy" button
    }


LAUNCH = """
import sys
from pathlib import Path
import mirada.cli.demo as demo
demo.dashboard_app_path = lambda: Path(sys.argv[1])
from mirada.cli import main
sys.exit(main(["dashboard", "--port", sys.argv[2]]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_dashboard_healthcheck_and_stop(
    tmp_path: Path, services: dict[str, Any], sig: signal.Signals
) -> None:
    """`mirada dashboard` (stub app) passes the compose healthcheck; a signal stops streamlit."""
    import psutil

    app = tmp_path / "app.py"
    app.write_text("import streamlit as st\nst.write('ok')\n", encoding="utf-8")
    port = _free_port()
    check = list(services["dashboard"]["healthcheck"]["test"][1:])
    check = [c.replace("8501", str(port)) for c in check]
    check[0] = sys.executable
    env = {**os.environ, "MIRADA_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(app), str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(check, capture_output=True, timeout=30).returncode != 0:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "dashboard did not become healthy in 60 s"
            time.sleep(0.5)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("streamlit" in " ".join(c.cmdline()) for c in children)
        proc.send_signal(sig)  # to mirada only, as `docker stop` does: it must forward it
        assert proc.wait(timeout=30) == 0
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read() if proc.stdout else ""
    assert f"http://localhost:{port}" in out
