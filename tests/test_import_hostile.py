"""Hostile and unlucky import inputs (issue 12): bombs, special files, ambiguous names, races.

Every refusal is a MiradaError that names the file, row or entry, and leaves nothing behind.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from data_import.builders import csv_bytes, encode, sample_photo, solid, stray_files, write_files
from PIL import Image

from mirada.datasets import DatasetImportError, import_dataset, list_datasets
from mirada.datasets.images import jpeg_end, normalise
from mirada.errors import MiradaError

JPEG = sample_photo("china.jpg")


def folder(tmp_path: Path, files: Mapping[str, bytes], name: str = "src") -> Path:
    return write_files(tmp_path / name, dict(files))


def reject(src: Path, home: Path, **kwargs: object) -> DatasetImportError:
    with pytest.raises(DatasetImportError) as info:
        import_dataset(src, **kwargs)  # type: ignore[arg-type]
    assert list_datasets() == []
    assert stray_files(home) == []
    return info.value


def messages(err: DatasetImportError) -> dict[str, str]:
    return {p.where: p.message for p in err.problems}


def run_with_timeout(fn: Callable[[], object], seconds: float = 30) -> object:
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the import blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# ------------------------------------------------------------------- item 7: bombs, sizes


def zeros_zip(path: Path, member: str, head: bytes, zeros: int, extra: Mapping[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in extra.items():
            zf.writestr(name, data)
        zf.writestr(member, head + bytes(zeros))
    return path


def test_zip_entry_inflating_too_far_is_refused_from_the_directory(
    mirada_home: Path, tmp_path: Path
) -> None:
    path = zeros_zip(
        tmp_path / "bomb.zip",
        "a.jpg",
        solid((200, 30, 30), fmt="JPEG"),
        20 * 1024**2,
        {"captions.csv": csv_bytes([("a.jpg", "x")])},
    )
    err = reject(path, mirada_home)
    msg = messages(err)["bomb.zip: a.jpg"]
    assert "MIRADA_MAX_ZIP_RATIO" in msg and "zip bomb" in msg


def test_zip_entry_over_the_file_size_cap(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRADA_MAX_FILE_BYTES", str(len(JPEG) + 100))
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("captions.csv", csv_bytes([("a.jpg", "x")]))
        zf.writestr("a.jpg", JPEG + os.urandom(4096))
    err = reject(path, mirada_home)
    assert "MIRADA_MAX_FILE_BYTES" in messages(err)["big.zip: a.jpg"]


def test_zip_entry_lying_about_its_size_is_stopped_while_reading(
    mirada_home: Path, tmp_path: Path
) -> None:
    # The central directory says 10 bytes; the data inflates to far more.
    path = zeros_zip(
        tmp_path / "liar.zip",
        "a.jpg",
        JPEG,
        512 * 1024,
        {"captions.csv": csv_bytes([("a.jpg", "x")])},
    )
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("a.jpg")
    central = raw.rfind(
        b"PK\x01\x02" + raw[raw.find(b"PK\x01\x02") + 4 : raw.find(b"PK\x01\x02") + 4]
    )
    # Patch the uncompressed size of a.jpg in its central directory record.
    for offset in range(len(raw) - 46):
        if raw[offset : offset + 4] == b"PK\x01\x02" and raw[offset + 46 : offset + 51] == b"a.jpg":
            raw[offset + 24 : offset + 28] = (10).to_bytes(4, "little")
            central = offset
    assert central > 0 and info.file_size > 10
    path.write_bytes(bytes(raw))
    # zipfile stops at the declared size and then fails the CRC; our reader would stop it
    # too. Either way: refused, named, nothing stored.
    err = reject(path, mirada_home)
    assert "declared size" in str(err) or "damaged zip entry" in messages(err)["a.jpg"]


def test_sparse_file_in_a_folder_is_refused_by_size_before_reading(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = folder(tmp_path, {"captions.csv": csv_bytes([("a.jpg", "x")])})
    with (src / "a.jpg").open("wb") as fh:
        fh.write(JPEG)
        fh.truncate(6 * 10**9)  # sparse: 6 GB that costs no disk
    err = reject(src, mirada_home)
    assert "MIRADA_MAX_FILE_BYTES" in messages(err)["a.jpg"]

    csv_src = folder(tmp_path, {"a.jpg": JPEG}, name="csvsrc")
    with (csv_src / "captions.csv").open("wb") as fh:
        fh.write(b"filename,caption\na.jpg,")
        fh.truncate(6 * 10**9)
    err = reject(csv_src, mirada_home)
    assert "MIRADA_MAX_FILE_BYTES" in messages(err)["captions.csv"]


def test_bytes_after_a_jpeg_end_are_not_stored(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(
        tmp_path,
        {"a.jpg": JPEG + bytes(3 * 1024**2), "captions.csv": csv_bytes([("a.jpg", "x")])},
    )
    import_dataset(src)
    stored = list((mirada_home / "images").iterdir())
    assert len(stored) == 1 and stored[0].stat().st_size == len(JPEG)
    assert stored[0].read_bytes() == JPEG  # the user's own bytes, up to the end marker


def test_jpeg_end_handles_stuffing_restart_markers_and_progressive_scans() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8))
    for kwargs in ({}, {"progressive": True}, {"restart_marker_blocks": 1}):
        data = encode(img, "JPEG", **kwargs)
        assert jpeg_end(data + b"\x00" * 100 + b"\xff\xd9") == len(data), kwargs
    assert jpeg_end(b"not a jpeg") is None
    assert jpeg_end(JPEG[:1000]) is None  # truncated: no end marker


def test_16_bit_image_is_scaled_in_strips_like_the_whole_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mirada.datasets import images

    ramp = (np.arange(300 * 200, dtype=np.uint32).reshape(200, 300) * 7 % 65536).astype(np.uint16)
    img = Image.frombuffer("I;16", (300, 200), ramp.tobytes(), "raw", "I;16", 0, 1)
    data = encode(img, "PNG")
    whole = normalise(data, max_pixels=10**6)
    monkeypatch.setattr(images, "_STRIP_PIXELS", 1000)  # many strips
    strips = normalise(data, max_pixels=10**6)
    assert strips.sha256 == whole.sha256
    decoded = np.asarray(Image.open(io.BytesIO(strips.data)).convert("L"))
    expected = np.clip(np.rint(ramp / 65535.0 * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(decoded, expected)


def test_csv_line_longer_than_the_limit_is_refused_without_reading_it_all(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRADA_MAX_LINE_CHARS", "1000")
    src = folder(
        tmp_path,
        {"a.png": solid((1, 2, 3)), "captions.csv": b"filename,caption\na.png," + b"x" * 5000},
    )
    err = reject(src, mirada_home)
    assert "MIRADA_MAX_LINE_CHARS" in messages(err)["captions.csv line 2"]


# ------------------------------------------------------- item 8: only regular files are read


def test_named_pipe_listed_in_the_csv_is_refused_not_waited_on(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = folder(
        tmp_path,
        {"a.png": solid((1, 2, 3)), "captions.csv": csv_bytes([("a.png", "x"), ("p.png", "y")])},
    )
    os.mkfifo(src / "p.png")
    with pytest.raises(DatasetImportError) as info:
        run_with_timeout(lambda: import_dataset(src))
    assert "named pipe" in messages(info.value)["p.png"]
    report = run_with_timeout(lambda: import_dataset(src, lenient=True))
    assert [p.where for p in report.skipped] == ["p.png"]  # type: ignore[attr-defined]


def test_named_pipe_as_the_annotation_file_is_refused(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(tmp_path, {"a.png": solid((1, 2, 3))})
    os.mkfifo(src / "captions.csv")
    with pytest.raises(DatasetImportError) as info:
        run_with_timeout(lambda: import_dataset(src, fmt="csv"))
    assert "named pipe" in messages(info.value)["captions.csv"]


def test_socket_listed_in_the_csv_is_refused(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(tmp_path, {"a.png": solid((1, 2, 3)), "captions.csv": csv_bytes([("s.png", "x")])})
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    try:
        os.chdir(src)  # AF_UNIX paths are limited to ~100 characters
        sock.bind("s.png")
    finally:
        os.chdir(cwd)
    try:
        err = reject(src, mirada_home)
    finally:
        sock.close()
    assert "socket" in messages(err)["s.png"]


def test_annotation_symlink_outside_the_folder_is_refused(
    mirada_home: Path, tmp_path: Path
) -> None:
    outside = write_files(tmp_path / "elsewhere", {"captions.csv": csv_bytes([("a.png", "x")])})
    src = folder(tmp_path, {"a.png": solid((1, 2, 3))})
    (src / "captions.csv").symlink_to(outside / "captions.csv")
    (src / "b.png").symlink_to(outside / "captions.csv")
    err = reject(src, mirada_home)
    assert "outside the dataset folder" in messages(err)["captions.csv"]


def test_image_symlink_outside_the_folder_is_refused(mirada_home: Path, tmp_path: Path) -> None:
    outside = write_files(tmp_path / "elsewhere", {"x.png": solid((9, 9, 9))})
    src = folder(tmp_path, {"captions.csv": csv_bytes([("x.png", "x")])})
    (src / "x.png").symlink_to(outside / "x.png")
    err = reject(src, mirada_home)
    assert "outside the dataset folder" in messages(err)["x.png"]


def test_refusals_are_mirada_errors() -> None:
    assert issubclass(DatasetImportError, MiradaError)
