"""The tiny demo BLIP captioner: configuration, processor, the per-patch auxiliary heads,
batches, caption scoring against the scene, evaluation and training."""

from __future__ import annotations

import logging
import random
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mirada.demo import synthetic as syn
from mirada.demo.training.common import (
    HEADS,
    HIDDEN,
    IMAGE_MEAN,
    IMAGE_STD,
    MAX_TEXT_LEN,
    MLP,
    PATCH,
    TEXT_LAYERS,
    VISION_LAYERS,
    Budget,
    TrainStream,
    make_optimizer,
    optimizer_step,
    pixels,
    record,
    save_model,
    set_lr,
    val_scenes,
    write_info,
)
from mirada.demo.training.tokenizer import blip_tokenizer, write_blip_vocab
from mirada.demo.training.verify import verify_reload

logger = logging.getLogger(__name__)


def blip_config(tokenizer: Any) -> Any:
    from transformers import BlipConfig, BlipTextConfig, BlipVisionConfig

    vision = BlipVisionConfig(
        image_size=syn.IMAGE_SIZE,
        patch_size=PATCH,
        hidden_size=HIDDEN,
        intermediate_size=MLP,
        num_attention_heads=HEADS,
        num_hidden_layers=VISION_LAYERS,
        projection_dim=HIDDEN,
        initializer_range=0.02,  # the default 1e-10 makes a tower that ignores the image
    )
    text = BlipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        encoder_hidden_size=HIDDEN,
        intermediate_size=MLP,
        projection_dim=HIDDEN,
        num_attention_heads=HEADS,
        num_hidden_layers=TEXT_LAYERS,
        max_position_embeddings=MAX_TEXT_LEN,
        bos_token_id=tokenizer.bos_token_id,  # [DEC]: generation starts from it
        eos_token_id=tokenizer.sep_token_id,
        sep_token_id=tokenizer.sep_token_id,  # generation stops at [SEP]
        pad_token_id=tokenizer.pad_token_id,
    )
    return BlipConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=HIDDEN,
        image_text_hidden_size=HIDDEN,
    )


