"""Peak memory of importing the most hostile inputs we can build (issue 12 item 7).

Each input is built small on disk (sparse files, zips of zeros, images of one colour) in a
temporary folder, then imported by `mirada import` in its own process; the peak RSS of that
process is its VmHWM (Linux), read by the process itself as it ends. Prints one JSON object
per input and a final summary; exits 1 if any import went over the 1 GB budget or ended in a
traceback.

    .venv/bin/python -m benchmarks.bench_import_worst [--only NAME]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

BUDGET_BYTES = 1024**3
GIB = 1024**3


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def _csv(names: list[str]) -> bytes:
    rows = ["filename,caption"] + [f"{n},a photo of {n}" for n in names]
    return ("\n".join(rows) + "\n").encode()


def _zip_with_zeros(path: Path, member: str, head: bytes, zeros: int, extra: dict) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in extra.items():
            zf.writestr(name, data)
        with zf.open(zipfile.ZipInfo(member), "w", force_zip64=True) as fh:
            fh.write(head)
            chunk = bytes(16 * 1024**2)
            left = zeros
            while left > 0:
                fh.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)


def _sparse(path: Path, head: bytes, size: int) -> None:
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)


# --------------------------------------------------------------------------------- inputs


def zip_jpeg_then_1gib_zeros(tmp: Path) -> Path:
    path = tmp / "bomb.zip"
    _zip_with_zeros(path, "a.jpg", _jpeg(), GIB, {"captions.csv": _csv(["a.jpg"])})
    return path


def zip_csv_one_line_1_5gib(tmp: Path) -> Path:
    path = tmp / "line.zip"
    head = b"filename,caption\na.jpg,"
    _zip_with_zeros(path, "captions.csv", head, GIB + GIB // 2, {"a.jpg": _jpeg()})
    return path


def zip_bomb_ratio_under_limit(tmp: Path) -> Path:
    # Just under the default ratio (100x) and size (256 MiB) caps: random bytes mixed
    # with zeros so the whole entry passes the directory checks and is read in full.
    path = tmp / "near.zip"
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, 1024 * 1024 // 50, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("captions.csv", _csv(["a.jpg"]))
        with zf.open(zipfile.ZipInfo("a.jpg"), "w", force_zip64=True) as fh:
            fh.write(_jpeg())
            for _ in range(250):
                fh.write(block + bytes(1024 * 1024 - len(block)))
    return path


def folder_sparse_6gb_image(tmp: Path) -> Path:
    root = tmp / "sparse"
    root.mkdir()
    _sparse(root / "a.jpg", _jpeg(), 6 * 10**9)
    (root / "captions.csv").write_bytes(_csv(["a.jpg"]))
    return root


def folder_sparse_6gb_csv(tmp: Path) -> Path:
    root = tmp / "sparsecsv"
    root.mkdir()
    (root / "a.jpg").write_bytes(_jpeg())
    _sparse(root / "captions.csv", b"filename,caption\na.jpg,", 6 * 10**9)
    return root


def folder_jpeg_then_250mib_zeros(tmp: Path) -> Path:
    root = tmp / "trailer"
    root.mkdir()
    _sparse(root / "a.jpg", _jpeg(), 250 * 1024**2)
    (root / "captions.csv").write_bytes(_csv(["a.jpg"]))
    return root


def _png(img: Image.Image, path: Path) -> None:
    img.save(path, "PNG", compress_level=1)


def folder_png16_88mp(tmp: Path) -> Path:
    root = tmp / "png16"
    root.mkdir()
    side = 9400  # 88.4 megapixels, under the default 89.5 MP limit
    img = Image.frombuffer("I;16", (side, side), bytes(side * side * 2), "raw", "I;16", 0, 1)
    _png(img, root / "a.png")
    (root / "captions.csv").write_bytes(_csv(["a.png"]))
    return root


def folder_rgba_89mp(tmp: Path) -> Path:
    root = tmp / "rgba"
    root.mkdir()
    _png(Image.new("RGBA", (9459, 9459), (10, 20, 30, 128)), root / "a.png")
    (root / "captions.csv").write_bytes(_csv(["a.png"]))
    return root


def folder_jpeg_89mp(tmp: Path) -> Path:
    root = tmp / "jpeg"
    root.mkdir()
    Image.new("RGB", (9459, 9459), (10, 20, 30)).save(root / "a.jpg", "JPEG")
    (root / "captions.csv").write_bytes(_csv(["a.jpg"]))
    return root


def folder_csv_250mib_one_image(tmp: Path) -> Path:
    # The largest CSV the caps allow, every row a long caption of the same image.
    root = tmp / "bigcsv"
    root.mkdir()
    (root / "a.jpg").write_bytes(_jpeg())
    row = b"a.jpg," + b"x" * 250 + b"\n"
    with (root / "captions.csv").open("wb") as fh:
        fh.write(b"filename,caption\n")
        for _ in range(999):
            fh.write(row * 1000)
    return root


def folder_json_karpathy_250mib(tmp: Path) -> Path:
    # The largest annotation JSON the file cap allows: many short sentences.
    root = tmp / "karpathy"
    root.mkdir()
    (root / "a.jpg").write_bytes(_jpeg())
    with (root / "dataset.json").open("w") as fh:
        fh.write('{"images": [{"filename": "a.jpg", "split": "test", "sentences": [')
        sentence = '{"raw": "a b", "tokens": ["a", "b"]}'
        fh.write(sentence)
        for _ in range(5_999):  # written in blocks: the bench itself stays small
            fh.write(("," + sentence) * 1000)
        fh.write(("," + sentence) * 999)
        fh.write("]}]}")
    return root


def folder_json_karpathy_999k_long_sentences(tmp: Path) -> Path:
    # Just under the caption limit (MIRADA_MAX_CSV_ROWS), so it is read and stored in full.
    root = tmp / "karpathy999k"
    root.mkdir()
    (root / "a.jpg").write_bytes(_jpeg())
    with (root / "dataset.json").open("w") as fh:
        fh.write('{"images": [{"filename": "a.jpg", "split": "test", "sentences": [')
        for i in range(999_000):
            fh.write(("," if i else "") + f'{{"raw": "{i} {"x" * 200}", "tokens": ["{i}"]}}')
        fh.write("]}]}")
    return root


def folder_json_coco_999k_annotations(tmp: Path) -> Path:
    root = tmp / "coco999k"
    root.mkdir()
    (root / "a.jpg").write_bytes(_jpeg())
    with (root / "captions.json").open("w") as fh:
        fh.write('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [')
        for i in range(999_000):
            fh.write(
                ("," if i else "") + f'{{"image_id": 1, "id": {i}, "caption": "{i} {"y" * 200}"}}'
            )
        fh.write("]}")
    return root


KARPATHY_COCO_IMAGES = 123_287  # the real dataset_coco.json: 144 MB, 616,767 sentences


def folder_json_like_dataset_coco_split_test(tmp: Path) -> Path:
    # The shape and size of Karpathy's dataset_coco.json; its 5,000 test images exist (tiny,
    # distinct), so `--split test` imports them, as users do.
    root = tmp / "coco_karpathy"
    (root / "val2014").mkdir(parents=True)
    words = "a man riding a wave on top of a surfboard in the ocean".split()
    with (root / "dataset_coco.json").open("w") as fh:
        fh.write('{"images": [')
        for i in range(KARPATHY_COCO_IMAGES):
            split = "test" if i < 5000 else "val" if i < 10000 else "train"
            name = f"COCO_val2014_{i:012d}.jpg"
            if split == "test":
                color = (i % 256, i // 256, 7)
                Image.new("RGB", (32, 24), color).save(root / "val2014" / name, "JPEG")
            sentences = [
                {
                    "tokens": words[k:] + words[:k],
                    "raw": " ".join(words[k:] + words[:k]).capitalize() + ".",
                    "imgid": i,
                    "sentid": 5 * i + k,
                }
                for k in range(5)
            ]
            image = {
                "filepath": "val2014",
                "sentids": [5 * i + k for k in range(5)],
                "filename": name,
                "imgid": i,
                "split": split,
                "sentences": sentences,
                "cocoid": 100000 + i,
            }
            fh.write(("," if i else "") + json.dumps(image))
        fh.write('], "dataset": "coco"}')
    return root


OPTIONS: dict[str, dict[str, str]] = {
    "folder_json_like_dataset_coco_split_test": {"split": "test"},
}

INPUTS: dict[str, Callable[[Path], Path]] = {
    f.__name__: f
    for f in (
        zip_jpeg_then_1gib_zeros,
        zip_csv_one_line_1_5gib,
        zip_bomb_ratio_under_limit,
        folder_sparse_6gb_image,
        folder_sparse_6gb_csv,
        folder_jpeg_then_250mib_zeros,
        folder_png16_88mp,
        folder_rgba_89mp,
        folder_jpeg_89mp,
        folder_csv_250mib_one_image,
        folder_json_karpathy_250mib,
        folder_json_karpathy_999k_long_sentences,
        folder_json_coco_999k_annotations,
        folder_json_like_dataset_coco_split_test,
    )
}

_CHILD = """
import json, sys
from mirada.datasets import import_dataset
from mirada.errors import MiradaError
try:
    r = import_dataset(sys.argv[1], name=sys.argv[2], **json.loads(sys.argv[3]))
    print("imported", r.images, "images", r.captions, "captions")
