"""The tiny demo CLIP: configuration, processor, batches, evaluation and training."""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from mirada.demo.training.tokenizer import CLIP_BPE_DIR, load_clip_tokenizer
from mirada.demo.training.verify import verify_reload
from mirada.metrics.retrieval import ZEROSHOT_TEMPLATES, class_prompts, zeroshot_classify

logger = logging.getLogger(__name__)

# Bare-category prompts ("a photo of a star."): the match task's default zero-shot prompts
# plus the plainest one. No full caption names a bare shape, so a model trained on captions
# alone is at chance on zero-shot. The shipped model learned them from the zero-shot loss
# (--zeroshot-weight) in a fine-tune; as in-batch captions (--bare-per-category) they did
# worse, since the contrastive loss makes "a photo of a star." a negative for every other
# star image of the batch (MODEL_CARD.md, "Zero-shot").
BARE_TEMPLATES: tuple[str, ...] = (*ZEROSHOT_TEMPLATES, "a {}")


def clip_config(tokenizer: Any) -> Any:
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    eot = tokenizer.eos_token_id
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=MLP,
        num_attention_heads=HEADS,
        num_hidden_layers=TEXT_LAYERS,
        max_position_embeddings=MAX_TEXT_LEN,
        projection_dim=HIDDEN,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eot,  # pooling takes its first occurrence
        pad_token_id=eot,  # the tokenizer pads with end-of-text
    )
    vision = CLIPVisionConfig(
        image_size=syn.IMAGE_SIZE,
        patch_size=PATCH,
        hidden_size=HIDDEN,
        intermediate_size=MLP,
        num_attention_heads=HEADS,
        num_hidden_layers=VISION_LAYERS,
        projection_dim=HIDDEN,
    )
    return CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=HIDDEN
    )


def clip_processor(tokenizer: Any) -> Any:
    from transformers import CLIPImageProcessor, CLIPProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": syn.IMAGE_SIZE},
        crop_size={"height": syn.IMAGE_SIZE, "width": syn.IMAGE_SIZE},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


