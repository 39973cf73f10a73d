"""Importing each supported format, image normalisation, encodings, dedup and deletion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
from sqlalchemy import func, select

from mirada.datasets import (
    delete_dataset,
    image_path,
    import_dataset,
    list_datasets,
    load_items,
    resolve_dataset,
    thumbnail_path,
)
from mirada.db import read_session
from mirada.db.models import Image as ImageRow
from mirada.errors import NotFoundError


def seed_study(root: Path) -> Path:
    """A seed-study folder: two real photos plus a generated one, CSV with repeated rows."""
    return write_files(
        root,
        {
            "images/china.jpg": sample_photo("china.jpg"),
            "images/flower.jpg": sample_photo("flower.jpg"),
            "images/red.png": solid((200, 30, 30)),
            "captions.csv": csv_bytes(
                [
                    ("images/china.jpg", "A temple among trees", "places"),
                    ("images/china.jpg", "A pagoda roof", "places"),
                    ("images/flower.jpg", "A pink flower", "nature"),
                    ("red.png", "A red square", ""),
                ]
            ),
        },
    )


def image_count() -> int:
    with read_session() as s:
        return int(s.scalar(select(func.count()).select_from(ImageRow)) or 0)


def test_csv_folder_import_stores_images_once_with_thumbnails(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = seed_study(tmp_path / "seed-study")
    report = import_dataset(src)
    assert report.as_json() == {
        "id": report.id,
        "name": "seed-study",
        "images": 3,
        "captions": 4,
        "categories": 2,
    }
    assert report.format == "csv" and report.skipped == []

    items = load_items(report.id)
    assert [i.filename for i in items] == [
        "images/china.jpg",
        "images/flower.jpg",
        "images/red.png",
    ]
    assert [t for _, t in items[0].captions] == ["A temple among trees", "A pagoda roof"]
    assert [i.category for i in items] == ["places", "nature", None]
    # An upright RGB JPEG is stored byte-for-byte: its hash is the file's own hash.
    assert items[0].sha256 == hashlib.sha256(sample_photo("china.jpg")).hexdigest()
    assert items[0].path == image_path(items[0].sha256, "jpg")
    assert items[2].path.suffix == ".png"
    for item in items:
        assert item.path.is_file() and item.path.is_relative_to(mirada_home / "images")
        with Image.open(thumbnail_path(item.sha256)) as thumb:
            assert max(thumb.size) <= 256
    assert not (mirada_home / "staging").exists()

    [summary] = list_datasets()
    assert summary.as_json() == report.as_json()
    assert resolve_dataset("seed-study") == summary
    assert resolve_dataset(report.id) == resolve_dataset(str(report.id)) == summary


def test_reimport_dedups_images_and_delete_removes_unreferenced_files(
    mirada_home: Path, tmp_path: Path
) -> None:
    src = seed_study(tmp_path / "seed")
    first = import_dataset(src)
    stored = image_count()
    second = import_dataset(src, name="seed-again")
    assert image_count() == stored == 3
    assert second.id != first.id and len(list_datasets()) == 2
    paths = [i.path for i in load_items(second.id)]
    assert paths == [i.path for i in load_items(first.id)]

    delete_dataset(first.id)
    assert all(p.is_file() for p in paths), "still used by the second dataset"
    delete_dataset(second.id)
    assert image_count() == 0
    assert stray_files(mirada_home) == []
    with pytest.raises(NotFoundError, match="no dataset"):
        load_items(second.id)


def test_zip_with_top_level_folder(mirada_home: Path, tmp_path: Path) -> None:
    folder = seed_study(tmp_path / "unzipped")
    files = {
        f"study/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
    }
    files["__MACOSX/study/._captions.csv"] = b"\x00\x05junk"
    report = import_dataset(make_zip(tmp_path / "field-trip.zip", files))
    assert (report.name, report.images, report.captions) == ("field-trip", 3, 4)
    assert load_items(report.id)[0].filename == "images/china.jpg"


def test_source_is_the_path_or_the_given_label(mirada_home: Path, tmp_path: Path) -> None:
    from mirada.db.models import Dataset

    folder = seed_study(tmp_path / "study")
    plain = import_dataset(folder, name="plain")
    labelled = import_dataset(folder, name="labelled", source_label="upload: study.zip")
    with read_session() as s:
        assert s.get(Dataset, plain.id).source_path == str(folder.resolve())  # type: ignore[union-attr]
        assert s.get(Dataset, labelled.id).source_path == "upload: study.zip"  # type: ignore[union-attr]


def test_single_annotation_file_path(mirada_home: Path, tmp_path: Path) -> None:
    src = seed_study(tmp_path / "study")
    (src / "other.csv").write_bytes(csv_bytes([("images/red.png", "red")]))
    report = import_dataset(src / "other.csv", name="just-red")
    assert (report.images, report.captions) == (1, 1)


@pytest.mark.parametrize("meta", ["metadata.csv", "metadata.jsonl"])
def test_imagefolder(mirada_home: Path, tmp_path: Path, meta: str) -> None:
    rows = [
        {"file_name": "a.png", "text": "a green square", "category": "shapes"},
        {"file_name": "sub/b.jpg", "text": "a blue rectangle"},
    ]
    if meta.endswith(".csv"):
        body = csv_bytes(
            [(r["file_name"], r["text"], r.get("category", "")) for r in rows],
            header=("file_name", "text", "category"),
        )
    else:
        body = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    src = write_files(
        tmp_path / "hf",
        {
            "train/a.png": solid((0, 200, 0)),
            "train/sub/b.jpg": solid((0, 0, 200), (40, 20), "JPEG"),
            f"train/{meta}": body,
        },
    )
    report = import_dataset(src, split="train")
    assert (report.format, report.images, report.captions, report.categories) == (
        "imagefolder",
        2,
        2,
        1,
    )
    assert [i.filename for i in load_items(report.id)] == ["a.png", "sub/b.jpg"]


def test_coco_captions(mirada_home: Path, tmp_path: Path) -> None:
    doc = {
        "images": [
            {"id": 7, "file_name": "china.jpg", "category": "temple"},
            {"id": 9, "file_name": "flower.jpg", "category_id": 2},
        ],
        "annotations": [
            {"id": 1, "image_id": 9, "caption": "A flower in bloom"},
            {"id": 2, "image_id": 7, "caption": "A temple"},
            {"id": 3, "image_id": 7, "caption": "Trees and a roof"},
        ],
        "categories": [{"id": 2, "name": "plant"}],
    }
    src = write_files(
        tmp_path / "coco",
        {
            "val2014/china.jpg": sample_photo("china.jpg"),
            "val2014/flower.jpg": sample_photo("flower.jpg"),
            "val2014/captions_val.json": json.dumps(doc).encode(),
        },
    )
    report = import_dataset(
        make_zip(
            tmp_path / "coco.zip",
            {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()},
        )
    )
    assert (report.format, report.images, report.captions, report.categories) == (
        "coco",
        2,
        3,
        2,
    )
    items = load_items(report.id)
    assert [(i.filename, i.category) for i in items] == [
        ("china.jpg", "temple"),
        ("flower.jpg", "plant"),
    ]
    assert [t for _, t in items[0].captions] == ["A temple", "Trees and a roof"]


def test_karpathy_split(mirada_home: Path, tmp_path: Path) -> None:
    doc = {
        "images": [
            {
                "filepath": "val2014",
                "filename": "china.jpg",
                "split": "test",
                "sentences": [{"raw": "A temple.", "tokens": ["a", "temple"]}, {"raw": "A roof."}],
            },
            {
                "filepath": "val2014",
                "filename": "flower.jpg",
                "split": "train",
                "sentences": [{"raw": "A flower."}],
            },
            {"filename": "red.png", "split": "test", "sentences": [{"tokens": ["red", "square"]}]},
        ],
        "dataset": "coco",
    }
    src = write_files(
        tmp_path / "karpathy",
        {
            "val2014/china.jpg": sample_photo("china.jpg"),
            "val2014/flower.jpg": sample_photo("flower.jpg"),
            "red.png": solid((255, 0, 0)),
            "dataset_coco.json": json.dumps(doc).encode(),
        },
    )
    report = import_dataset(src, split="test", name="k-test")
    assert (report.format, report.images, report.captions) == ("karpathy", 2, 3)
    items = load_items(report.id)
    assert [i.filename for i in items] == ["val2014/china.jpg", "red.png"]
    assert items[1].captions[0][1] == "red square"
    assert import_dataset(src, name="k-all", fmt="karpathy").images == 3


ENCODINGS = [
    ("utf-8-sig", ";"),
    ("utf-8", ";"),
    ("cp1252", ";"),
    ("cp1252", ","),
    ("utf-8", "\t"),
    ("utf-16", "\t"),
]


@pytest.mark.parametrize(("encoding", "delimiter"), ENCODINGS)
def test_spreadsheet_encodings_and_delimiters(
    mirada_home: Path, tmp_path: Path, encoding: str, delimiter: str
) -> None:
    body = csv_bytes(
        [
            ("niño.png", "Un niño comiendo piña, en el café", "Ñandú"),
            ("niño.png", "Otra descripción; con punto y coma", "Ñandú"),
        ],
        header=("Image", "Text", "Category"),
        delimiter=delimiter,
        encoding=encoding,
    )
    if encoding == "utf-8-sig":
        assert body.startswith(b"\xef\xbb\xbf")
    src = write_files(tmp_path / "es", {"niño.png": solid((9, 9, 9)), "datos.csv": body})
    report = import_dataset(src)
    [item] = load_items(report.id)
    assert item.filename == "niño.png" and item.category == "Ñandú"
    assert [t for _, t in item.captions] == [
        "Un niño comiendo piña, en el café",
        "Otra descripción; con punto y coma",
    ]


def test_cp1252_after_a_long_ascii_start(mirada_home: Path, tmp_path: Path) -> None:
    rows = [("a.png", f"plain ascii caption number {i}", "") for i in range(3000)]
    rows.append(("a.png", "café con leche", ""))
    src = write_files(
        tmp_path / "late",
        {
            "a.png": solid((1, 2, 3)),
            "captions.csv": csv_bytes(rows, delimiter=";", encoding="cp1252"),
        },
    )
    report = import_dataset(src)
    assert report.captions == 3001
    assert load_items(report.id)[0].captions[-1][1] == "café con leche"


def _modes() -> dict[str, bytes]:
    rgba = Image.new("RGBA", (30, 20), (255, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 15, 20))
    palette = Image.new("RGB", (30, 20), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    transparent_p = palette.copy()
    transparent_p.info["transparency"] = 0
    gradient16 = Image.new("I;16", (30, 20))
    gradient16.putdata([x * 2000 for _ in range(20) for x in range(30)])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return {
        "cmyk.jpg": encode(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG"),
        "grey16.png": encode(gradient16),
        "palette.gif": encode(palette, "GIF"),
        "palette_t.png": encode(transparent_p),
        "rgba.png": encode(rgba),
        "la.png": encode(Image.new("LA", (30, 20), (80, 0))),
        "grey.jpg": encode(Image.new("L", (30, 20), 100), "JPEG"),
        "rotated.jpg": encode(Image.new("RGB", (30, 20), (0, 255, 0)), "JPEG", exif=exif),
        "bmp.bmp": encode(Image.new("RGB", (30, 20), (1, 2, 3)), "BMP"),
        "tiff.tif": encode(Image.new("RGB", (30, 20), (4, 5, 6)), "TIFF"),
    }


def test_images_are_normalised_to_upright_rgb(mirada_home: Path, tmp_path: Path) -> None:
    files = _modes()
    src = write_files(
        tmp_path / "modes",
        {
            **files,
            "captions.csv": csv_bytes([(name, f"image {name}", "") for name in files]),
        },
    )
    report = import_dataset(src)
    items = {i.filename: i for i in load_items(report.id)}
    assert set(items) == set(files)
    for name, item in items.items():
        with Image.open(item.path) as img:
            assert img.mode == "RGB", name
            expected = (20, 30) if name == "rotated.jpg" else (30, 20)
            assert img.size == expected, name
            pixels = img.convert("RGB")
            if name == "rgba.png":
                assert pixels.getpixel((2, 2)) == (255, 0, 0)
                assert pixels.getpixel((25, 2)) == (255, 255, 255)  # alpha over white
            if name == "la.png":
                assert pixels.getpixel((0, 0)) == (255, 255, 255)
            if name == "grey16.png":
                assert pixels.getpixel((0, 0))[0] == 0 and pixels.getpixel((29, 0))[0] > 200
            if name == "cmyk.jpg":
                r, g, b = pixels.getpixel((5, 5))
                assert r > 200 and g < 60 and b < 60
    # Lossy sources stay JPEG, lossless ones become PNG.
    assert items["cmyk.jpg"].path.suffix == ".jpg" and items["rotated.jpg"].path.suffix == ".jpg"
    assert items["palette.gif"].path.suffix == ".png" and items["tiff.tif"].path.suffix == ".png"


def test_large_csv_imports(mirada_home: Path, tmp_path: Path) -> None:
    rows = [(f"{'ab'[i % 2]}.png", f"caption {i}", "") for i in range(5000)]
    src = write_files(
        tmp_path / "big",
        {
            "a.png": solid((10, 10, 10)),
            "b.png": solid((20, 20, 20)),
            "captions.csv": csv_bytes(rows),
        },
    )
    report = import_dataset(src)
    assert (report.images, report.captions) == (2, 5000)


def test_lenient_skips_bad_rows_and_images(mirada_home: Path, tmp_path: Path) -> None:
    china = sample_photo("china.jpg")
    src = write_files(
        tmp_path / "messy",
        {
            "good.jpg": china,
            "cut.jpg": china[: len(china) // 3],
            "captions.csv": csv_bytes(
                [
                    ("good.jpg", "a temple", "a"),
                    ("good.jpg", "", "a"),
                    ("missing.jpg", "never there", ""),
                    ("cut.jpg", "half a photo", ""),
                    ("good.jpg", "other category", "b"),
                ]
            ),
        },
    )
    report = import_dataset(src, lenient=True)
    assert (report.images, report.captions, report.categories) == (1, 1, 1)
    wheres = [p.where for p in report.skipped]
    assert wheres == ["captions.csv row 3", "captions.csv row 4", "captions.csv row 6", "cut.jpg"]
    assert report.as_json()["skipped"][1]["where"] == "captions.csv row 4"


def test_resolve_unknown_dataset_lists_names(mirada_home: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no datasets yet"):
        resolve_dataset("nope")
    import_dataset(seed_study(tmp_path / "alpha"))
    with pytest.raises(NotFoundError, match="available: alpha"):
        resolve_dataset("beta")
