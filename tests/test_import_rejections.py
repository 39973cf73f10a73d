"""Every rejection names the file/row, says what to fix, and leaves nothing behind."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
from data_import.builders import (
    csv_bytes,
    make_zip,
    png_header_only,
    sample_photo,
    solid,
    stray_files,
    write_files,
)

from mirada.datasets import DatasetImportError, import_dataset, list_datasets

GOOD = {"a.png": solid((50, 60, 70))}


def reject(src: Path, home: Path, **kwargs: object) -> DatasetImportError:
    with pytest.raises(DatasetImportError) as info:
        import_dataset(src, **kwargs)  # type: ignore[arg-type]
    assert list_datasets() == []
    assert stray_files(home) == []
    return info.value


def folder(tmp_path: Path, files: Mapping[str, bytes]) -> Path:
    return write_files(tmp_path / "src", dict(files))


def test_zip_entries_escaping_the_archive(mirada_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("captions.csv", csv_bytes([("a.png", "x")]))
        zf.writestr("a.png", GOOD["a.png"])
        zf.writestr("../escape.png", GOOD["a.png"])
        zf.writestr("/etc/abs.png", GOOD["a.png"])
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    err = reject(path, mirada_home)
    by_where = {p.where: p.message for p in err.problems}
    assert "outside the archive" in by_where["evil.zip: ../escape.png"]
    assert "outside the archive" in by_where["evil.zip: /etc/abs.png"]
    assert "symbolic link" in by_where["evil.zip: link.png"]
    assert not (tmp_path / "escape.png").exists()


def test_zip_bomb_declared_size(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRADA_MAX_ZIP_BYTES", "100000")
    path = make_zip(
        tmp_path / "bomb.zip",
        {
            "captions.csv": csv_bytes([("zeros.png", "x")]),
            "zeros.bin": bytes(500_000),
        },
    )
    err = reject(path, mirada_home)
    assert err.problems[0].where == "bomb.zip"
    assert "MIRADA_MAX_ZIP_BYTES" in err.problems[0].message


def test_zip_too_many_files(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRADA_MAX_ZIP_FILES", "3")
    path = make_zip(tmp_path / "many.zip", {f"{i}.png": GOOD["a.png"] for i in range(5)})
    err = reject(path, mirada_home)
    assert "MIRADA_MAX_ZIP_FILES" in str(err) and "many.zip" in str(err)


def test_zip_entry_lying_about_its_size(mirada_home: Path, tmp_path: Path) -> None:
    photo = sample_photo("flower.jpg")
    path = make_zip(
        tmp_path / "liar.zip",
        {
            "captions.csv": csv_bytes([("flower.jpg", "a flower")]),
            "flower.jpg": photo,
        },
    )
    # Patch the declared uncompressed size of flower.jpg (local + central headers) to 100.
    raw = bytearray(path.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := raw.find(sig, start)) != -1:
            name_at = start + (30 if sig == b"PK\x03\x04" else 46)
            if raw[name_at : name_at + 10] == b"flower.jpg":
                raw[start + offset : start + offset + 4] = (100).to_bytes(4, "little")
            start += 4
    path.write_bytes(bytes(raw))
    err = reject(path, mirada_home)
    assert err.problems[0].where == "flower.jpg"


def test_decompression_bomb_images(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = folder(
        tmp_path,
        {
            "bomb.png": png_header_only(20_000, 20_000),  # Pillow itself refuses this one
            "big.png": solid((1, 1, 1), (400, 300)),  # over our own (lowered) limit
            "ok.png": solid((1, 1, 1), (10, 10)),
            "captions.csv": csv_bytes([("bomb.png", "b"), ("big.png", "c"), ("ok.png", "o")]),
        },
    )
    monkeypatch.setenv("MIRADA_MAX_IMAGE_PIXELS", "100000")
    err = reject(src, mirada_home)
    messages = {p.where: p.message for p in err.problems}
    assert set(messages) == {"bomb.png", "big.png"}
    assert "too large" in messages["bomb.png"] and "MIRADA_MAX_IMAGE_PIXELS" in messages["big.png"]
    assert "400x300" in messages["big.png"]


def test_truncated_and_non_image_files(mirada_home: Path, tmp_path: Path) -> None:
    china = sample_photo("china.jpg")
    src = folder(
        tmp_path,
        {
            "cut.jpg": china[: len(china) // 2],
            "notes.jpg": b"these are my field notes, not a photo\n" * 20,
            "captions.csv": csv_bytes([("cut.jpg", "a temple"), ("notes.jpg", "notes")]),
        },
    )
    err = reject(src, mirada_home)
    messages = {p.where: p.message for p in err.problems}
    assert "truncated" in messages["cut.jpg"]
    assert "not an image" in messages["notes.jpg"]


def test_csv_rows_naming_missing_or_outside_files(mirada_home: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(GOOD["a.png"])
    src = folder(
        tmp_path,
        {
            **GOOD,
            "captions.csv": csv_bytes(
                [
                    ("a.png", "fine"),
                    ("A.PNG", "wrong case"),
                    ("gone.png", "missing"),
                    ("../secret.png", "outside"),
                    ("/etc/passwd", "absolute"),
                ]
            ),
        },
    )
    err = reject(src, mirada_home)
    messages = {p.where: p.message for p in err.problems}
    assert "did you mean 'a.png'" in messages["captions.csv row 3"]
    assert "'gone.png' not found" in messages["captions.csv row 4"]
    assert "outside the dataset" in messages["captions.csv row 5"]
    assert "absolute path" in messages["captions.csv row 6"]
    assert "--lenient" in str(err) and "captions.csv row 4" in str(err)


def test_empty_captions_and_conflicting_categories_are_all_reported(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = folder(
        tmp_path,
        {
            **GOOD,
            "captions.csv": csv_bytes(
                [
                    ("a.png", "a square", "shapes"),
                    ("a.png", "   ", "shapes"),
                    ("a.png", "still a square", "colours"),
                    ("a.png", "", ""),
                ]
            ),
        },
    )
    err = reject(src, mirada_home)
    assert [p.where for p in err.problems] == [
        "captions.csv row 3",
        "captions.csv row 4",
        "captions.csv row 5",
    ]
    assert "empty caption" in err.problems[0].message
    assert "'colours' conflicts with 'shapes'" in err.problems[1].message
    assert "captions.csv row 2" in err.problems[1].message
    assert err.total == 3 and "3 problems" in str(err)


def test_missing_caption_column(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(
        tmp_path,
        {**GOOD, "captions.csv": csv_bytes([("a.png", "shapes")], header=("filename", "category"))},
    )
    err = reject(src, mirada_home, lenient=True)
    assert err.problems[0].where == "captions.csv row 1"
    assert "no caption column" in err.problems[0].message and "'caption'" in err.problems[0].message


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (bytes(range(256)) * 40, "binary data"),
        (b"PK\x03\x04" + bytes(200), "Excel .xlsx"),
    ],
)
def test_binary_garbage_instead_of_csv(
    mirada_home: Path, tmp_path: Path, body: bytes, expect: str
) -> None:
    src = folder(tmp_path, {**GOOD, "captions.csv": body})
    err = reject(src, mirada_home)
    assert err.problems[0].where == "captions.csv" and expect in err.problems[0].message


def test_huge_csv_stops_at_the_row_limit(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRADA_MAX_CSV_ROWS", "1000")
    rows = [("a.png", f"caption {i}") for i in range(50_000)]
    src = folder(tmp_path, {**GOOD, "captions.csv": csv_bytes(rows, header=("file", "text"))})
    err = reject(src, mirada_home, lenient=True)
    assert "more than 1,000 rows" in str(err) and "MIRADA_MAX_CSV_ROWS" in str(err)


def test_duplicate_dataset_name_suggests_name_option(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(tmp_path, {**GOOD, "captions.csv": csv_bytes([("a.png", "a square")])})
    import_dataset(src, name="study")
    with pytest.raises(DatasetImportError, match="--name") as info:
        import_dataset(src, name="study")
    assert "'study'" in str(info.value)
    assert len(list_datasets()) == 1


def test_problem_report_is_capped(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(
        tmp_path,
        {**GOOD, "captions.csv": csv_bytes([(f"missing{i}.png", "x") for i in range(120)])},
    )
    err = reject(src, mirada_home)
    assert len(err.problems) == 50 and err.total == 120
    assert "... and 70 more" in str(err)


def test_no_annotation_and_bad_split(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(tmp_path, GOOD)
    assert "no annotation file" in str(reject(src, mirada_home))
    (src / "dataset.json").write_text(
        '{"images": [{"filename": "a.png", "split": "val", "sentences": [{"raw": "x"}]}]}'
    )
    err = reject(src, mirada_home, split="test")
    assert "available: val" in str(err)


def test_nothing_left_to_import(mirada_home: Path, tmp_path: Path) -> None:
    src = folder(tmp_path, {**GOOD, "captions.csv": csv_bytes([])})
    assert "lists no images" in str(reject(src, mirada_home))
    (src / "captions.csv").write_bytes(csv_bytes([("a.png", "")]))
    err = reject(src, mirada_home, lenient=True)
    assert [p.where for p in err.problems] == ["src", "captions.csv row 2"]


def test_folder_symlink_leading_outside(mirada_home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "private.png"
    outside.write_bytes(GOOD["a.png"])
    src = folder(tmp_path, {**GOOD, "captions.csv": csv_bytes([("a.png", "ok"), ("b.png", "x")])})
    (src / "b.png").symlink_to(outside)
    err = reject(src, mirada_home)
    assert err.problems[0].where == "b.png" and "outside the dataset" in err.problems[0].message
