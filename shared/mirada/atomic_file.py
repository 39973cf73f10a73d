"""Writing a file atomically: readers see the old file or the new one, never a partial write."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mirada.errors import MiradaError


def write_atomic(
    path: str | os.PathLike[str],
    fill: Callable[[BinaryIO], object],
    error: type[MiradaError] = MiradaError,
) -> Path:
    """Let `fill` write the content into a temporary file in the target's folder, fsync it and
    os.replace it onto `path`; return the path. An existing file is replaced (an explicit output
    path means "write here"); a missing folder, a folder as target or an unwritable folder
    raise `error`. The temporary file is removed if anything fails."""
    target = Path(path).expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise error(f"cannot write {target}: folder {parent} does not exist")
    if target.is_dir():
        raise error(f"cannot write {target}: it is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise error(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the permissions a normal new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
