"""Hostile and unlucky import inputs (issue 12): bombs, special files, ambiguous names, races.

Every refusal is a MiradaError that names the file, row or entry, and leaves nothing behind.
"""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import threading
import time
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from data_import.builders import (
    csv_bytes,
    encode,
    make_zip,
    sample_photo,
    solid,
    stray_files,
    write_files,
)
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


# ------------------------------------------- clear errors instead of tracebacks (one table)


def _deflate64_zip(tmp: Path) -> Path:
    path = make_zip(
        tmp / "d64.zip", {"captions.csv": csv_bytes([("a.png", "x")]), "a.png": solid((1, 2, 3))}
    )
    raw = bytearray(path.read_bytes())
    # Rewrite the method of every entry to 9 (Deflate64) in local and central headers.
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (at := raw.find(sig, start)) >= 0:
            raw[at + offset : at + offset + 2] = (9).to_bytes(2, "little")
            start = at + 4
    path.write_bytes(bytes(raw))
    return path


def _coco(tmp: Path, image_id: object) -> Path:
    doc = {
        "images": [{"id": image_id, "file_name": "a.png"}],
        "annotations": [{"image_id": image_id, "caption": "x"}],
    }
    return folder(tmp, {"a.png": solid((1, 2, 3)), "captions.json": json.dumps(doc).encode()})


def _deep_json(tmp: Path) -> Path:
    deep = '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}"
    return folder(tmp, {"a.png": solid((1, 2, 3)), "captions.json": deep.encode()})


def _deep_jsonl(tmp: Path) -> Path:
    line = '{"file_name": "a.png", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    return folder(tmp, {"a.png": solid((1, 2, 3)), "metadata.jsonl": line.encode()})


def _nul_caption(tmp: Path) -> Path:
    return folder(
        tmp, {"a.png": solid((1, 2, 3)), "captions.csv": b"filename,caption\na.png,bad\x00text\n"}
    )


def _nul_jsonl(tmp: Path) -> Path:
    line = json.dumps({"file_name": "a.png", "text": "bad\u0000text"}) + "\n"
    return folder(tmp, {"a.png": solid((1, 2, 3)), "metadata.jsonl": line.encode()})


