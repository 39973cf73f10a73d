"""The result bundle's file format: a zip holding a manifest and JSON/NPY members.

Why a zip: one file that any machine can carry and any tool can list, with members that stay
plain JSON (readable, diffable) and NPY (exact float32 bytes, no pickle). `manifest.json`
names every other member with its size and SHA-256; a member that is missing, extra or
different from its checksum makes the bundle "damaged or tampered". The checksums catch
damage and edits, they are not a signature.

Reading is bounded: the file, the member count, each member's size and compression ratio
are checked against the import limits (MIRADA_MAX_ZIP_BYTES, MIRADA_MAX_ZIP_FILES,
MIRADA_MAX_FILE_BYTES, MIRADA_MAX_ZIP_RATIO) before anything is decompressed; only regular,
unencrypted members whose names match the fixed layout below are accepted. Member names are
looked up, never used as paths.

Memory is bounded by design, not by the limits above (a 20 MB bundle may hold a 200 MB JSON
member of tiny values, which json.loads turns into gigabytes of objects):
- the manifest is read as a stream and refused at the first member it lists that the zip does
  not hold, so its size never matters (a manifest listing 1,000,000 absent members: refused
  in a second, not 750 MB);
- every JSON member counts against a budget of MAX_JSON_VALUES values (numbers, strings,
  lists, objects) for the whole bundle. One over STREAM_ABOVE_BYTES is first counted as a
  stream of ijson events (in C, stopping one value past the budget) while its size and
  SHA-256 are checked, and built only when it fits: a member of tiny values is refused in
  seconds, before its document exists, whatever its size. A legitimate match run over
  200,000 items with two captions each holds about 7.6 million values;
- dataset.json's and results.json's per-item arrays are never built whole: `read_json_entries`
  gives the document less those arrays, and each array as a stream of its entries, so import
  validates them one at a time and keeps only compact records (mirada.bundles.schema_checks):
  that match run imports at about 730 MB peak RSS (benchmarks/bench_bundle_memory);
- a member is read into one buffer of its size (zipfile's read(n) peaks at three times it),
  and an NPY member's array is viewed in place (no second copy).

Layout: manifest.json, run.json, dataset.json, results.json, embeddings/<kind>.npy and
embeddings/<kind>.rows.npy, artifacts/<n>.bin, and with --with-images images/<sha256>.<ext>.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import filterfalse, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, BinaryIO

import ijson
import numpy as np

from mirada import atomic_file
from mirada.config import get_settings
from mirada.errors import MiradaError
from mirada.version import __version__

BUNDLE_FORMAT = "mirada-result-bundle"
SCHEMA_VERSION = 1  # raise on any change an older reader would misread
MANIFEST = "manifest.json"
RUN = "run.json"
DATASET = "dataset.json"
RESULTS = "results.json"
IMAGES_PREFIX = "images/"
_MEMBER = re.compile(
    r"(run|dataset|results)\.json"
    r"|embeddings/(image|text)(\.rows)?\.npy"
    r"|artifacts/[0-9]{1,6}\.bin"
    r"|images/[0-9a-f]{64}\.[a-z0-9]{1,8}"
)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # same run, same bytes: no export time inside members
STREAM_ABOVE_BYTES = 8 * 1024**2  # smaller JSON members are read whole (json.loads is fastest)
MAX_JSON_VALUES = 10_000_000  # values in all the JSON members of one bundle (see above)
_NOT_VALUES = frozenset({"map_key", "end_map", "end_array"})  # ijson events that end or name
_READ_ERRORS = (ijson.JSONError, zipfile.BadZipFile, OSError, EOFError, ValueError, StopIteration)
_STARTS, _ENDS = frozenset({"start_map", "start_array"}), frozenset({"end_map", "end_array"})
_SCALARS = frozenset({"null", "boolean", "integer", "double", "number", "string"})
_NPY_HEADERS = {  # what np.save writes (3.0 only for non-ASCII field names, never here)
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_HEAD = frozenset({"format", "schema_version", "mirada_version", "content_sha256"})


class BundleError(MiradaError):
    """A bundle that cannot be written or read; the message says what to do."""


def content_id(digests: Mapping[str, str]) -> str:
    """The bundle's identity: SHA-256 over its members' names and digests, leaving out the
    images (a bundle with --with-images is the same result as one without) and dataset.json
    (the dataset's name and format where it was exported; run.json holds its fingerprint),
    so the same run exported twice, or re-exported from a home that imported it, is the same."""
    h = hashlib.sha256()
    for name in sorted(digests):
        if name != DATASET and not name.startswith(IMAGES_PREFIX):
            h.update(f"{name} {digests[name]}\n".encode())
    return h.hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def json_bytes(doc: Any) -> bytes:
    # allow_nan=False: NaN is not JSON; stored results never hold it (mirada.results).
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()


def write_bundle(path: str | os.PathLike[str], members: Mapping[str, bytes]) -> tuple[Path, str]:
    """Write `members` plus a manifest to `path` atomically; return the path and content id."""
    for name in members:
        if not _MEMBER.fullmatch(name):
            raise AssertionError(f"bundle member name {name!r} is not in the layout")
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    cid = content_id(digests)
    manifest = {
        "format": BUNDLE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "mirada_version": __version__,
        "content_sha256": cid,
        "members": {
            name: {"sha256": digests[name], "size": len(data)} for name, data in members.items()
        },
    }

    def fill(fh: BinaryIO) -> None:
        with zipfile.ZipFile(fh, "w") as zf:
            for name, data in [(MANIFEST, json_bytes(manifest)), *members.items()]:
                info = zipfile.ZipInfo(name, _FIXED_TIME)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                # images are compressed already
                stored = name.startswith(IMAGES_PREFIX)
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                zf.writestr(info, data)

    target = atomic_file.write_atomic(path, fill, BundleError)
    return target, cid


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    mirada_version: str
    content_sha256: str
    members: dict[str, tuple[str, int]]  # name -> (sha256, size)


class BundleReader:
    """An opened bundle whose layout, limits and manifest were checked; `read` verifies
    each member's checksum as it reads it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        settings = get_settings()
        self._json_limit = settings.max_file_bytes
        self._limit = settings.max_zip_bytes
        try:
            st = self.path.stat()
        except OSError as exc:
            raise BundleError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{self.path} is not a file")
        if st.st_size > self._limit:
            raise BundleError(
                f"{self.path} is {st.st_size:,} bytes, over the limit of {self._limit:,} "
                "(MIRADA_MAX_ZIP_BYTES)"
            )
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(
                f"{self.path} is not a Mirada result bundle (not a readable zip: {exc}); "
                "bundles are written by `mirada export RUN --format bundle -o FILE`"
            ) from None
        self._values_left = MAX_JSON_VALUES
        try:
            self._infos = self._check_members(settings.max_zip_files, settings.max_zip_ratio)
            self.manifest = self._read_manifest()
        except BaseException:
            self._zip.close()
            raise

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _damaged(self, why: str) -> BundleError:
        return BundleError(
            f"{self.path} is damaged or was modified after export ({why}); nothing was "
            "imported. Export the run again on its machine and copy the file once more."
        )

    def _check_members(self, max_files: int, max_ratio: int) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > max_files:
            raise BundleError(
                f"{self.path} has {len(infos):,} members, over the limit of {max_files:,} "
                "(MIRADA_MAX_ZIP_FILES)"
            )
        seen: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            if name != MANIFEST and not _MEMBER.fullmatch(name):
                raise self._damaged(f"unexpected member {name!r}")
            if name in seen:
                raise self._damaged(f"member {name!r} appears twice")
            mode = info.external_attr >> 16
            # No file-type bits (zips from many tools) counts as regular; links, devices not.
            if info.is_dir() or (stat.S_IFMT(mode) and not stat.S_ISREG(mode)):
                raise self._damaged(f"member {name!r} is not a regular file")
            if info.flag_bits & 0x1:
                raise self._damaged(f"member {name!r} is encrypted")
            limit = self._member_limit(name)
            if info.file_size > limit:
                raise BundleError(
                    f"{self.path}: member {name!r} is {info.file_size:,} bytes, over the "
                    f"limit of {limit:,}"
                )
            if info.file_size > 2**20 and info.file_size > max_ratio * max(info.compress_size, 1):
                raise self._damaged(f"member {name!r} is compressed over {max_ratio}:1")
            total += info.file_size
            seen[name] = info
        if total > self._limit:
            raise BundleError(
                f"{self.path} unpacks to {total:,} bytes, over the limit of {self._limit:,} "
                "(MIRADA_MAX_ZIP_BYTES)"
            )
        return seen

    def _member_limit(self, name: str) -> int:
        return self._json_limit if name.endswith(".json") else self._limit

    def _raw(self, name: str) -> bytearray:
        """A member's bytes, read into one buffer of its size a MiB at a time (zipfile's
        read(n) of a large member peaks at about three times its size)."""
        info = self._infos[name]
        data = bytearray(info.file_size)
        view, got = memoryview(data), 0
        try:
            with self._zip.open(info) as fh:
                while got < len(data) and (chunk := fh.read(min(2**20, len(data) - got))):
                    view[got : got + len(chunk)] = chunk
                    got += len(chunk)
                longer = fh.read(1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise self._damaged(f"member {name!r} cannot be read: {exc}") from None
        finally:
            view.release()
        if got != info.file_size or longer:
            raise self._damaged(f"member {name!r} has the wrong size")
        return data

    def _read_manifest(self) -> Manifest:
        if MANIFEST not in self._infos:
            raise BundleError(
                f"{self.path} is not a Mirada result bundle (no {MANIFEST}); bundles are "
                "written by `mirada export RUN --format bundle -o FILE`"
            )
        head, members, problem = self._stream_manifest()
        if head.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{self.path} is not a Mirada result bundle (unknown manifest)")
        version = head.get("schema_version")
        writer = str(head.get("mirada_version", "?"))
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._damaged("the manifest has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise BundleError(
                f"{self.path} was written by a newer Mirada (mirada {writer}, bundle schema "
                f"{version}); this Mirada ({__version__}) reads bundle schema "
                f"{SCHEMA_VERSION} and older. Upgrade Mirada here to import it."
            )
        if problem:
            raise self._damaged(problem)
        present = set(self._infos) - {MANIFEST}
        if extra := sorted(present - set(members)):
            raise self._damaged(f"member {extra[0]!r} is not in the manifest")
        for name, (_, size) in members.items():
            if self._infos[name].file_size != size:
                raise self._damaged(f"member {name!r} has the wrong size")
        cid = content_id({name: digest for name, (digest, _) in members.items()})
        if head.get("content_sha256") != cid:
            raise self._damaged("the manifest's content_sha256 does not match its members")
        return Manifest(version, writer, cid, members)

    def _stream_manifest(self) -> tuple[dict[str, Any], dict[str, tuple[str, int]], str]:
        """The manifest's top-level values, its member entries and the first problem with them
        ("" for none), read as a stream: entries are kept only while each names a member the
        zip holds, and the events read are bounded by what the zip's members need, so neither
        a manifest's size nor its claims cost memory or much time."""
        present = set(self._infos) - {MANIFEST}
        budget = 16 * len(self._infos) + 64  # 7 events an entry, a dozen for the rest
        head: dict[str, Any] = {}
        members: dict[str, tuple[str, int]] = {}
        problem = ""
        listed = False
        name, entry = "", dict[str, Any]()  # the entry being read
        try:
            with self._zip.open(self._infos[MANIFEST]) as fh:
                for n, (prefix, event, value) in enumerate(ijson.parse(fh, use_float=True)):
                    if n > budget:
                        raise self._damaged(problem or "the manifest lists more than it holds")
                    if problem:
                        if prefix in _HEAD and event in _SCALARS:
                            head[prefix] = value  # still wanted: the version comes first
                        continue
                    if prefix in _HEAD and event in _SCALARS:
                        head[prefix] = value
                    elif prefix == "members":
                        listed |= event == "start_map"
                        if event == "map_key":
                            name, entry = value, {}
                            if name not in present:
                                problem = f"member {name!r} listed in the manifest is missing"
                            elif name in members:
                                problem = f"member {name!r} is listed twice in the manifest"
                    elif name and prefix == f"members.{name}":
                        if event == "end_map":
                            sha, size = entry.get("sha256"), entry.get("size")
                            if isinstance(sha, str) and type(size) is int:
                                members[name] = (sha, size)
                            else:
                                problem = f"the manifest entry of {name!r} is malformed"
                        elif event not in ("start_map", "map_key"):
                            problem = f"the manifest entry of {name!r} is malformed"
                    elif name and prefix in (f"members.{name}.sha256", f"members.{name}.size"):
                        entry[prefix.rsplit(".", 1)[1]] = value
        except _READ_ERRORS as exc:
            raise self._damaged(f"member {MANIFEST!r} is not valid JSON: {_short(exc)}") from None
        if not listed:
            problem = problem or "the manifest lists no members"
        return head, members, problem

    def _parse(self, name: str, data: bytes) -> Any:
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._damaged(f"member {name!r} is not valid JSON: {exc}") from None

    def names(self) -> list[str]:
        return sorted(self.manifest.members)

    def read(self, name: str) -> bytes:
        """A member's bytes, verified against the manifest's SHA-256."""
        return bytes(self._verified(name))

    def _verified(self, name: str) -> bytearray:
        if name not in self.manifest.members:
            raise self._damaged(f"member {name!r} is missing")
        data = self._raw(name)
        if hashlib.sha256(data).hexdigest() != self.manifest.members[name][0]:
            raise self._damaged(f"member {name!r} does not match its checksum")
        return data

    def read_json(self, name: str) -> Any:
        """A JSON member's document, its checksum verified; large members are read as a
        stream within the bundle's value budget (see the module docstring)."""
        if name in self._infos and self._infos[name].file_size > STREAM_ABOVE_BYTES:
            return self._stream_json(name)
        doc = self._parse(name, self.read(name))
        self._spend(name, _count_values(doc))
        return doc

    def _spend(self, name: str, values: int) -> None:
        self._values_left -= values
        if self._values_left < 0:
            raise BundleError(
                f"{self.path}: {name} takes the bundle's JSON past {MAX_JSON_VALUES:,} values "
                "(numbers, strings, lists and objects), more than any result Mirada writes "
                "holds in memory; nothing was imported"
            )

    def read_json_entries(
        self, name: str, arrays: frozenset[str]
    ) -> tuple[Any, Callable[[str], Iterator[Any]]]:
        """A JSON member's document with each top-level array named in `arrays` left empty, and
        a function giving such an array's entries one at a time (read from the member again
        when it is large, so the whole array never exists in memory); checksum and value
        budget as `read_json`."""
        if name not in self._infos or self._infos[name].file_size <= STREAM_ABOVE_BYTES:
            doc = self.read_json(name)
            lists: dict[str, list[Any]] = {}
            if isinstance(doc, dict):
                for key in arrays & doc.keys():
                    if isinstance(doc[key], list):
                        lists[key], doc[key] = doc[key], []
            return doc, lambda key: iter(lists.pop(key, []))
        self._verify_stream(name)
        return self._head(name, arrays), lambda key: self._entries(name, key)

    def _head(self, name: str, arrays: frozenset[str]) -> Any:
        """A verified member's top-level values, its `arrays` skipped (left empty); a
        top-level key given twice is refused, since the streams would read both arrays."""
        info = self._infos[name]
        try:
            with self._zip.open(info) as raw:
                events = ijson.parse(raw, use_float=True)
                if next(events)[1] != "start_map":  # not an object: the schema says so
                    with self._zip.open(info) as again:
                        return next(ijson.items(again, "", use_float=True))
                head: dict[str, Any] = {}
                depth, key, builder, skipping = 1, "", None, False
                for _, event, value in events:
                    if depth == 1 and event == "map_key":
                        if value in head:
                            raise self._damaged(f"member {name!r} gives {value!r} twice")
                        key = value
                        continue
                    if depth == 1 and event == "end_map":
                        break
                    if builder is None and not skipping:  # the first event of key's value
                        skipping = key in arrays and event == "start_array"
                        if skipping:
                            head[key] = []
                        else:
                            builder = ijson.ObjectBuilder()
                    depth += 1 if event in _STARTS else -1 if event in _ENDS else 0
                    if builder is not None:
                        builder.event(event, value)
                    if depth == 1:  # key's value is complete
                        if builder is not None:
                            head[key] = builder.value
                        builder, skipping = None, False
                return head
        except _READ_ERRORS as exc:
            raise self._damaged(f"member {name!r} is not valid JSON: {_short(exc)}") from None

    def _entries(self, name: str, key: str) -> Iterator[Any]:
        try:
            with self._zip.open(self._infos[name]) as raw:
                yield from ijson.items(raw, f"{key}.item", use_float=True)
        except _READ_ERRORS as exc:
            raise self._damaged(f"member {name!r} is not valid JSON: {_short(exc)}") from None

    def _stream_json(self, name: str) -> Any:
        """Two passes over the member, both in ijson's C backend: count its values (stopping
        as soon as they exceed what the budget has left) while checking its size and SHA-256,
        then build the document."""
        self._verify_stream(name)
        try:
            with self._zip.open(self._infos[name]) as raw:
                return next(ijson.items(raw, "", use_float=True))
        except _READ_ERRORS as exc:
            raise self._damaged(f"member {name!r} is not valid JSON: {_short(exc)}") from None

    def _verify_stream(self, name: str) -> None:
        """A large member's values counted against the budget, its size and SHA-256 checked,
        in one pass that builds nothing."""
        if name not in self.manifest.members:
            raise self._damaged(f"member {name!r} is missing")
        info = self._infos[name]
        left = max(self._values_left, 0)
        try:
            with self._zip.open(info) as raw:
                fh = _Hashing(raw)
                kinds = map(itemgetter(0), ijson.basic_parse(fh, use_float=True))
                # Counted in C (no Python call per event); stops one past the budget.
                values = Counter(islice(filterfalse(_NOT_VALUES.__contains__, kinds), left + 1))
        except _READ_ERRORS as exc:
            raise self._damaged(f"member {name!r} is not valid JSON: {_short(exc)}") from None
        if values.total() > left:
            self._spend(name, values.total())
        if fh.size != info.file_size:
            raise self._damaged(f"member {name!r} has the wrong size")
        if fh.sha256.hexdigest() != self.manifest.members[name][0]:
            raise self._damaged(f"member {name!r} does not match its checksum")
        self._spend(name, values.total())

    def read_npy(self, name: str, element_type: str, ndim: int) -> np.ndarray:
        """A verified NPY member as a read-only array over the member's bytes (no copy)."""
        data = self._verified(name)
        try:
            # Only the header is copied (BytesIO copies a bytearray); one over 1 MiB, which no
            # writer produces, is refused as a short read.
            fh = io.BytesIO(bytes(data[: 2**20]))
            header = _NPY_HEADERS.get(np.lib.format.read_magic(fh))
            if header is None:
                raise ValueError("its format version is not 1.0 or 2.0")
            shape, fortran, dtype = header(fh)
            count = math.prod(shape)
            if dtype.hasobject or fh.tell() + count * dtype.itemsize != len(data):
                raise ValueError("its header does not describe its data")
            array = np.frombuffer(data, dtype, count, fh.tell())
            array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
            array.flags.writeable = False
        except (ValueError, OSError) as exc:
            raise self._damaged(f"member {name!r} is not a valid .npy array: {exc}") from None
        if array.dtype != np.dtype(element_type) or array.ndim != ndim:
            raise self._damaged(f"member {name!r} is not a {ndim}-D {element_type} array")
        return array


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _count_values(doc: Any) -> int:
    """The JSON values in a parsed document (what _stream_json counts from events)."""
    count, stack = 0, [doc]
    while stack:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


class _Hashing:
    """A member's stream that hashes and counts what is read through it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data
