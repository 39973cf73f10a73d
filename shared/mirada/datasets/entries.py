"""What parsers produce (entries), and the two helpers every format shares: the collector that
merges rows into entries and the resolver that maps annotation file names onto source files.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mirada.datasets.problems import ProblemLog

MAX_CATEGORY_CHARS = 200
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class Entry:
    """One image of the dataset as the annotation describes it."""

    path: str  # relative path inside the source
    where: str  # where it is first mentioned, for image problems
    captions: list[str] = field(default_factory=list)
    category: str | None = None
    category_where: str | None = None


@dataclass
class Parsed:
    format: str
    entries: list[Entry]
    base: str  # directory of the annotation file(s); Item.filename is relative to it
    warnings: list[str] = field(default_factory=list)  # worth saying, not worth refusing


def text_problem(text: str) -> str | None:
    """Why `text` (a caption, category, file name) cannot be stored the same on both
    backends, or None. Result bundles (mirada.bundles.schema) apply the same rule."""
    if "\x00" in text:
        # SQLite would store it silently and PostgreSQL refuses it: refuse on both.
        return "contains a NUL character (\\0); remove it from the text"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON "\\ud800"): neither backend takes it
            return "contains a lone UTF-16 surrogate; it is not valid Unicode text"
    return None


class Collector:
    """Merges rows into entries, checking captions and categories row by row."""

    def __init__(self, log: ProblemLog) -> None:
        self.log = log
        self.entries: dict[str, Entry] = {}

    def add(self, where: str, path: str, caption: Any, category: Any) -> None:
        text = caption.strip() if isinstance(caption, str) else ""
        if not text:
            self.log.add(where, f"empty caption for {path}; write a caption or delete the row")
            return
        problem = text_problem(text) or (
            text_problem(category) if isinstance(category, str) else None
        )
        if problem:
            self.log.add(where, problem)
            return
        cat = category.strip() if isinstance(category, str) else None
        if category is not None and not isinstance(category, str):
            cat = str(category).strip()
        cat = cat or None
        if cat and len(cat) > MAX_CATEGORY_CHARS:
            self.log.add(
                where, f"category is longer than {MAX_CATEGORY_CHARS} characters; shorten it"
            )
            return
        entry = self.entries.get(path)
        if entry and cat and entry.category and cat != entry.category:
            self.log.add(
                where,
                f"category {cat!r} conflicts with {entry.category!r} given for {path} at "
                f"{entry.category_where}; an image has one category, make the rows agree",
            )
            return
        if entry is None:
            entry = self.entries[path] = Entry(path, where)
        if cat and not entry.category:
            entry.category, entry.category_where = cat, where
        entry.captions.append(text)


class Resolver:
    """Turns a file name from an annotation into a path that exists in the source."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = set(files)
        self._lower: dict[str, str] | None = None
        self._nfc: dict[str, str] | None = None
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[str | None, str | None]] = {}

    def _normal(self) -> dict[str, str]:
        if self._nfc is None:
            self._nfc = {unicodedata.normalize("NFC", f): f for f in self.files}
        return self._nfc

    def resolve(self, base: str, *names: str) -> tuple[str | None, str | None]:
        """(path, None) when found, else (None, message saying what to fix)."""
        key = (base, names)
        if key not in self._cache:
            self._cache[key] = self._resolve(base, names)
        return self._cache[key]

    def _resolve(self, base: str, names: tuple[str, ...]) -> tuple[str | None, str | None]:
        tried: list[str] = []
        for raw in names:
            name = raw.strip().replace("\\", "/")
            if not name:
                return None, "has no file name; fill in the file name column"
            if name.startswith("/") or _DRIVE.match(name) or "://" in name:
                return None, (
                    f"file {raw!r} is an absolute path or URL; use a path relative to the "
                    "annotation file, inside the dataset"
                )
            joined = posixpath.normpath(posixpath.join(base, name))
            if joined == ".." or joined.startswith("../"):
                return None, (
                    f"file {raw!r} points outside the dataset; keep images inside the "
                    "dataset folder and use a relative path"
                )
            tried.append(joined)
            for candidate in (joined, posixpath.join(base, "images", name)):
                if candidate in self.files:
                    return candidate, None
                # macOS writes names NFD, most editors NFC: compare in one normal form.
                found = self._normal().get(unicodedata.normalize("NFC", candidate))
                if found is not None:
                    return found, None
        if self._lower is None:
            self._lower = {f.lower(): f for f in self.files}
        for path in tried:
            near = self._lower.get(path.lower())
            if near:
                return (
                    None,
                    f"file {path!r} not found; did you mean {near!r}? (names are case-sensitive)",
                )
        return None, f"file {tried[0]!r} not found in the dataset; add it or fix the name"