def _karpathy(tmp: Path, sentences: object) -> Path:
    doc = {"images": [{"filename": "a.png", "split": "test", "sentences": [{"raw": "ok"}]}] * 3}
    doc["images"] = [*doc["images"], {"filename": "a.png", "split": "test", "sentences": sentences}]
    return folder(tmp, {"a.png": solid((1, 2, 3)), "dataset.json": json.dumps(doc).encode()})


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "deflate64 zip": (_deflate64_zip, "d64.zip: a.png"),
    "coco id is a list": (lambda t: _coco(t, [1, 2]), "captions.json images[0].id"),
    "coco id is a dict": (lambda t: _coco(t, {"a": 1}), "captions.json images[0].id"),
    "deeply nested json": (_deep_json, "captions.json"),
    "deeply nested jsonl": (_deep_jsonl, "metadata.jsonl line 1"),
    "nul byte in a csv (binary)": (_nul_caption, "captions.csv"),
    "nul escape in a jsonl caption": (_nul_jsonl, "metadata.jsonl line 1"),
    "karpathy sentences are strings": (
        lambda t: _karpathy(t, ["a caption"]),
        "dataset.json images[3].sentences[0]",
    ),
    "karpathy sentences are key/value dicts": (
        lambda t: _karpathy(t, [{"raw": ["x"]}]),
        "dataset.json images[3].sentences[0].raw",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_inputs_give_a_mirada_error_naming_the_place(
    case: str, mirada_home: Path, tmp_path: Path
) -> None:
    build, where = HOSTILE[case]
    src = build(tmp_path)
    try:
        import_dataset(src)
    except DatasetImportError as exc:
        assert where in [p.where for p in exc.problems], str(exc)
    else:
        pytest.fail("imported")
    assert list_datasets() == []
    assert stray_files(mirada_home) == []


def test_full_disk_while_staging_is_a_clear_error(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.datasets import importer

    def full(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(importer, "_write", full)
    src = folder(tmp_path, {"a.png": solid((1, 2, 3)), "captions.csv": csv_bytes([("a.png", "x")])})
    err = reject(src, mirada_home)
    assert "disk is full" in messages(err)["a.png"]


# ------------------------------------------------------------- items 9-13: wrong answers


def test_coco_with_sorted_keys_is_detected(mirada_home: Path, tmp_path: Path) -> None:
    doc = {
        "annotations": [{"caption": f"caption {i}", "id": i, "image_id": 1} for i in range(3000)],
        "images": [{"file_name": "a.png", "id": 1}],
    }
    text = json.dumps(doc, sort_keys=True, indent=2)
    assert text.find('"images"') > 65536  # past what a head sniff would see
    src = folder(tmp_path, {"a.png": solid((1, 2, 3)), "captions.json": text.encode()})
    report = import_dataset(src)
    assert report.format == "coco" and report.captions == 3000


def test_karpathy_without_split_warns_that_it_mixes_splits(
    mirada_home: Path, tmp_path: Path
) -> None:
    doc = {
        "images": [
            {"filename": "a.png", "split": "train", "sentences": [{"raw": "a"}]},
            {"filename": "b.png", "split": "test", "sentences": [{"raw": "b"}]},
        ]
    }
    src = folder(
        tmp_path,
        {
            "a.png": solid((1, 2, 3)),
            "b.png": solid((3, 2, 1)),
            "dataset.json": json.dumps(doc).encode(),
        },
    )
    report = import_dataset(src)
    assert any("mixes the splits test, train" in w for w in report.warnings)
    assert import_dataset(src, split="test", name="t").warnings == []


def test_zip_entries_with_the_same_normalised_path_are_refused(
    mirada_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("captions.csv", csv_bytes([("a.png", "x")]))
        zf.writestr("a.png", solid((1, 2, 3)))
        zf.writestr("./a.png", solid((3, 2, 1)))
    err = reject(path, mirada_home)
    assert "'a.png'" in messages(err)["twice.zip: ./a.png"]


def test_zip_with_exactly_duplicated_names_is_refused(mirada_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("captions.csv", csv_bytes([("a.png", "x")]))
            zf.writestr("a.png", solid((1, 2, 3)))
            zf.writestr("a.png", solid((3, 2, 1)))
    err = reject(path, mirada_home)
    assert "same path as entry 'a.png'" in messages(err)["dup.zip: a.png"]


def test_files_beside_and_above_the_csv_keep_distinct_names(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = folder(
        tmp_path,
        {
            "x.png": solid((1, 2, 3)),
            "sub/x.png": solid((3, 2, 1)),
            "sub/captions.csv": csv_bytes([("x.png", "inner"), ("../x.png", "outer")]),
        },
    )
    report = import_dataset(src)
    from mirada.datasets import load_items

    names = sorted(it.filename for it in load_items(report.id))
    assert names == ["../x.png", "x.png"]


def test_nfd_name_on_disk_matches_nfc_name_in_the_csv(mirada_home: Path, tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "café.png")
    nfd = unicodedata.normalize("NFD", nfc)
    src = folder(tmp_path, {nfd: solid((1, 2, 3)), "captions.csv": csv_bytes([(nfc, "x")])})
    assert import_dataset(src).images == 1


def test_crash_left_upload_folders_are_swept(mirada_home: Path, tmp_path: Path) -> None:
    staging = mirada_home / "staging"
    old, fresh = staging / "upload-0123456789ab", staging / "upload-ba9876543210"
    for path in (old, fresh):
        write_files(path, {"x.zip": b"partial"})
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    src = folder(tmp_path, {"a.png": solid((1, 2, 3)), "captions.csv": csv_bytes([("a.png", "x")])})
    import_dataset(src)
    assert not old.exists() and fresh.exists()  # a fresh one may be an upload in progress


# ------------------------------------------------- full disk while committing (traceback list)


def _four_images(tmp_path: Path) -> Path:
    files = {f"{i}.png": solid((i, 2 * i, 3)) for i in range(4)}
    rows = [(name, "x") for name in files]
    return folder(tmp_path, {**files, "captions.csv": csv_bytes(rows)})


def test_full_disk_while_moving_into_the_store_leaves_nothing(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_dataset(
        folder(tmp_path, {"k.png": solid((9, 9, 9)), "c.csv": csv_bytes([("k.png", "x")])}, "keep")
    )
    kept = stray_files(mirada_home)
    real_replace = os.replace
    moves: list[str] = []

    def replace(src: str | Path, dst: str | Path) -> None:
        if "/images/" in str(dst) or "/thumbs/" in str(dst):
            moves.append(str(dst))
            if len(moves) == 3:  # two files of the first image are in place by now
                raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DatasetImportError) as info:
        import_dataset(_four_images(tmp_path), name="full")
    assert len(moves) == 3
    assert "disk is full" in messages(info.value)["dataset 'full'"]
    assert [d.name for d in list_datasets()] == ["keep"]
    assert stray_files(mirada_home) == kept  # the first image's files were taken back


def _disk_full_error(dialect: str) -> Exception:
    from sqlalchemy.exc import OperationalError

    if dialect == "postgresql":
        import psycopg

        orig: Exception = psycopg.errors.DiskFull(
            'could not extend file "base/16384/24576": No space left on device'
        )
    else:
        import sqlite3

        orig = sqlite3.OperationalError("database or disk is full")
    return OperationalError("INSERT INTO image_blobs ...", {}, orig)


def test_full_disk_in_the_database_leaves_nothing(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import func, select

    from mirada.datasets import store
    from mirada.db import read_session
    from mirada.db.models import Image, ImageBlob

    real_insert_items = store._insert_items

    def insert_then_fail(s: object, *args: object) -> None:
        real_insert_items(s, *args)  # type: ignore[arg-type]
        raise _disk_full_error(s.get_bind().dialect.name)  # type: ignore[attr-defined]

    monkeypatch.setattr(store, "_insert_items", insert_then_fail)
    home = Path(os.environ["MIRADA_HOME"])
    with pytest.raises(DatasetImportError) as info:
        import_dataset(_four_images(tmp_path), name="full")
    msg = messages(info.value)["dataset 'full'"]
    assert "could not be stored in the database" in msg and "disk is full" in msg
    assert list_datasets() == [] and stray_files(home) == []
    with read_session() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 0
        assert s.scalar(select(func.count()).select_from(ImageBlob)) == 0


# ------------------------------------------------- item 14: byte-identical images, two names


def _twins(tmp_path: Path, second_category: str) -> Path:
    same = solid((5, 6, 7))
    rows = [("a.png", "x", "cat"), ("b.png", "y", second_category), ("c.png", "z", "dog")]
    files = {"a.png": same, "b.png": same, "c.png": solid((7, 6, 5))}
    return folder(tmp_path, {**files, "captions.csv": csv_bytes(rows)})


def test_identical_images_with_conflicting_categories_are_refused(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = _twins(tmp_path, "dog")
    err = reject(src, mirada_home)
    msg = messages(err)["b.png"]
    assert "byte-identical to a.png" in msg and "'dog'" in msg and "'cat'" in msg
    assert err.can_skip
    report = import_dataset(src, lenient=True)
    assert [p.where for p in report.skipped] == ["b.png"]
    from mirada.datasets import load_items

    assert sorted(it.filename for it in load_items(report.id)) == ["a.png", "c.png"]


def test_identical_images_with_the_same_category_import_with_a_warning(
    mirada_home: Path, tmp_path: Path
) -> None:
    report = import_dataset(_twins(tmp_path, "cat"))
    assert report.images == 3 and report.skipped == []
    assert [w for w in report.warnings if "byte-identical" in w] == [
        "b.png is byte-identical to a.png: both were imported and will tie in retrieval; "
        "remove one if that is not intended"
    ]


# ------------------------------------- peak memory: large COCO/Karpathy files are streamed


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every JSON annotation file takes the streaming path (normally above 8 MiB)."""
    from mirada.datasets import json_stream

    monkeypatch.setattr(json_stream, "STREAM_ABOVE_BYTES", 16)


JSON_CASES = sorted(c for c in HOSTILE if "json" in c or "coco" in c or "karpathy" in c)


@pytest.mark.parametrize("case", JSON_CASES)
def test_streamed_json_gives_the_same_refusals(
    case: str, mirada_home: Path, tmp_path: Path, streamed: None
) -> None:
    test_hostile_inputs_give_a_mirada_error_naming_the_place(case, mirada_home, tmp_path)


def _coco_and_karpathy(tmp_path: Path) -> tuple[Path, Path]:
    files = {f"{i}.png": solid((i, 9, 9)) for i in range(3)}
    coco = {
        "info": {"nested": [[{"skip": "me"}]]},
        "annotations": [
            {"image_id": i % 3, "caption": f"caption {i}", "id": i, "extra": [1, {"a": 2}]}
            for i in range(7)
        ],
        "categories": [{"id": 5, "name": "five"}],
        "images": [
            {"id": i, "file_name": f"{i}.png", "category_id": 5, "license": {"x": [1]}}
            for i in range(3)
        ],
    }
    karpathy = {
        "images": [
            {
                "filepath": "",
                "sentids": [1, 2],
                "filename": f"{i}.png",
                "split": "test" if i else "val",
                "sentences": [
                    {"tokens": ["a", "b"], "raw": f"raw {i}"},
                    {"tokens": ["only", "tokens"], "imgid": i},
                ],
            }
            for i in range(3)
        ],
        "dataset": "coco",
    }
    return (
        folder(tmp_path, {**files, "c.json": json.dumps(coco).encode()}, "coco"),
        folder(tmp_path, {**files, "k.json": b"\xef\xbb\xbf" + json.dumps(karpathy).encode()}, "k"),
    )


def _contents(report_id: int) -> list[tuple[str, str | None, list[str]]]:
    from mirada.datasets import load_items

    return [
        (it.filename, it.category, [text for _, text in it.captions])
        for it in load_items(report_id)
    ]


def test_streamed_json_imports_exactly_what_json_load_imports(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.datasets import json_stream

    coco, karpathy = _coco_and_karpathy(tmp_path)
    loaded = [
        _contents(import_dataset(src, name=f"l{i}").id) for i, src in enumerate((coco, karpathy))
    ]
    monkeypatch.setattr(json_stream, "STREAM_ABOVE_BYTES", 16)
    streamed = [
        _contents(import_dataset(src, name=f"s{i}").id) for i, src in enumerate((coco, karpathy))
    ]
    assert streamed == loaded
    assert loaded[0][0] == ("0.png", "five", ["caption 0", "caption 3", "caption 6"])
    assert loaded[1][0] == ("0.png", None, ["raw 0", "only tokens"])


@pytest.mark.parametrize("stream", [False, True])
def test_json_with_more_captions_than_the_row_limit_is_refused(
    stream: bool, mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.datasets import json_stream

    if stream:
        monkeypatch.setattr(json_stream, "STREAM_ABOVE_BYTES", 16)
    monkeypatch.setenv("MIRADA_MAX_CSV_ROWS", "5")
    doc = {"images": [{"filename": "a.png", "split": "test", "sentences": [{"raw": "x"}] * 6}]}
    src = folder(tmp_path, {"a.png": solid((1, 2, 3)), "dataset.json": json.dumps(doc).encode()})
    err = reject(src, mirada_home)
    assert "more than 5 captions" in messages(err)["dataset.json"]


def test_streamed_json_syntax_error_is_named(
    mirada_home: Path, tmp_path: Path, streamed: None
) -> None:
    src = folder(tmp_path, {"a.png": solid((1, 2, 3)), "c.json": b'{"images": [{"id": 1,, }]}'})
    err = reject(src, mirada_home)
    assert "is not valid JSON" in messages(err)["c.json"]
