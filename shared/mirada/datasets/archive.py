"""Read a dataset from a folder or a .zip without extracting it anywhere.

Zip members are streamed straight from the archive, so nothing touches /tmp or any path
outside MIRADA_HOME. Every entry is checked before anything is read: no `..`, no absolute
paths, no symlinks, no two entries with the same path, a compression method we can read, and
the declared sizes, compression ratios and file count under the configured caps. While
reading, each member is also held to its declared size, because headers can lie: a member can
therefore never inflate past the size and ratio limits its header passed.

Folder files are held to the same per-file size cap, checked with fstat before the first
byte is read (a 6 GB sparse file costs nothing) and again while reading (a file can grow).
Only regular files are read: a named pipe, device or socket is refused, never opened for a
blocking read, and a symlink must stay inside the folder.
"""

from __future__ import annotations

import fcntl
import io
import os
import posixpath
import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mirada.config import Settings
from mirada.datasets.problems import DatasetImportError, Problem, fatal

_CHUNK = 1024 * 1024
# Litter from macOS/Windows archivers; never part of a dataset.
_JUNK = re.compile(r"(^|/)(__MACOSX/|\._)|(^|/)(\.DS_Store|Thumbs\.db|desktop\.ini)$")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Methods zipfile can inflate; anything else (Deflate64, PPMd, ...) fails only when read.
_READABLE_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
# Below this size an entry cannot hurt, whatever its ratio (a blank BMP deflates 1000:1).
_RATIO_FREE_BYTES = 1024 * 1024


class UnreadableFile(OSError):
    """A file of the source we will not or cannot read; `reason` says why and what to do."""

    def __init__(self, rel: str, reason: str) -> None:
        super().__init__(reason)
        self.rel = rel
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def too_large(size: int, limit: int) -> str:
    return (
        f"is {size:,} bytes, more than the limit of {limit:,} per file "
        "(MIRADA_MAX_FILE_BYTES); shrink or split it, or raise the limit"
    )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def is_junk(rel: str) -> bool:
    return bool(_JUNK.search(rel))


class Source:
    """A dataset's files as relative POSIX paths, readable one at a time."""

    label: str  # the folder or zip name, for messages

    def files(self) -> list[str]:
        raise NotImplementedError

    @contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        raise NotImplementedError
        yield  # pragma: no cover

    def read(self, rel: str) -> bytes:
        with self.open(rel) as fh:
            return fh.read()

    def close(self) -> None:
        pass


