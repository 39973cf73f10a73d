"""Database errors as one line the user can act on, on SQLite and PostgreSQL.

The sessions (mirada.db.engine) map every IntegrityError, DataError, OperationalError and
damaged-file DatabaseError here, once, as they leave the session; `mirada` prints the result
like any MiradaError. The message says what happened (the connection was lost, which
constraint which row broke, which value the database refused), whether anything was stored,
and what to do; never SQLAlchemy's text with its "Background on this error" link.

Each mapped error is also still an instance of the SQLAlchemy class it came from, with the
same `orig`, `statement` and `params`: code that recognises a lost race by catching
IntegrityError around a session (mirada.datasets.store, mirada.bundles.load) keeps working.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError, DataError, DBAPIError, IntegrityError, OperationalError

from mirada.db.read_only import database_where
from mirada.errors import MiradaError
from mirada.text_safety import printable

_SHOWN = 120  # characters of server text or a value quoted in a message


class DatabaseFailure(MiradaError):
    """A database error, as a message (the CLI prints it as one line and exits 2)."""


class _FromDBAPI(DatabaseFailure):
    """A DBAPIError re-raised as a MiradaError of the same SQLAlchemy class."""

    def __init__(self, message: str, original: DBAPIError) -> None:
        DBAPIError.__init__(
            cast("DBAPIError", self),
            original.statement,
            original.params,
            cast("BaseException", original.orig),
            original.hide_parameters,
            original.connection_invalidated,
            original.__dict__.get("code"),
            original.ismulti,
        )
        self.args = (message,)
        self.message = message
        self.original = original

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.original))


class DatabaseUnavailable(_FromDBAPI, OperationalError):
    """Could not connect, the connection was lost, the file stayed locked, the server gave up."""


class ConstraintViolated(_FromDBAPI, IntegrityError):
    """A row broke a constraint (unique, foreign key, not null, check)."""


class ValueRefused(_FromDBAPI, DataError):
    """The database refused a value (NUL in PostgreSQL text, a number out of range, ...)."""


class DatabaseDamaged(_FromDBAPI, DatabaseError):
    """The SQLite file is not a database, or is damaged."""


class DatabaseFileReplaced(DatabaseFailure):
    """The SQLite file at the database's path is no longer the file this process opened."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"the database file {path} was deleted or replaced while this process had it "
            "open; what it wrote since is not in the file there now. Start the command (or "
            "the dashboard) again to use the file now at that path, or put the original back"
        )
        self.path = path


def map_database_error(
    exc: BaseException,
    engine: Engine | None = None,
    *,
    writing: bool = True,
    committing: bool = False,
) -> DatabaseFailure | None:
    """The message for a database error, or None for what is not one (or is a bug: a
    ProgrammingError is a query Mirada got wrong, and keeps its traceback).

    `writing`: it left a write transaction, which was rolled back (say so). `committing`: it
    came from COMMIT, whose outcome is unknown when a server connection drops at that moment.
    """
    if isinstance(exc, DatabaseFailure):
        return exc
    if not isinstance(exc, DBAPIError):
        return None
    if getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_ERROR":
        return None  # SQLite's "no such table", "syntax error": a query Mirada got wrong
    where = database_where(engine) if engine is not None else "the database"
    rolled_back = "; nothing of it was stored" if writing else ""
    if isinstance(exc, IntegrityError):
        return ConstraintViolated(
            f"{where} refused a row: {_constraint(exc)}{rolled_back}. "
            "Check the data for that row and run the command again",
            exc,
        )
    if isinstance(exc, DataError):
        return ValueRefused(f"{where} refused a value: {_refused_value(exc)}{rolled_back}", exc)
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return DatabaseUnavailable(_unavailable(exc, where, writing, committing), exc)
    if type(exc) is DatabaseError:  # SQLite: "file is not a database", "... malformed"
        return DatabaseDamaged(
            f"{where} cannot be read ({_first_line(exc)}): it is damaged or not a database. "
            "Restore it from a backup, or point MIRADA_HOME or MIRADA_DATABASE_URL elsewhere",
            exc,
        )
    return None


def _unavailable(exc: DBAPIError, where: str, writing: bool, committing: bool) -> str:
    reason = _first_line(exc)
    if committing and exc.connection_invalidated:
        return (
            f"the connection to {where} was lost while committing ({reason}): what this "
            "command wrote may or may not have been stored. Check (mirada runs, mirada "
            "datasets) before running it again"
        )
    if exc.connection_invalidated:
        done = "; nothing of its transaction was stored" if writing else ""
        return f"the connection to {where} was lost ({reason}){done}; run the command again"
    if exc.statement is None:  # raised while connecting, before any statement
        return (
            f"could not connect to {where} ({reason}); check that it is running and "
            "reachable, and that MIRADA_DATABASE_URL names it, then run the command again"
        )
    if "database is locked" in reason or "database table is locked" in reason:
        return (
            f"{where} stayed locked by another process for longer than the 30 s this "
            f"command waits{'; nothing was stored' if writing else ''}; run it again when "
            "the other process (an import, a worker) is done"
        )
    done = "; nothing of its transaction was stored" if writing else ""
    return f"{where} could not complete this command ({reason}){done}; run the command again"


