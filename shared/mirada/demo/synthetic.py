"""A deterministic synthetic captioned dataset: 64x64 scenes of one or two coloured shapes.

Every scene is drawn from a seeded ``random.Random`` and rendered with ``PIL.ImageDraw``
(4x supersampled, then box-filtered down, so edges are antialiased), so the same seed gives
the same images and captions, byte for byte, on every run.

Splits:

* ``"train"`` (seed :data:`TRAIN_SEED`): an endless stream, generated on the fly by
  :func:`iter_train_scenes`. Scenes whose caption text appears in the reserved demo split are
  skipped, so the demo split is truly held out.
* ``"demo"`` (seed :data:`DEMO_SEED`): held-out, :data:`DEMO_SIZE` images by default. Every
  demo image has a distinct set of (shape, colour) objects, so no two demo images share a
  caption, even as a bag of words, and image-to-text retrieval is well defined.

Each image has two captions, two paraphrases of the same scene, e.g.
``"a small red triangle above a large blue circle on a gray background"`` and
``"a large blue circle below a small red triangle on a gray background"``. The category of an
image is the shape of its main object (the one named first in the first caption).
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SUPERSAMPLE = 4

SHAPES: tuple[str, ...] = ("circle", "square", "star", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 210, 30),
    "purple": (145, 60, 195),
    "orange": (250, 135, 20),
}
SIZES: dict[str, float] = {"small": 8.0, "large": 12.0}  # radius in pixels (64x64 image)
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
}
# relation of the main object to the other one -> (its converse, main's (dx, dy) direction)
RELATIONS: dict[str, tuple[str, tuple[int, int]]] = {
    "above": ("below", (0, -1)),
    "below": ("above", (0, 1)),
    "to the left of": ("to the right of", (-1, 0)),
    "to the right of": ("to the left of", (1, 0)),
}
CATEGORIES: tuple[str, ...] = SHAPES

TRAIN_SEED = 1234
DEMO_SEED = 20240607
DEMO_SIZE = 120
# The demo scenes that are excluded from the training stream; write_demo_dataset(split="demo")
# never writes more than this many, so whatever it writes is held out.
DEMO_RESERVED = 200
SINGLE_OBJECT_PROB = 0.25

SPLITS: dict[str, tuple[int, int]] = {"train": (TRAIN_SEED, 1000), "demo": (DEMO_SEED, DEMO_SIZE)}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: int  # centre, pixels
    y: int

    @property
    def radius(self) -> float:
        return SIZES[self.size]

    def phrase(self) -> str:
        words = f"{self.size} {self.colour} {self.shape}"
        return ("an " if words[0] in "aeiou" else "a ") + words


@dataclass(frozen=True)
class Scene:
    """One image: its objects (main object first), background, relation and captions."""

    objects: tuple[SceneObject, ...]
    background: str
    relation: str | None  # relation of objects[0] to objects[1]; None for one object
    captions: tuple[str, str]

    @property
    def category(self) -> str:
        return self.objects[0].shape

    @property
    def main(self) -> SceneObject:
        return self.objects[0]

    def attribute_key(self) -> frozenset[tuple[str, str]]:
        """The set of (shape, colour) objects: distinct for every image of the demo split."""
        return frozenset((o.shape, o.colour) for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [{**asdict(o), "radius": o.radius} for o in self.objects],
            "background": self.background,
            "relation": self.relation,
            "category": self.category,
            "captions": list(self.captions),
        }


def make_captions(
    objects: tuple[SceneObject, ...], background: str, relation: str | None
) -> tuple[str, str]:
    bg = f"on a {background} background"
    if relation is None:
        (obj,) = objects
        return (f"{obj.phrase()} {bg}", f"a {background} background with {obj.phrase()}")
    a, b = objects
    converse = RELATIONS[relation][0]
    return (
        f"{a.phrase()} {relation} {b.phrase()} {bg}",
        f"{b.phrase()} {converse} {a.phrase()} {bg}",
    )


def _random_object(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(list(SIZES))


def random_scene(rng: random.Random) -> Scene:
    """Draw one scene. Layouts are unambiguous: a "left of" pair sits side by side with a
    vertical offset (at most 6 px) far smaller than the horizontal gap (at least 28 px), and
    an "above" pair likewise the other way round."""
    background = rng.choice(list(BACKGROUNDS))
    c = IMAGE_SIZE // 2
    if rng.random() < SINGLE_OBJECT_PROB:
        shape, colour, size = _random_object(rng)
        obj = SceneObject(shape, colour, size, c + rng.randint(-6, 6), c + rng.randint(-6, 6))
        objects: tuple[SceneObject, ...] = (obj,)
        relation = None
    else:
        first = _random_object(rng)
        second = _random_object(rng)
        while second[:2] == first[:2]:  # two objects of the same shape and colour: redraw
            second = _random_object(rng)
        relation = rng.choice(list(RELATIONS))
        dx, dy = RELATIONS[relation][1]
        along = [c + d * 16 + rng.randint(-2, 2) for d in (-1, 1)]  # main, other (signed below)
        across = [c + rng.randint(-3, 3) for _ in range(2)]
        sign = dx + dy  # -1: main first (left/top), 1: main second (right/bottom)
        main_along, other_along = (along[0], along[1]) if sign < 0 else (along[1], along[0])
        if dx:
            pos = ((main_along, across[0]), (other_along, across[1]))
        else:
            pos = ((across[0], main_along), (across[1], other_along))
        objects = (
            SceneObject(*first, x=pos[0][0], y=pos[0][1]),
            SceneObject(*second, x=pos[1][0], y=pos[1][1]),
        )
    return Scene(objects, background, relation, make_captions(objects, background, relation))


def generate_scenes(
    n: int,
    seed: int,
    *,
    unique: bool = False,
    exclude_captions: frozenset[str] | set[str] | None = None,
) -> list[Scene]:
    """The first ``n`` scenes of the stream seeded by ``seed``.

    ``unique``: skip a scene whose set of (shape, colour) objects an earlier scene already has
    (the demo split uses this). ``exclude_captions``: skip a scene with any of these captions.
    """
    rng = random.Random(seed)
    seen: set[frozenset[tuple[str, str]]] = set()
    out: list[Scene] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 1000 * (n + 10):
            raise ValueError(f"cannot draw {n} scenes under these constraints")
        scene = random_scene(rng)
        if exclude_captions and any(cap in exclude_captions for cap in scene.captions):
            continue
        if unique:
            key = scene.attribute_key()
            if key in seen:
                continue
            seen.add(key)
        out.append(scene)
    return out


def demo_scenes(n: int = DEMO_SIZE) -> list[Scene]:
    """The held-out demo split (a prefix of the reserved one, so any ``n`` is held out)."""
    if not 0 < n <= DEMO_RESERVED:
        raise ValueError(f"the demo split has 1..{DEMO_RESERVED} images, not {n}")
    return generate_scenes(n, DEMO_SEED, unique=True)


def demo_captions() -> frozenset[str]:
    """Every caption of the reserved demo scenes: the training stream never shows these."""
    return frozenset(c for s in demo_scenes(DEMO_RESERVED) for c in s.captions)


def iter_train_scenes(seed: int = TRAIN_SEED) -> Iterator[Scene]:
    """The endless training stream, without any scene that has a demo caption."""
    rng = random.Random(seed)
    excluded = demo_captions()
    while True:
        scene = random_scene(rng)
        if not any(cap in excluded for cap in scene.captions):
            yield scene


def train_scenes(n: int, seed: int = TRAIN_SEED) -> list[Scene]:
    """The first ``n`` scenes of the training stream."""
    it = iter_train_scenes(seed)
    return [next(it) for _ in range(n)]


def _polygon(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":  # equilateral, pointing up, centred on its centroid
        angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return [(x + r * math.cos(a), y - r * math.sin(a)) for a in angles]
    if shape == "star":  # five points, inner radius 0.45
        pts = []
        for k in range(10):
            a = math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else 0.45 * r
            pts.append((x + rr * math.cos(a), y - rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject, scale: int, fill: Any) -> None:
    x, y, r = obj.x * scale, obj.y * scale, obj.radius * scale
    if obj.shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif obj.shape == "square":
        h = r * 0.85  # about the same visual weight as the circle
        draw.rectangle((x - h, y - h, x + h, y + h), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon(_polygon("triangle", x, y + 0.15 * r, r * 1.1), fill=fill)
    elif obj.shape == "star":
        draw.polygon(_polygon("star", x, y + 0.05 * r, r * 1.1), fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def render(scene: Scene) -> Image.Image:
    """The scene as a 64x64 RGB image."""
    s = SUPERSAMPLE
    img = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        _draw_object(draw, obj, s, COLOURS[obj.colour])
    return img.reduce(s)


def render_masks(scene: Scene) -> list[Image.Image]:
    """One 64x64 greyscale coverage mask (0..255) per object, in ``scene.objects`` order."""
    s = SUPERSAMPLE
    masks = []
    for obj in scene.objects:
        img = Image.new("L", (IMAGE_SIZE * s, IMAGE_SIZE * s), 0)
        _draw_object(ImageDraw.Draw(img), obj, s, 255)
        masks.append(img.reduce(s))
    return masks


def write_demo_dataset(out_dir: Path, *, split: str = "demo", n: int | None = None) -> Path:
    """Write a split as ``<split>_NNNN.png`` images, ``captions.csv`` (header
    ``filename,caption,category``, one row per caption) and ``scenes.jsonl`` (the ground
    truth of each image). Returns ``out_dir``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
    count = SPLITS[split][1] if n is None else n
    scenes = demo_scenes(count) if split == "demo" else train_scenes(count)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        (out_dir / "captions.csv").open("w", newline="", encoding="utf-8") as fcsv,
        (out_dir / "scenes.jsonl").open("w", encoding="utf-8") as fjson,
    ):
        writer = csv.writer(fcsv, lineterminator="\n")
        writer.writerow(["filename", "caption", "category"])
        for i, scene in enumerate(scenes):
            name = f"{split}_{i:04d}.png"
            render(scene).save(out_dir / name, format="PNG")
            for cap in scene.captions:
                writer.writerow([name, cap, scene.category])
            fjson.write(json.dumps({"filename": name, **scene.to_dict()}, sort_keys=True) + "\n")
    return out_dir