class FolderSource(Source):
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root.resolve()
        self.label = self.root.name
        self._max_bytes = settings.max_file_bytes
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            found: list[str] = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames.sort()
                for fname in sorted(filenames):
                    rel = Path(dirpath, fname).relative_to(self.root).as_posix()
                    if not is_junk(rel):
                        found.append(rel)
            self._files = found
        return self._files

    @contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        try:
            path = (self.root / rel).resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise UnreadableFile(rel, f"cannot be read ({exc}); check the file") from exc
        # A symlink inside the folder must not lead outside it.
        if not path.is_relative_to(self.root):
            raise UnreadableFile(
                rel, "is a link to a file outside the dataset folder; copy the file in"
            )
        # stat first (a socket cannot even be opened); O_NONBLOCK so that a named pipe swapped
        # in meanwhile does not wait for a writer; fstat then checks what was really opened.
        try:
            self._check_regular(rel, os.stat(path))
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except UnreadableFile:
            raise
        except OSError as exc:
            raise UnreadableFile(rel, f"cannot be read ({exc.strerror}); check the file") from exc
        try:
            self._check_regular(rel, os.fstat(fd))
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            fh = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            grown = UnreadableFile(rel, too_large(self._max_bytes + 1, self._max_bytes))
            yield io.BufferedReader(_CappedReader(fh, self._max_bytes, grown), _CHUNK)

    def _check_regular(self, rel: str, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(
                rel,
                f"is {_kind(info.st_mode)}, not a regular file; only regular files are "
                "imported, replace it with the real file",
            )
        if info.st_size > self._max_bytes:
            raise UnreadableFile(rel, too_large(info.st_size, self._max_bytes))


class _CappedReader(io.RawIOBase):
    """Raises `error` once the inner stream yields more than `limit` bytes."""

    def __init__(self, inner: IO[bytes], limit: int, error: Exception) -> None:
        self._inner = inner
        self._left = limit
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise self._error
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


class ZipSource(Source):
    def __init__(self, path: Path, settings: Settings) -> None:
        self.label = path.name
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise fatal(path.name, f"is not a readable zip archive ({exc}); re-create it") from exc
        try:
            self._members = self._check(settings)
        except BaseException:
            self._zip.close()
            raise

    def _check(self, settings: Settings) -> dict[str, zipfile.ZipInfo]:
        problems: list[Problem] = []
        members: dict[str, zipfile.ZipInfo] = {}
        infos = self._zip.infolist()
        if len(infos) > settings.max_zip_files:
            raise fatal(
                self.label,
                f"holds {len(infos):,} entries, more than the limit of "
                f"{settings.max_zip_files:,} (MIRADA_MAX_ZIP_FILES); split the archive or "
                "raise the limit",
            )
        declared = 0
        seen: dict[str, str] = {}  # normalised path -> the entry name that claimed it
        for info in infos:
            name = info.filename
            where = f"{self.label}: {name}"
            unix_mode = info.external_attr >> 16
            if stat.S_ISLNK(unix_mode):
                problems.append(Problem(where, "is a symbolic link; zip the real file instead"))
                continue
            clean = name.replace("\\", "/")
            parts = clean.split("/")
            if clean.startswith("/") or _DRIVE.match(clean) or ".." in parts:
                problems.append(
                    Problem(
                        where,
                        "points outside the archive (absolute path or '..'); "
                        "zip the dataset folder with relative paths",
                    )
                )
                continue
            if info.is_dir() or is_junk(clean):
                continue
            if info.flag_bits & 0x1:
                problems.append(Problem(where, "is encrypted; zip it without a password"))
                continue
            key = unicodedata.normalize("NFC", posixpath.normpath(clean))
            if key in seen:
                problems.append(
                    Problem(
                        where,
                        f"has the same path as entry {seen[key]!r}, so it is ambiguous which "
                        "one is meant; remove one of them and zip again",
                    )
                )
                continue
            seen[key] = name
            problem = self._entry_problem(info, settings)
            if problem:
                problems.append(Problem(where, problem))
                continue
            declared += info.file_size
            members[key] = info
        if problems:
            raise DatasetImportError(problems, dataset=None)
        if declared > settings.max_zip_bytes:
            raise fatal(
                self.label,
                f"would unpack to {declared:,} bytes, more than the limit of "
                f"{settings.max_zip_bytes:,} (MIRADA_MAX_ZIP_BYTES); split the archive or "
                "raise the limit",
            )
        return members

    @staticmethod
    def _entry_problem(info: zipfile.ZipInfo, settings: Settings) -> str | None:
        if info.compress_type not in _READABLE_METHODS:
            return (
                f"uses compression method {info.compress_type} (e.g. Deflate64 from Windows "
                "Explorer), which we cannot read; re-create the zip with standard Deflate "
                "(zip -r, or 7-Zip with -mm=Deflate)"
            )
        if info.file_size > settings.max_file_bytes:
            return too_large(info.file_size, settings.max_file_bytes)
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FREE_BYTES and ratio > settings.max_zip_ratio:
            return (
                f"inflates {ratio:,.0f} times ({info.compress_size:,} -> {info.file_size:,} "
                f"bytes), more than the limit of {settings.max_zip_ratio} (MIRADA_MAX_ZIP_RATIO);"
                " this looks like a zip bomb. Remove the entry or raise the limit"
            )
        return None

    def files(self) -> list[str]:
        return sorted(self._members)

    @contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        info = self._members.get(rel)
        if info is None:
            raise FileNotFoundError(rel)
        lying = fatal(
            f"{self.label}: {info.filename}",
            "decompresses to more than its declared size; the archive is corrupt or "
            "malicious. Re-create the zip with a standard tool.",
        )
        try:
            with self._zip.open(info) as raw:
                capped = _CappedReader(raw, info.file_size, lying)
                yield io.BufferedReader(capped, _CHUNK)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
            # Callers treat OSError as "this file cannot be read" and name the file.
            raise UnreadableFile(rel, f"damaged zip entry ({exc}); re-create the archive") from exc

    def close(self) -> None:
        self._zip.close()