def _first_line(exc: DBAPIError) -> str:
    orig = exc.orig
    primary = getattr(getattr(orig, "diag", None), "message_primary", None)
    text = primary or str(orig or exc).strip()
    return _clip(text.splitlines()[0] if text else type(orig).__name__)


def _constraint(exc: IntegrityError) -> str:
    """Which constraint, and the row that broke it (PostgreSQL names the key; SQLite names
    the columns, whose values come from the statement's parameters when it wrote one row)."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None and diag.message_primary:
        table = f" (table {diag.table_name})" if diag.table_name else ""
        detail = f": {_clip(diag.message_detail).rstrip('.')}" if diag.message_detail else ""
        return _clip(diag.message_primary) + table + detail
    text = _first_line(exc)  # "UNIQUE constraint failed: datasets.name, datasets.x"
    columns = re.findall(r"\b(\w+)\.(\w+)\b", text.partition(":")[2])
    rows = _rows(exc)
    values = [[v for _name, v in _params_with(rows, _any, column)] for _t, column in columns]
    if values and all(len(v) == 1 for v in values):
        row = ", ".join(
            f"{column}={_quote(v[0])}" for (_t, column), v in zip(columns, values, strict=True)
        )
        return f"{text} (the row with {row})"
    written = _TABLE.match(exc.statement or "")  # SQLite's foreign-key errors name nothing
    return f"{text} (writing to {written.group(1)})" if written and not columns else text


def _refused_value(exc: DataError) -> str:
    text = _first_line(exc)
    detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None)
    if detail:
        text += f" ({_clip(detail).rstrip('.')})"
    if "NUL" in text:  # psycopg: "PostgreSQL text fields cannot contain NUL (0x00) bytes"
        found = next(_params_with(_rows(exc), _has_nul), None)
        where = f" in {found[0]} {_quote(found[1])}" if found else ""
        return (
            f"text cannot contain the NUL character (\\x00) on PostgreSQL, found{where}. "
            "Remove it from the source data"
        )
    bits = 16 if "smallint" in text else 32 if "integer out of range" in text else 64
    found = next(_params_with(_rows(exc), lambda v: _out_of_range(v, bits)), None)
    if found is not None:
        text += f" (in {found[0]}: {_quote(found[1])})"
    return text


def _out_of_range(value: object, bits: int) -> bool:
    """Not finite, or not an integer of `bits` bits (PostgreSQL's smallint, integer, bigint)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    limit = 2 ** (bits - 1)
    return isinstance(value, int) and not isinstance(value, bool) and not -limit <= value < limit


def _any(_value: object) -> bool:
    return True


def _has_nul(value: object) -> bool:
    return isinstance(value, str) and "\x00" in value


_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+\S+\s*\(([^)]*)\)\s*VALUES", re.IGNORECASE)


def _rows(exc: DBAPIError) -> list[dict[str, Any]]:
    """The statement's parameters as rows of column -> value. PostgreSQL's are named
    already; SQLite's are positional, named here from an INSERT's column list (a multi-row
    INSERT repeats it per row). Other positional statements give nothing."""
    params: Any = exc.params
    rows = params if isinstance(params, list) else [params]
    if all(isinstance(row, dict) for row in rows):
        return rows
    match = _INSERT.match(exc.statement or "")
    if match is None:
        return []
    columns = [c.strip().strip('"') for c in match.group(1).split(",")]
    named = []
    for row in rows:
        if not isinstance(row, list | tuple):
            return []
        for start in range(0, len(row) - len(columns) + 1, len(columns)):
            named.append(dict(zip(columns, row[start : start + len(columns)], strict=True)))
    return named


def _params_with(
    rows: list[dict[str, Any]], test: Any, column: str | None = None
) -> Iterator[tuple[str, object]]:
    """(column, value) of the parameters that pass `test`, looking inside JSON values too.
    Bound names of multi-row inserts carry the row as a suffix: name__3."""
    for row in rows:
        for key, value in row.items():
            name = re.sub(r"__\d+$", "", str(key))
            if column is not None and name != column:
                continue
            for found in _leaves(value):
                if test(found):
                    yield name, found


def _leaves(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for inner in value.values():
            yield from _leaves(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _leaves(inner)
    else:
        yield value


def _quote(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return _clip(printable(text, keep_newlines=False))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
