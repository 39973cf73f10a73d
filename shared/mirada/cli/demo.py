"""Show and share results: the offline demo, the dashboard and exports.

Module-level imports stay light: streamlit, torch and the database are imported inside the
command functions.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

from mirada.cli import arg, command, show_log
from mirada.cli.runs import run_id
from mirada.errors import MiradaError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--port wants a number (got {raw!r})") from exc
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be between 1 and 65535 (got {port})")
    return port


def check_port(host: str, port: int, command: str) -> None:
    """Fail with the `--port` hint, before a worker or Streamlit starts, when `host:port`
    cannot be listened on: binds and closes a socket per address of `host`."""
    other = port + 1 if port < 65535 else port - 1
    hint = f"choose another with `mirada {command} --port {other}`"
    if command == "demo":
        hint += f" (or `make demo PORT={other}`)"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise MiradaError(
            f"cannot listen on --host {host!r}: {exc.strerror}; use an address of this "
            f"machine such as {DEFAULT_HOST} or 0.0.0.0"
        ) from None
    failures: list[OSError] = []
    bound = 0
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            if os.name != "nt":  # as servers do: a just-closed dashboard's TIME_WAIT is no clash
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # one family at a time: [::] does not claim 0.0.0.0
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise MiradaError(
                        f"port {port} on {host} is already in use (another dashboard or "
                        f"`mirada demo` still running?); {hint}"
                    ) from None
                if exc.errno == errno.EACCES:
                    raise MiradaError(
                        f"not allowed to listen on port {port} (ports below 1024 need "
                        f"privileges); {hint}"
                    ) from None
                failures.append(exc)
            else:
                bound += 1
    if bound:
        return
    reason = failures[0].strerror if failures else "no address"
    raise MiradaError(f"cannot listen on {host}:{port} ({reason}); {hint}")


# --- `mirada demo` ---------------------------------------------------------------------------


@command(
    "demo",
    "Import the demo dataset, run the shipped demo models, open the dashboard",
    arg(
        "--no-dashboard",
        action="store_true",
        help="run the demo runs in this process, print a summary table and exit",
    ),
    arg("--host", default=DEFAULT_HOST, help=f"dashboard address (default {DEFAULT_HOST})"),
    arg(
        "--port", type=_port, default=DEFAULT_PORT, help=f"dashboard port (default {DEFAULT_PORT})"
    ),
    description=(
        "Generate the synthetic demo dataset (coloured shapes, 4 categories), import it, queue\n"
        "match/caption/benchmark runs for the demo models shipped in the repo (a trained tiny\n"
        "CLIP, the same CLIP untrained as a chance baseline, and a tiny BLIP captioner), start\n"
        "a worker in the background and the dashboard at http://127.0.0.1:8501.\n"
        "Running it again reuses the dataset and finished runs. Ctrl-C stops everything."
    ),
)
def demo_cmd(args: argparse.Namespace) -> int:
    if not args.no_dashboard:
        check_port(args.host, args.port, "demo")  # before the import, the worker, Streamlit
    from mirada.cli import demo_session
    from mirada.worker import main as worker

    show_log(demo_session.__name__, "[mirada demo] %(message)s")
    show_log("mirada.worker", worker.LOG_FORMAT, worker.LOG_DATE_FORMAT)  # in-process worker
    if args.no_dashboard:
        return demo_session.run_demo(dashboard=None)
    return demo_session.run_demo(
        dashboard=streamlit_command(dashboard_app_path(), args.host, args.port),
        url=f"http://{args.host}:{args.port}",
    )


# --- `mirada dashboard` ----------------------------------------------------------------------


def dashboard_app_path() -> Path:
    """app.py of the installed `mirada.dashboard` package (the repository's dashboard/ folder)."""
    spec = importlib.util.find_spec("mirada.dashboard")
    if spec is None or not spec.origin:
        raise MiradaError("the `mirada.dashboard` package is not installed; reinstall mirada")
    return Path(spec.origin).parent / "app.py"


def streamlit_command(app: Path, host: str, port: int) -> list[str]:
    """Streamlit with nothing that leaves the machine or suits only Streamlit Cloud: no usage
    statistics, and the minimal toolbar (no "Deploy" button). Flags, not .streamlit/config.toml,
    because Streamlit reads that file from the working directory, not from next to the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def _exit_code(returncode: int) -> int:
    # Popen reports "killed by signal N" as -N; shells report it as 128+N.
    return 128 - returncode if returncode < 0 else returncode


@command(
    "dashboard",
    "Start the web dashboard (Streamlit); listens on 127.0.0.1:8501 by default",
    arg(
        "--host",
        default=DEFAULT_HOST,
        help=(
            f"address to listen on (default {DEFAULT_HOST}: this machine only; "
            "0.0.0.0 makes it reachable from the network, e.g. inside a container)"
        ),
    ),
    arg("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"),
    description=(
        "Start the Streamlit dashboard on the same database as the CLI (MIRADA_HOME or\n"
        "MIRADA_DATABASE_URL are passed through). By default it binds to 127.0.0.1, so only\n"
        "this machine can open it; use --host 0.0.0.0 to expose it (there is no login).\n"
        "Ctrl-C stops it."
    ),
)
def dashboard_cmd(args: argparse.Namespace) -> int:
    from mirada.config import get_settings

    app = dashboard_app_path()
    if not app.is_file():
        raise MiradaError(f"the dashboard app is missing ({app}); reinstall mirada")
    if importlib.util.find_spec("streamlit") is None:
        raise MiradaError(
            "streamlit is not installed in this environment; run `make setup` (or pip install -e .)"
        )
    check_port(args.host, args.port, "dashboard")
    from mirada.cli.info import safe_database_url

    settings = get_settings()
    env = dict(os.environ)
    # Pin the resolved home so the dashboard opens the same SQLite file whatever its cwd.
    env["MIRADA_HOME"] = str(settings.home)
    url_host = "localhost" if args.host in ("127.0.0.1", "localhost") else args.host
    database = safe_database_url(settings.database_url)
    print(
        f"mirada dashboard: http://{url_host}:{args.port} (database {database})",
        file=sys.stderr,
        flush=True,
    )
    proc = subprocess.Popen(streamlit_command(app, args.host, args.port), env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        # `docker stop` and service managers send SIGTERM to us, not to streamlit.
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        try:
            return _exit_code(proc.wait())
        except KeyboardInterrupt:
            # A terminal Ctrl-C reaches streamlit too (same process group); a SIGINT sent to
            # this process alone does not, so forward it, then wait for streamlit to exit.
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                return _exit_code(proc.wait(timeout=10))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    return _exit_code(proc.wait(timeout=5))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    return _exit_code(proc.wait())
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- `mirada export` -------------------------------------------------------------------------

EXPORT_DESCRIPTION = """\
Export one succeeded run as a Markdown report, JSON or CSV, or as a result bundle.

Formats (--format; without it, taken from the -o suffix .md/.json/.csv, else markdown):
  markdown  a report for a paper appendix or an issue: setup (model, fingerprint and
            revision, dataset size, device, dtype, batch size, hardware), metrics as the
            dashboard shows them ("96.7% [91.7, 98.7]" for proportions, "0.850 [0.650,
            0.950]" for scores) with the interval's method or why there is none, a
            per-category table, timings, and notes on how each metric is computed.
  json      one object: run, dataset, model_fingerprint, hardware, metrics
            {name: {value, ci_low, ci_high, interval_method, unavailable, ...}} as raw
            fractions, per_category, timings, items (one per image: filename, category,
            correct, rank, score, top caption, references, generated caption,
            caption_scores, flags), notes.
  csv       one table per file, chosen with --table:
              items    (default) one row per image; the columns run_id, model, dataset,
                       task repeat on every row so several runs paste into one sheet;
                       then filename, category, correct, rank, score, top_caption,
                       top_caption_score, ..., references (joined by " || "),
                       generated_caption, caption_<BLEU-4, CIDEr, ...>, flag_<...>.
              metrics  long format: run_id, category (empty = whole dataset), n_images,
                       metric, value, ci_low, ci_high, interval_method, unavailable,
                       chance, ..., label (the README lists every column).
              timings  run_id, name, value, unit, batch_size.
              setup    key, value (the Markdown setup table, hardware included).
            Numbers are raw (fractions, not percent), booleans true/false, missing
            values empty (the dashboard's CSV downloads use the same rules); text cells
            that start with = + - @, tab or CR get a leading ' so spreadsheets do not run
            them as formulas (numbers such as -0.5 stay numbers).
  bundle    (needs -o) a zip for another Mirada home (`mirada import-results FILE`):
            the run, its metrics, timings, per-image results, embeddings, hardware
            profile, model fingerprint and a dataset fingerprint (item filenames,
            categories, captions and image SHA-256s); the images themselves only with
            --with-images. manifest.json lists every member with its SHA-256.

Without -o the export goes to stdout. With -o it is written atomically (a temporary file
in the same folder, then renamed), replacing FILE if it exists.
"""


@command(
    "export",
    "Export a succeeded run as a Markdown report, JSON, CSV tables or a bundle",
    arg("run_id", type=run_id, help="run id (see `mirada runs`)"),
    arg(
        "--format",
        dest="fmt",
        choices=["csv", "json", "markdown", "bundle"],
        help="output format (default: from the -o suffix, else markdown)",
    ),
    arg(
        "--table",
        choices=["items", "metrics", "timings", "setup"],
        default="items",
        help="CSV only: which table to write (default items: one row per image)",
    ),
    arg("-o", "--output", metavar="FILE", help="write to FILE (replaced if it exists)"),
    arg(
        "--with-images",
        action="store_true",
        help="bundle only: include the dataset's image files",
    ),
    description=EXPORT_DESCRIPTION,
)
def export_cmd(args: argparse.Namespace) -> int:
    from mirada.export import build_export, format_for_path, render, write_atomic

    fmt = args.fmt or format_for_path(args.output) or "markdown"
    if fmt == "bundle" or args.with_images:
        return _export_bundle(args, fmt)
    if args.table != "items" and fmt != "csv":
        raise MiradaError(f"--table applies to --format csv only (the {fmt} export has all)")
    export = build_export(args.run_id)
    text = render(export, fmt, table=args.table)
    if fmt == "csv" and args.table == "items" and not export["items"]:
        print(
            f"mirada export: run {args.run_id} ({export['run']['task']}) has no per-image "
            "results; try --table metrics or --table timings",
            file=sys.stderr,
        )
    if args.output:
        path = write_atomic(args.output, text)
        print(f"wrote {path} ({fmt})", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def _export_bundle(args: argparse.Namespace, fmt: str) -> int:
    from mirada.bundles import export_bundle

    if fmt != "bundle":
        raise MiradaError("--with-images applies to --format bundle only")
    if not args.output:
        raise MiradaError("a bundle is a binary file: give -o FILE (e.g. -o run.mirada.zip)")
    if args.table != "items":
        raise MiradaError("--table applies to --format csv only (the bundle has all)")
    done = export_bundle(args.run_id, args.output, with_images=args.with_images)
    images = f", {done.n_images} image files" if args.with_images else ""
    print(
        f"wrote {done.path} (bundle: {done.n_metrics} metrics, {done.n_timings} timings, "
        f"{done.n_items} items{images}; content {done.content_sha256[:12]})",
        file=sys.stderr,
    )
    return 0