except MiradaError as exc:
    print("refused:", str(exc).splitlines()[-1][:160])
finally:
    # This process's own peak: ru_maxrss would also count the parent's peak (the kernel
    # carries the pre-exec memory's high-water mark over), which holds the built inputs.
    with open("/proc/self/status") as status:
        hwm = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    print("VmHWM_KB", hwm[0] if hwm else "")
"""


def measure(name: str, build: Callable[[Path], Path], tmp: Path) -> dict[str, object]:
    path = build(tmp)
    home = tmp / "home"
    env = {**os.environ, "MIRADA_HOME": str(home)}
    env.pop("MIRADA_DATABASE_URL", None)
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), name, json.dumps(OPTIONS.get(name, {}))],
            env=env,
            stdout=out,
            stderr=err,
        )
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would keep the maximum of all).
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().strip(), err.read().strip()
    seconds = round(time.perf_counter() - began, 1)
    lines = stdout.splitlines()
    hwm = [line.split()[1:] for line in lines if line.startswith("VmHWM_KB")]
    peak_kb = int(hwm[0][0]) if hwm and hwm[0] else usage.ru_maxrss  # killed: the upper bound
    stdout = "\n".join(line for line in lines if not line.startswith("VmHWM_KB"))
    stored = sum(p.stat().st_size for p in (home / "images").glob("*")) if home.exists() else 0
    return {
        "input": name,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "import_seconds": seconds,
        "result": (stdout or (stderr.splitlines() or ["(no output)"])[-1])[:200],
        "traceback": "Traceback" in stderr,
        "stored_bytes": stored,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(INPUTS))
    args = parser.parse_args()
    failed = False
    worst = 0.0
    for name, build in INPUTS.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="mirada-worst-") as tmp:
            row = measure(name, build, Path(tmp))
        print(json.dumps(row), flush=True)
        worst = max(worst, float(row["peak_rss_mb"]))  # type: ignore[arg-type]
        failed |= bool(row["traceback"])
    failed |= worst * 1024**2 > BUDGET_BYTES
    print(json.dumps({"worst_peak_rss_mb": worst, "budget_mb": BUDGET_BYTES / 1024**2}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