@torch.no_grad()
def clip_embed(
    model: Any, tokenizer: Any, images: Sequence[Any], texts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings."""
    model.eval()
    img = torch.cat(
        [
            model.get_image_features(pixel_values=pixels(images[i : i + 256])).pooler_output
            for i in range(0, len(images), 256)
        ]
    )
    tok = tokenizer(list(texts), padding=True, return_tensors="pt")
    txt = model.get_text_features(
        input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
    ).pooler_output
    return nn.functional.normalize(img, dim=-1), nn.functional.normalize(txt, dim=-1)


def _swap_relation(scene: syn.Scene) -> str:
    a, b = scene.objects
    wrong = syn.RELATIONS[scene.relation or ""][0]
    return f"{a.phrase()} {wrong} {b.phrase()} on a {scene.background} background"


def _swap_colours(scene: syn.Scene) -> str:
    a, b = scene.objects
    a2 = syn.SceneObject(a.shape, b.colour, a.size, a.x, a.y)
    b2 = syn.SceneObject(b.shape, a.colour, b.size, b.x, b.y)
    return syn.make_captions((a2, b2), scene.background, scene.relation)[0]


def evaluate_clip(
    model: Any, tokenizer: Any, scenes: Sequence[syn.Scene], probes: bool = True
) -> dict[str, float]:
    """Image->text top-1 (correct: the best caption is one of the image's own), text->image
    top-1, and two-way probes on the two-object scenes: the true caption against the same
    caption with the relation flipped ("above" <-> "below"), or with the colours swapped."""
    images = [syn.render(s) for s in scenes]
    texts = [c for s in scenes for c in s.captions]
    owner = torch.tensor([i for i, s in enumerate(scenes) for _ in s.captions])
    # zero-shot exactly as the match task scores it: default prompts, averaged per class
    prompts = class_prompts(syn.CATEGORIES)
    flat = [p for ps in prompts for p in ps]
    img, all_txt = clip_embed(model, tokenizer, images, [*texts, *flat])
    txt, ptxt = all_txt[: len(texts)], all_txt[len(texts) :]
    sims = img @ txt.T
    i2t = (owner[sims.argmax(dim=1)] == torch.arange(len(scenes))).float().mean().item()
    t2i = (sims.T.argmax(dim=1) == owner).float().mean().item()
    zeroshot = zeroshot_classify(
        img.numpy(),
        ptxt.view(len(prompts), len(prompts[0]), -1).numpy(),
        syn.CATEGORIES,
        [s.category for s in scenes],
    ).accuracy
    pairs = [s for s in scenes if len(s.objects) == 2]
    out = {
        "i2t_top1": i2t,
        "t2i_top1": t2i,
        "zeroshot_acc": zeroshot,
        "n_images": len(scenes),
        "n_captions": len(texts),
    }
    if not probes:
        return out
    pair_images = [syn.render(s) for s in pairs]
    for name, corrupt in (("relation_flip", _swap_relation), ("colour_swap", _swap_colours)):
        true = [s.captions[0] for s in pairs]
        wrong = [corrupt(s) for s in pairs]
        im, t_true = clip_embed(model, tokenizer, pair_images, true)
        _, t_wrong = clip_embed(model, tokenizer, pair_images, wrong)
        better = ((im * t_true).sum(-1) > (im * t_wrong).sum(-1)).float().mean().item()
        out[f"{name}_acc"] = better
    return out


def bare_captions(
    scenes: Sequence[syn.Scene], per_category: int, rng: random.Random
) -> dict[int, str]:
    """Which batch items get a bare-category caption instead of their own: up to
    ``per_category`` per category, one-object scenes first (the unambiguous ones), each with
    a different random template, so no two texts of a batch are equal (the loss would treat
    the copy as a negative)."""
    slots: dict[int, str] = {}
    order = sorted(range(len(scenes)), key=lambda i: len(scenes[i].objects))
    for category in syn.CATEGORIES:
        picks = [i for i in order if scenes[i].category == category][:per_category]
        templates = rng.sample(BARE_TEMPLATES, min(len(picks), len(BARE_TEMPLATES)))
        for i, template in zip(picks, templates, strict=False):
            slots[i] = template.format(category)
    return slots


def clip_batch(
    stream: TrainStream,
    tokenizer: Any,
    batch_size: int,
    rng: random.Random,
    bare_per_category: int = 0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[syn.Scene]]:
    """A batch of (image, one of its two captions), with at most one image per scene
    description (same captions, up to the paraphrase), since the loss treats the others as
    negatives; ``bare_per_category`` items per category take a bare-category caption."""
    seen: set[frozenset[str]] = set()
    scenes: list[syn.Scene] = []
    for s in stream.take(batch_size):
        key = frozenset(s.captions)
        if key not in seen:
            seen.add(key)
            scenes.append(s)
    texts = [rng.choice(s.captions) for s in scenes]
    for i, text in bare_captions(scenes, bare_per_category, rng).items():
        texts[i] = text
    tok = tokenizer(texts, padding=True, return_tensors="pt")
    return pixels([syn.render(s) for s in scenes]), dict(tok), scenes


def shape_targets(scenes: Sequence[syn.Scene]) -> torch.Tensor:
    """[B, C]: each scene's shapes, uniform over the shapes it shows. Nothing in a two-object
    image tells which object is the "main" one (the first named), so both shapes are right."""
    target = torch.zeros(len(scenes), len(syn.CATEGORIES))
    for i, s in enumerate(scenes):
        for o in s.objects:
            target[i, syn.CATEGORIES.index(o.shape)] = 1.0
    return target / target.sum(dim=1, keepdim=True)


def zeroshot_loss(
    model: Any, tokenizer: Any, image_embeds: torch.Tensor, target: torch.Tensor, rng: random.Random
) -> torch.Tensor:
    """Cross-entropy of zero-shot classification as the match task does it: each image
    against one bare-category prompt per class (a random template each), at CLIP's scale."""
    prompts = [rng.choice(BARE_TEMPLATES).format(c) for c in syn.CATEGORIES]
    tok = tokenizer(prompts, padding=True, return_tensors="pt")
    classes = model.get_text_features(
        input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
    ).pooler_output
    logits = model.logit_scale.exp() * image_embeds @ nn.functional.normalize(classes, dim=-1).T
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def build_clip(seed: int, init_from: Path | None = None) -> tuple[Any, Any]:
    """A fresh tiny CLIP (weights from ``seed``), or a saved one to fine-tune (``init_from``,
    a demo-clip directory: the same tokenizer and architecture)."""
    from transformers import CLIPModel

    tokenizer = load_clip_tokenizer()
    torch.manual_seed(seed)
    if init_from is not None:
        return CLIPModel.from_pretrained(init_from), tokenizer
    model = CLIPModel(clip_config(tokenizer))
    return model, tokenizer


def _lineage(init_from: Path) -> dict[str, Any]:
    """What a fine-tune started from: the directory and that model's training_info.json."""
    info_path = init_from / "training_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else None
    return {"directory": str(init_from), "training_info": info}


def train_clip(
    minutes: float,
    max_steps: int,
    bare_per_category: int = 0,
    zeroshot_weight: float = 0.0,
    seed: int = 0,
    init_from: Path | None = None,
    lr: float = 1e-3,
) -> tuple[Any, Any, dict[str, Any]]:
    model, tokenizer = build_clip(seed, init_from)
    rng = random.Random(seed)
    stream = TrainStream()
    val = val_scenes()
    opt = make_optimizer(model.parameters(), lr=lr)
    budget = Budget(seconds=minutes * 60, max_steps=max_steps, warmup_steps=100)
    curve: list[dict[str, float]] = []
    dropped = 0
    step = 0
    next_eval = 30.0
    while not budget.done(step):
        set_lr(opt, lr * budget.lr_factor(step))
        pix, tok, scenes = clip_batch(stream, tokenizer, 128, rng, bare_per_category)
        dropped += 128 - len(scenes)
        model.train()
        out = model(pixel_values=pix, **tok, return_loss=True)
        loss = out.loss
        if zeroshot_weight:
            target = shape_targets(scenes)
            zs = zeroshot_loss(model, tokenizer, out.image_embeds, target, rng)
            loss = loss + zeroshot_weight * zs
        optimizer_step(opt, loss, model.parameters())
        step += 1
        if budget.elapsed() >= next_eval or budget.done(step):
            next_eval += 90.0
            metrics = evaluate_clip(model, tokenizer, val, probes=False)
            curve.append({"step": step, "seconds": round(budget.elapsed(), 1), **metrics})
            logger.info(
                f"clip step {step} loss {loss.item():.3f} val i2t {metrics['i2t_top1']:.3f} "
                f"zero-shot {metrics['zeroshot_acc']:.3f} ({budget.elapsed():.0f}s)"
            )
    info = {
        # a fine-tune keeps its starting model's record: the whole lineage in one file
        "init_from": None if init_from is None else _lineage(init_from),
        "lr": lr,
        "steps": step,
        "batch_size": 128,
        "bare_captions_per_category_per_batch": bare_per_category,
        "bare_templates": list(BARE_TEMPLATES),
        "zeroshot_loss_weight": zeroshot_weight,
        "duplicates_dropped": dropped,
        "train_scenes_drawn": stream.drawn,
        "train_seconds": round(budget.elapsed(), 1),
        "val_curve": curve,
    }
    return model, tokenizer, info


def save_clip(model: Any, tokenizer: Any, out: Path) -> None:
    save_model(model, clip_processor(tokenizer), out)
    for name in ("vocab.json", "merges.txt"):  # the committed BPE, for other tooling
        shutil.copy(CLIP_BPE_DIR / name, out / name)


def finish_clip(
    name: str, model: Any, tokenizer: Any, out_root: Path, command: str, info: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate on the held-out split, save, verify the reload and write training_info.json."""
    demo = evaluate_clip(model, tokenizer, syn.demo_scenes())
    logger.info(f"{name} held-out: {demo}")
    out = out_root / name
    save_clip(model, tokenizer, out)
    diffs = verify_reload("clip", model, tokenizer, out)
    full = record(name, command, model, info, demo, diffs)
    write_info(out, full)
    return full


def run_clip(
    out_root: Path,
    minutes: float,
    max_steps: int,
    command: str,
    bare_per_category: int = 0,
    zeroshot_weight: float = 0.0,
    init_from: Path | None = None,
    lr: float = 1e-3,
) -> dict[str, Any]:
    t0 = time.monotonic()
    model, tokenizer, info = train_clip(
        minutes, max_steps, bare_per_category, zeroshot_weight, init_from=init_from, lr=lr
    )
    info["wall_seconds"] = round(time.monotonic() - t0, 1)
    return finish_clip("demo-clip", model, tokenizer, out_root, command, info)


def run_clip_random(out_root: Path, command: str) -> dict[str, Any]:
    model, tokenizer = build_clip(seed=0)
    return finish_clip("demo-clip-random", model, tokenizer, out_root, command, {"steps": 0})
