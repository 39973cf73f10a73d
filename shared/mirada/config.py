"""Settings read from the environment, so every process (CLI, worker, dashboard) agrees.

A bad value is a ConfigError (a MiradaError) naming the variable, the value and the accepted
form, so the CLI prints one line instead of a traceback.

The data folder is MIRADA_HOME, else a per-user folder (platformdirs: ~/.local/share/mirada
on Linux), never one relative to the working directory: `mirada runs` must find the same runs
wherever it is typed.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from mirada.errors import MiradaError

# The default before the per-user folder: ./mirada-data, relative to the working directory.
LEGACY_HOME_NAME = "mirada-data"

# Backends Mirada supports; the URL's scheme is `<dialect>[+<driver>]://`.
DATABASE_DIALECTS = ("sqlite", "postgresql")
_URL_SCHEME = re.compile(r"^(?P<dialect>[A-Za-z][A-Za-z0-9]*)(\+[A-Za-z0-9_]+)?://")


class ConfigError(MiradaError):
    """An environment variable with a value Mirada cannot use."""


def _bad(name: str, raw: str, accepted: str) -> ConfigError:
    return ConfigError(f"environment variable {name}={raw!r} is invalid: expected {accepted}")


def _int_env(name: str, default: int) -> int:
    """A positive integer, or `default` when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    accepted = f"a positive whole number such as {default} (or unset it for {default})"
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, raw, accepted) from None
    if value < 1:
        raise _bad(name, raw, accepted)
    return value


_URL_FORMS = (
    "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE "
    "(or unset it for the SQLite file in MIRADA_HOME)"
)