def blip_processor(tokenizer: Any) -> Any:
    from transformers import BlipImageProcessor, BlipProcessor

    image_processor = BlipImageProcessor(
        size={"height": syn.IMAGE_SIZE, "width": syn.IMAGE_SIZE},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


SHAPE_CLASSES = ["none", *syn.SHAPES]
COLOUR_CLASSES = ["none", *syn.COLOURS]
PATCH_GRID = syn.IMAGE_SIZE // PATCH
MIN_PATCH_COVERAGE = 0.2


def patch_targets(scene: syn.Scene) -> tuple[np.ndarray, np.ndarray]:
    """Per 8x8 patch: the shape and colour class of the object covering most of it
    (``none`` below 20% coverage). Row-major, as the vision tokens are."""
    masks = [np.asarray(m, dtype=np.float32) / 255.0 for m in syn.render_masks(scene)]
    cover = np.stack(
        [m.reshape(PATCH_GRID, PATCH, PATCH_GRID, PATCH).mean(axis=(1, 3)) for m in masks]
    ).reshape(len(masks), -1)
    best = cover.argmax(axis=0)
    has = cover.max(axis=0) >= MIN_PATCH_COVERAGE
    shape = np.array([SHAPE_CLASSES.index(o.shape) for o in scene.objects])[best] * has
    colour = np.array([COLOUR_CLASSES.index(o.colour) for o in scene.objects])[best] * has
    return shape.astype(np.int64), colour.astype(np.int64)


class PatchHeads(nn.Module):
    """Training-only auxiliary heads on the vision tokens; never saved."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.shape = nn.Linear(hidden, len(SHAPE_CLASSES))
        self.colour = nn.Linear(hidden, len(COLOUR_CLASSES))

    def loss(self, tokens: torch.Tensor, shape: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]  # drop the class token
        ce = nn.functional.cross_entropy
        return ce(self.shape(patches).flatten(0, 1), shape.flatten()) + ce(
            self.colour(patches).flatten(0, 1), colour.flatten()
        )


def blip_batch(
    stream: TrainStream, tokenizer: Any, batch_size: int, rng: random.Random
) -> dict[str, torch.Tensor]:
    scenes = stream.take(batch_size)
    texts = [rng.choice(s.captions) for s in scenes]
    tok = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    input_ids = tok["input_ids"].clone()
    input_ids[:, 0] = tokenizer.bos_token_id  # generate() starts from [DEC], not [CLS]
    labels = input_ids.masked_fill(tok["attention_mask"] == 0, -100)
    targets = [patch_targets(s) for s in scenes]
    return {
        "pixel_values": pixels([syn.render(s) for s in scenes]),
        "input_ids": input_ids,
        "attention_mask": tok["attention_mask"],
        "labels": labels,
        "patch_shape": torch.from_numpy(np.stack([t[0] for t in targets])),
        "patch_colour": torch.from_numpy(np.stack([t[1] for t in targets])),
    }


_OBJ_RE = re.compile(
    r"\b(?:a|an) (small|large) (" + "|".join(syn.COLOURS) + r") (" + "|".join(syn.SHAPES) + r")\b"
)


def parse_caption(text: str) -> dict[str, Any]:
    """The objects ((size, colour, shape) in order) and relation named by a caption."""
    objs = _OBJ_RE.findall(text)
    relation = next((r for r in sorted(syn.RELATIONS, key=len, reverse=True) if r in text), None)
    return {"objects": [tuple(o) for o in objs], "relation": relation}


def _axis(relation: str | None) -> str | None:
    if relation is None:
        return None
    return "vertical" if relation in ("above", "below") else "horizontal"


def score_captions(scenes: Sequence[syn.Scene], captions: Sequence[str]) -> dict[str, float]:
    """main_shape_colour: the main object's colour and shape are named together ("red
    triangle"). objects_exact: the named (colour, shape) objects are exactly the scene's.
    sizes: every scene object is named with its right size. relation: for two-object scenes
    whose caption names both objects, the relation is the right one for the order named
    (relation_axis: at least horizontal vs vertical is right)."""
    main = exact = sizes = rel_ok = axis_ok = rel_n = 0
    for scene, cap in zip(scenes, captions, strict=True):
        parsed = parse_caption(cap)
        named = {(c, s) for _, c, s in parsed["objects"]}
        truth = {(o.colour, o.shape) for o in scene.objects}
        main += (scene.main.colour, scene.main.shape) in named
        exact += named == truth and len(parsed["objects"]) == len(scene.objects)
        sizes += all((o.size, o.colour, o.shape) in parsed["objects"] for o in scene.objects)
        if len(scene.objects) == 2 and named == truth and len(parsed["objects"]) == 2:
            rel_n += 1
            first = parsed["objects"][0][1:]
            want = scene.relation
            if first != (scene.main.colour, scene.main.shape):
                want = syn.RELATIONS[scene.relation or ""][0]
            rel_ok += parsed["relation"] == want
            axis_ok += _axis(parsed["relation"]) == _axis(want)
    n = len(scenes)
    return {
        "main_shape_colour_acc": main / n,
        "objects_exact_acc": exact / n,
        "sizes_acc": sizes / n,
        "relation_acc": rel_ok / rel_n if rel_n else float("nan"),
        "relation_axis_acc": axis_ok / rel_n if rel_n else float("nan"),
        "relation_n": rel_n,
        "n_images": n,
    }


@torch.no_grad()
def blip_generate(
    model: Any, tokenizer: Any, images: Sequence[Any], num_beams: int = 3, max_length: int = 20
) -> list[str]:
    model.eval()
    out: list[str] = []
    for i in range(0, len(images), 64):
        ids = model.generate(
            pixel_values=pixels(images[i : i + 64]), num_beams=num_beams, max_length=max_length
        )
        out += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def evaluate_blip(model: Any, tokenizer: Any, scenes: Sequence[syn.Scene]) -> dict[str, Any]:
    captions = blip_generate(model, tokenizer, [syn.render(s) for s in scenes])
    return {**score_captions(scenes, captions), "examples": captions[:8]}


def build_blip(seed: int, vocab_txt: Path) -> tuple[Any, Any]:
    from transformers import BlipForConditionalGeneration

    tokenizer = blip_tokenizer(vocab_txt)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(blip_config(tokenizer))
    return model, tokenizer


def train_blip(
    minutes: float, max_steps: int, seed: int = 0, aux_weight: float = 1.0
) -> tuple[Any, Any, dict[str, Any], Path]:
    tmp = Path(tempfile.mkdtemp(prefix="demo-blip-vocab-"))
    vocab_txt = write_blip_vocab(tmp / "vocab.txt")
    model, tokenizer = build_blip(seed, vocab_txt)
    heads = PatchHeads(HIDDEN)
    rng = random.Random(seed)
    stream = TrainStream()
    val = val_scenes()[:100]
    params = list(model.parameters()) + list(heads.parameters())
    opt = make_optimizer(params, lr=1e-3)
    budget = Budget(seconds=minutes * 60, max_steps=max_steps, warmup_steps=100)
    curve: list[dict[str, Any]] = []
    step = 0
    next_eval = 60.0
    while not budget.done(step):
        set_lr(opt, 1e-3 * budget.lr_factor(step))
        b = blip_batch(stream, tokenizer, 64, rng)
        model.train()
        out = model(
            pixel_values=b["pixel_values"],
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            labels=b["labels"],
        )
        aux = heads.loss(out.last_hidden_state, b["patch_shape"], b["patch_colour"])
        loss = out.loss + aux_weight * aux
        optimizer_step(opt, loss, params)
        step += 1
        if budget.elapsed() >= next_eval or budget.done(step):
            next_eval += 150.0
            metrics = evaluate_blip(model, tokenizer, val)
            curve.append({"step": step, "seconds": round(budget.elapsed(), 1), **metrics})
            logger.info(
                f"blip step {step} lm {out.loss.item():.3f} aux {aux.item():.3f} val main "
                f"{metrics['main_shape_colour_acc']:.2f} exact {metrics['objects_exact_acc']:.2f}"
                f" ({budget.elapsed():.0f}s) e.g. {metrics['examples'][0]!r}"
            )
    info = {
        "steps": step,
        "batch_size": 64,
        "aux_weight": aux_weight,
        "train_scenes_drawn": stream.drawn,
        "train_seconds": round(budget.elapsed(), 1),
        "val_curve": curve,
    }
    return model, tokenizer, info, vocab_txt


def save_blip(model: Any, tokenizer: Any, vocab_txt: Path, out: Path) -> None:
    save_model(model, blip_processor(tokenizer), out)
    shutil.copy(vocab_txt, out / "vocab.txt")  # the hand-written vocabulary, for other tooling


def run_blip(
    out_root: Path, minutes: float, max_steps: int, command: str, aux_weight: float
) -> dict[str, Any]:
    t0 = time.monotonic()
    model, tokenizer, info, vocab_txt = train_blip(minutes, max_steps, aux_weight=aux_weight)
    demo = evaluate_blip(model, tokenizer, syn.demo_scenes())
    logger.info(f"demo-blip held-out: {demo}")
    out = out_root / "demo-blip"
    save_blip(model, tokenizer, vocab_txt, out)
    diffs = verify_reload("blip", model, tokenizer, out)
    info = record(
        "demo-blip",
        command,
        model,
        {**info, "wall_seconds": round(time.monotonic() - t0, 1)},
        demo,
        diffs,
    )
    write_info(out, info)
    return info
