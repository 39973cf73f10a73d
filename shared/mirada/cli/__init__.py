"""The `mirada` command line. Each subcommand is one decorated function in a mirada.cli module.

Command modules must import quickly: heavy libraries (torch, transformers, streamlit) are
imported inside the command function, never at module level.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from mirada.errors import MiradaError
from mirada.text_safety import json_safe, printable

# Modules that define commands; registering one more command is one decorated function.
COMMAND_MODULES = (
    "mirada.cli.datasets",
    "mirada.cli.models",
    "mirada.cli.runs",
    "mirada.cli.captions",
    "mirada.cli.demo",
    "mirada.cli.info",
    "mirada.cli.bundles",
)


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **kwargs: Any) -> Arg:
    return Arg(flags, kwargs)


Handler = Callable[[argparse.Namespace], "int | None"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Handler
    arguments: tuple[Arg, ...]
    description: str | None


COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, *arguments: Arg, description: str | None = None
) -> Callable[[Handler], Handler]:
    """Register `fn(args) -> exit code` as `mirada NAME`."""

    def register(fn: Handler) -> Handler:
        if name in COMMANDS:
            raise RuntimeError(f"mirada command {name!r} is registered twice")
        COMMANDS[name] = Command(name, help, fn, arguments, description or fn.__doc__)
        return fn

    return register


def print_json(payload: Any) -> None:
    text = json.dumps(payload, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write(json_safe(text) + "\n")  # DEL, C1 and bidi as \uXXXX: same JSON


class PrintableStdout:
    """What a command writes to stdout, through `printable`: user text (names, categories,
    captions, errors) printed by any command cannot carry terminal escapes (retitling, cursor
    moves) or bidi overrides; they show as `\\x1b`, `\\u202e`. Newlines and tabs pass.

    Exports and JSON are already escaped (csv_cell, markdown_text, json_safe), so this changes
    nothing in them."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self._stream, name)


class StderrHandler(logging.Handler):
    """Writes to the current sys.stderr (looked up per line, so redirections apply)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:  # log lines quote captions, categories and model ids
            print(printable(self.format(record)), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def show_log(logger_name: str, fmt: str, datefmt: str | None = None) -> None:
    """Print a logger's INFO lines (and worse) on stderr as `fmt`; once, however often called."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(fmt, datefmt))
        logger.addHandler(handler)


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    parser = argparse.ArgumentParser(
        prog="mirada",
        description="Benchmark vision-language models on your own captioned images.",
    )
    from mirada.version import __version__

    parser.add_argument("--version", action="version", version=f"mirada {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description or cmd.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for a in cmd.arguments:
            p.add_argument(*a.flags, **a.kwargs)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    stdout = sys.stdout
    sys.stdout = PrintableStdout(stdout)
    try:
        return int(args._run(args) or 0)
    except MiradaError as exc:
        return _error(args.command, exc)
    except KeyboardInterrupt:
        print(f"mirada {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mirada show 3 | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 0
    except Exception as exc:
        # Sessions map database errors already (mirada.db.errors); one raised outside a
        # session still reads as a message, never SQLAlchemy's text and link.
        mapped = _database_error(exc)
        if mapped is None:
            raise
        return _error(args.command, mapped)
    finally:
        sys.stdout = stdout


def _error(command: str, exc: MiradaError) -> int:
    print(f"mirada {command}: error: {printable(str(exc))}", file=sys.stderr)
    return exc.exit_code


def _database_error(exc: Exception) -> MiradaError | None:
    if "sqlalchemy" not in sys.modules:  # cannot be a database error; keep start-up light
        return None
    from mirada.db.errors import map_database_error

    return map_database_error(exc, writing=False)


if __name__ == "__main__":
    sys.exit(main())
