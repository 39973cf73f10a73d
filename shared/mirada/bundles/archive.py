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

Layout: manifest.json, run.json, dataset.json, results.json, embeddings/<kind>.npy and
embeddings/<kind>.rows.npy, artifacts/<n>.bin, and with --with-images images/<sha256>.<ext>.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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

    def _raw(self, name: str) -> bytes:
        info = self._infos[name]
        try:
            with self._zip.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise self._damaged(f"member {name!r} cannot be read: {exc}") from None
        if len(data) != info.file_size:
            raise self._damaged(f"member {name!r} has the wrong size")
        return data

    def _read_manifest(self) -> Manifest:
        if MANIFEST not in self._infos:
            raise BundleError(
                f"{self.path} is not a Mirada result bundle (no {MANIFEST}); bundles are "
                "written by `mirada export RUN --format bundle -o FILE`"
            )
        doc = self._parse(MANIFEST, self._raw(MANIFEST))
        if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{self.path} is not a Mirada result bundle (unknown manifest)")
        version = doc.get("schema_version")
        writer = str(doc.get("mirada_version", "?"))
        if not isinstance(version, int) or version < 1:
            raise self._damaged("the manifest has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise BundleError(
                f"{self.path} was written by a newer Mirada (mirada {writer}, bundle schema "
                f"{version}); this Mirada ({__version__}) reads bundle schema "
                f"{SCHEMA_VERSION} and older. Upgrade Mirada here to import it."
            )
        listed = doc.get("members")
        if not isinstance(listed, dict):
            raise self._damaged("the manifest lists no members")
        members: dict[str, tuple[str, int]] = {}
        for name, entry in listed.items():
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("size"), int)
            ):
                raise self._damaged(f"the manifest entry of {name!r} is malformed")
            members[name] = (entry["sha256"], entry["size"])
        present = set(self._infos) - {MANIFEST}
        if missing := sorted(set(members) - present):
            raise self._damaged(f"member {missing[0]!r} listed in the manifest is missing")
        if extra := sorted(present - set(members)):
            raise self._damaged(f"member {extra[0]!r} is not in the manifest")
        for name, (_, size) in members.items():
            if self._infos[name].file_size != size:
                raise self._damaged(f"member {name!r} has the wrong size")
        cid = content_id({name: digest for name, (digest, _) in members.items()})
        if doc.get("content_sha256") != cid:
            raise self._damaged("the manifest's content_sha256 does not match its members")
        return Manifest(version, writer, cid, members)

    def _parse(self, name: str, data: bytes) -> Any:
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._damaged(f"member {name!r} is not valid JSON: {exc}") from None

    def names(self) -> list[str]:
        return sorted(self.manifest.members)

    def read(self, name: str) -> bytes:
        """A member's bytes, verified against the manifest's SHA-256."""
        if name not in self.manifest.members:
            raise self._damaged(f"member {name!r} is missing")
        data = self._raw(name)
        if hashlib.sha256(data).hexdigest() != self.manifest.members[name][0]:
            raise self._damaged(f"member {name!r} does not match its checksum")
        return data

    def read_json(self, name: str) -> Any:
        return self._parse(name, self.read(name))

    def read_npy(self, name: str, element_type: str, ndim: int) -> np.ndarray:
        try:
            array = np.load(io.BytesIO(self.read(name)), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise self._damaged(f"member {name!r} is not a valid .npy array: {exc}") from None
        if array.dtype != np.dtype(element_type) or array.ndim != ndim:
            raise self._damaged(f"member {name!r} is not a {ndim}-D {element_type} array")
        return array


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
