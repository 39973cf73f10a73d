"""`mirada ARGS` run inside the test process: the same parser and handlers as the console
script without a fresh interpreter (importing torch alone costs seconds per command). Two
tests in test_end_to_end.py keep the real entry points (`mirada`, `python -m mirada`) covered.
"""

from __future__ import annotations

import io
import signal
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from mirada.db import dispose_engines


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run `mirada ARGS` with this process's environment (MIRADA_HOME, MIRADA_DATABASE_URL)."""
    from mirada.cli import main

    out, err = io.StringIO(), io.StringIO()
    # `mirada worker` installs its own SIGINT/SIGTERM handlers; pytest keeps its own.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    dispose_engines()  # engines are cached per URL; the environment may have changed
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        dispose_engines()
    return CliResult(code, out.getvalue(), err.getvalue())
