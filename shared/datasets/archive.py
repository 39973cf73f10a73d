"""Read a dataset from a folder or a .zip without extracting it anywhere.

Zip members are streamed straight from the archive, so nothing touches /tmp or any path
outside MIRADA_HOME. Every entry is checked before anything is read: no `..`, no absolute
paths, no symlinks, and the declared sizes and file count stay under the configured caps.
While reading, each member is also held to its declared size, because headers can lie.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
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
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.label = self.root.name
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
        path = (self.root / rel).resolve()
        # A symlink inside the folder must not lead outside it.
        if not path.is_relative_to(self.root):
            raise OSError("it is a link to a file outside the dataset folder; copy the file in")
        with path.open("rb") as fh:
            yield fh


class _CappedReader(io.RawIOBase):
    """Raises once a zip member yields more bytes than its header declared."""

    def __init__(self, inner: IO[bytes], name: str, declared: int) -> None:
        self._inner = inner
        self._name = name
        self._left = declared

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise fatal(
                self._name,
                "decompresses to more than its declared size; the archive is corrupt or "
                "malicious. Re-create the zip with a standard tool.",
            )
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
            declared += info.file_size
            members[posixpath.normpath(clean)] = info
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

    def files(self) -> list[str]:
        return sorted(self._members)

    @contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        info = self._members.get(rel)
        if info is None:
            raise FileNotFoundError(rel)
        try:
            with self._zip.open(info) as raw:
                capped = _CappedReader(raw, f"{self.label}: {info.filename}", info.file_size)
                yield io.BufferedReader(capped, _CHUNK)  # type: ignore[arg-type]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            # Callers treat OSError as "this file cannot be read" and name the file.
            raise OSError(f"damaged zip entry ({exc}); re-create the archive") from exc

    def close(self) -> None:
        self._zip.close()