def _nearest_existing(path: Path) -> Path | None:
    """`path` if it exists, else its nearest existing ancestor: where `mkdir -p path` starts."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return None


def _blocking_file(path: Path) -> Path | None:
    """The file that stops `mkdir -p path` (path itself, or a file on its way), if any."""
    found = _nearest_existing(path)
    return found if found is not None and not os.path.isdir(found) else None


def _check_home(home: Path) -> None:
    """The data directory exists, or can be created: a FileExistsError, NotADirectoryError or
    PermissionError deep in a mkdir is not a message."""
    found = _nearest_existing(home)
    if found is None or (found == home and os.path.isdir(home)):
        return
    if not os.path.isdir(found):
        problem = f"{found} is a file" if found == home else f"{found} on its path is a file"
    elif not os.access(found, os.W_OK | os.X_OK):  # a read-only mount, another user's folder
        problem = f"it does not exist and cannot be created in {found} (not writable)"
    else:
        return  # created on first use
    if home_from_environment():
        raise _bad("MIRADA_HOME", os.environ["MIRADA_HOME"], f"a directory, but {problem}")
    raise ConfigError(
        f"Mirada's data directory {home} cannot be used: {problem}. "
        "Set MIRADA_HOME to a directory, or fix that path."
    )


def _check_sqlite_path(raw: str, home: Path) -> None:
    """A SQLite URL the user wrote names a file in an existing directory. Mirada creates the
    file but not the directory (MIRADA_HOME itself excepted, which Mirada creates anyway): a
    typo in the path would otherwise start a new, empty database elsewhere, silently."""
    from sqlalchemy.engine import make_url  # only for a SQLite URL the user wrote
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise _bad("MIRADA_DATABASE_URL", raw, _URL_FORMS) from None
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in raw or url.query.get("uri") == "true":
        return  # in memory, or a file: URI that SQLite opens as written
    path = Path(database).expanduser()
    folder = path.parent
    if os.path.isdir(path):
        raise _bad("MIRADA_DATABASE_URL", raw, f"a database file, but {path} is a directory")
    blocker = _blocking_file(folder)
    if blocker is not None:
        raise _bad("MIRADA_DATABASE_URL", raw, f"a file in a directory, but {blocker} is a file")
    if not os.path.isdir(folder) and folder.resolve() != home:
        mkdir = f"mkdir -p {shlex.quote(str(folder))}"
        raise _bad(
            "MIRADA_DATABASE_URL",
            raw,
            f"a file in an existing directory, but {folder} does not exist (Mirada creates "
            f"the database file, not its directory: check the path, or {mkdir})",
        )


def _database_url(home: Path) -> str:
    raw = os.environ.get("MIRADA_DATABASE_URL")
    if not raw:
        return f"sqlite:///{home / 'mirada.db'}"
    match = _URL_SCHEME.match(raw)
    if match is None or match["dialect"].lower() not in DATABASE_DIALECTS:
        raise _bad("MIRADA_DATABASE_URL", raw, _URL_FORMS)
    if match["dialect"].lower() == "sqlite":
        _check_sqlite_path(raw, home)
    return raw


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_zip_bytes: int
    max_zip_files: int
    max_image_pixels: int
    max_csv_rows: int
    max_file_bytes: int
    max_zip_ratio: int
    max_line_chars: int
    heartbeat_seconds: int
    stale_after_seconds: int
    images_in_database: bool

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def thumbs_dir(self) -> Path:
        return self.home / "thumbs"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"


def default_home() -> Path:
    """The per-user data folder used when MIRADA_HOME is unset (XDG_DATA_HOME is honoured)."""
    # appauthor=False: %LOCALAPPDATA%\mirada on Windows, not mirada\mirada.
    return Path(user_data_dir("mirada", appauthor=False)).resolve()


def home_from_environment() -> bool:
    """Whether MIRADA_HOME chooses the data folder (an empty value counts as unset)."""
    return bool(os.environ.get("MIRADA_HOME"))


def legacy_home_notice(cwd: Path | None = None) -> str | None:
    """One line for a user whose data sits in ./mirada-data (the old cwd-relative default)
    while MIRADA_HOME is unset, so Mirada now uses default_home(); None otherwise.

    We do not fall back to the old folder: the same command would then see different data in
    different directories, the very bug the per-user default fixes. The notice says where the
    data now lives and the one command that keeps the old folder."""
    if home_from_environment():
        return None
    legacy = (cwd or Path.cwd()) / LEGACY_HOME_NAME
    if not legacy.is_dir():
        return None
    legacy = legacy.resolve()
    home = default_home()
    if legacy == home:
        return None
    old, new = shlex.quote(str(legacy)), shlex.quote(str(home))
    move = "" if home.exists() else f" (or move it there: mv {old} {new})"
    return (
        f"mirada: note: ./{LEGACY_HOME_NAME} here is no longer read; Mirada's data now lives "
        f"in {home}. To keep using the old folder: export MIRADA_HOME={old}{move}"
    )


_NOTICED: set[Path] = set()


def _notice_legacy_home_once() -> None:
    """Print legacy_home_notice on stderr once per process and folder (get_settings runs often)."""
    cwd = Path.cwd()
    if cwd in _NOTICED:
        return
    _NOTICED.add(cwd)
    notice = legacy_home_notice(cwd)
    if notice:
        print(notice, file=sys.stderr, flush=True)


def get_settings() -> Settings:
    """Read settings now; cheap, so callers never hold stale copies across env changes."""
    if home_from_environment():
        home = Path(os.environ["MIRADA_HOME"]).expanduser().resolve()
    else:
        home = default_home()
        _notice_legacy_home_once()
    _check_home(home)
    url = _database_url(home)
    return Settings(
        home=home,
        database_url=url,
        max_zip_bytes=_int_env("MIRADA_MAX_ZIP_BYTES", 4 * 1024**3),
        max_zip_files=_int_env("MIRADA_MAX_ZIP_FILES", 200_000),
        max_image_pixels=_int_env("MIRADA_MAX_IMAGE_PIXELS", 89_478_485),
        max_csv_rows=_int_env("MIRADA_MAX_CSV_ROWS", 1_000_000),
        # One file (image or annotation) read during an import; bounds import memory.
        max_file_bytes=_int_env("MIRADA_MAX_FILE_BYTES", 256 * 1024**2),
        # Zip entries over 1 MiB may not inflate more than this many times (zip bombs).
        max_zip_ratio=_int_env("MIRADA_MAX_ZIP_RATIO", 100),
        max_line_chars=_int_env("MIRADA_MAX_LINE_CHARS", 1_000_000),
        heartbeat_seconds=_int_env("MIRADA_HEARTBEAT_SECONDS", 10),
        stale_after_seconds=_int_env("MIRADA_STALE_AFTER_SECONDS", 60),
        images_in_database=_images_in_database(url),
    )


def _images_in_database(url: str) -> bool:
    """auto (default): keep image bytes in the database unless it is the embedded SQLite
    file, whose machine already has the files."""
    raw = os.environ.get("MIRADA_IMAGES_IN_DATABASE") or "auto"
    value = raw.strip().lower()
    if value == "auto":
        return not url.startswith("sqlite")
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise _bad("MIRADA_IMAGES_IN_DATABASE", raw, "auto, true or false")
