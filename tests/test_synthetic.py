"""The synthetic demo dataset: deterministic, well-formed, and held out from training."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from mirada.demo import synthetic as syn

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.iterdir()):
        h.update(path.name.encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.write_demo_dataset(tmp_path_factory.mktemp("demo"))


def test_same_bytes_in_a_fresh_process(demo_dir: Path, tmp_path: Path) -> None:
    # A fresh interpreter with another hash seed (set/dict ordering) writes identical files.
    code = (
        "import sys; from pathlib import Path; from mirada.demo.synthetic import "
        "write_demo_dataset; write_demo_dataset(Path(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = tmp_path / "again"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=REPO_ROOT, env=env)
    assert _tree_digest(out) == _tree_digest(demo_dir)


def test_pinned_content() -> None:
    # Pinned so that a change to the generator (which would silently change the held-out
    # split the demo models were evaluated on) is noticed. Update with care.
    scenes = syn.demo_scenes()
    text = "\n".join(json.dumps(s.to_dict(), sort_keys=True) for s in scenes)
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == PINNED_SCENES
    pixels = b"".join(syn.render(s).tobytes() for s in scenes[:10])
    assert hashlib.sha256(pixels).hexdigest()[:16] == PINNED_PIXELS


PINNED_SCENES = "920e8ca7402d58d1"
PINNED_PIXELS = "46fa7db26f6a7d70"


def test_csv_and_jsonl_format(demo_dir: Path) -> None:
    with (demo_dir / "captions.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "caption", "category"]
    body = rows[1:]
    assert len(body) == 2 * syn.DEMO_SIZE
    assert all(len(r) == 3 for r in body)
    per_file = Counter(r[0] for r in body)
    assert len(per_file) == syn.DEMO_SIZE and set(per_file.values()) == {2}
    pngs = sorted(p.name for p in demo_dir.glob("*.png"))
    assert pngs == sorted(per_file) == [f"demo_{i:04d}.png" for i in range(syn.DEMO_SIZE)]
    lines = (demo_dir / "scenes.jsonl").read_text(encoding="utf-8").splitlines()
    truth = {d["filename"]: d for d in map(json.loads, lines)}
    assert len(truth) == syn.DEMO_SIZE
    for name, caption, category in body:
        record = truth[name]
        assert caption in record["captions"]
        assert category == record["category"] == record["objects"][0]["shape"]
        assert category in syn.CATEGORIES
        assert {"shape", "colour", "size", "x", "y", "radius"} <= set(record["objects"][0])


def test_images_are_64x64_rgb(demo_dir: Path) -> None:
    from PIL import Image

    with Image.open(demo_dir / "demo_0000.png") as im:
        assert im.size == (64, 64) and im.mode == "RGB"


def test_demo_captions_are_unique_even_as_bags_of_words() -> None:
    scenes = syn.demo_scenes()
    captions = [c for s in scenes for c in s.captions]
    assert len(set(captions)) == len(captions)
    bags = {}
    for i, s in enumerate(scenes):
        for c in s.captions:
            bag = tuple(sorted(Counter(c.split()).items()))
            assert bags.setdefault(bag, i) == i, f"images {bags[bag]} and {i} share {c!r}"
    assert len({s.attribute_key() for s in scenes}) == len(scenes)


def test_categories_are_the_main_shape_and_all_present() -> None:
    scenes = syn.demo_scenes()
    counts = Counter(s.category for s in scenes)
    assert set(counts) == set(syn.CATEGORIES) == {"circle", "square", "star", "triangle"}
    assert min(counts.values()) >= 15
    for s in scenes:
        assert s.captions[0].split()[3] == s.category  # "a small red <shape> ..."


def test_captions_describe_the_scene() -> None:
    for s in syn.demo_scenes():
        main = s.objects[0]
        assert s.captions[0].startswith(main.phrase())
        assert s.captions[0].endswith(f"on a {s.background} background")
        for obj in s.objects:
            assert all(obj.phrase() in c for c in s.captions)
        if s.relation:
            conv = syn.RELATIONS[s.relation][0]
            assert f" {s.relation} " in s.captions[0] and f" {conv} " in s.captions[1]
            assert s.captions[1].startswith(s.objects[1].phrase())
    assert syn.SceneObject("star", "orange", "large", 0, 0).phrase() == "a large orange star"
    assert syn.SceneObject("star", "orange", "small", 0, 0).phrase() == "a small orange star"


def test_layouts_are_unambiguous() -> None:
    for s in syn.generate_scenes(500, seed=3):
        masks = [np.asarray(m) > 0 for m in syn.render_masks(s)]
        for m in masks:  # whole object inside the frame, not touching the border
            assert m.any() and not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        if not s.relation:
            continue
        assert not (masks[0] & masks[1]).any()
        a, b = s.objects
        dx, dy = b.x - a.x, b.y - a.y
        sign = {"above": (0, 1), "below": (0, -1), "to the left of": (1, 0)}.get(
            s.relation, (-1, 0)
        )
        if sign[0]:
            assert dx * sign[0] >= 28 and abs(dy) <= 6 < abs(dx)
        else:
            assert dy * sign[1] >= 28 and abs(dx) <= 6 < abs(dy)


def test_train_stream_never_shows_demo_captions() -> None:
    held_out = {c for s in syn.demo_scenes() for c in s.captions}
    train = list(islice(syn.iter_train_scenes(), 20000))
    assert not any(c in held_out for s in train for c in s.captions)
    # ... while an unfiltered stream of the same seed would have shown some of them
    raw = syn.generate_scenes(20000, syn.TRAIN_SEED)
    assert any(c in held_out for s in raw for c in s.captions)


def test_demo_split_is_a_prefix_and_bounded(tmp_path: Path) -> None:
    assert syn.demo_scenes(10) == syn.demo_scenes()[:10]
    with pytest.raises(ValueError):
        syn.write_demo_dataset(tmp_path, n=syn.DEMO_RESERVED + 1)
    with pytest.raises(ValueError):
        syn.write_demo_dataset(tmp_path, split="test")
    out = syn.write_demo_dataset(tmp_path / "train", split="train", n=5)
    assert len(list(out.glob("train_*.png"))) == 5
