"""Small builders for importer tests: real sample photos, generated images, CSVs and zips."""

from __future__ import annotations

import csv
import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from PIL import Image

DB_FILES = {"mirada.db", "mirada.db-wal", "mirada.db-shm", "mirada.db-journal"}


def sample_photo(name: str) -> bytes:
    """scikit-learn's bundled real photos: 'china.jpg' or 'flower.jpg' (JPEG, 640x427)."""
    import sklearn.datasets

    return (Path(sklearn.datasets.__file__).parent / "images" / name).read_bytes()


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (32, 24), fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, color), fmt)


def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def csv_bytes(
    rows: Iterable[Sequence[str]],
    header: Sequence[str] = ("filename", "caption", "category"),
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def make_zip(path: Path, files: Mapping[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims huge dimensions: a decompression bomb as Pillow sees it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def stray_files(home: Path) -> list[str]:
    """Files under MIRADA_HOME other than the database: must be none after a rejection."""
    if not home.exists():
        return []
    return sorted(
        p.relative_to(home).as_posix()
        for p in home.rglob("*")
        if p.is_file() and p.name not in DB_FILES
    )
