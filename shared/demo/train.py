"""Train the tiny demo models on the synthetic shapes dataset (CPU, minutes).

    python -m mirada.demo.train [clip|clip-random|blip|all] [--minutes M] [--out DIR]

* ``demo-clip``: a tiny ``CLIPModel`` (contrastive, batch 128, duplicate scenes removed from
  each batch because CLIP's loss treats them as negatives), with its own byte-level BPE
  tokenizer (``shared/demo/assets/clip-bpe``, trained once with ``tokenizers`` and committed,
  since BPE training is not reproducible).
* ``demo-clip-random``: the same architecture, untrained (seed 0): the chance baseline.
* ``demo-blip``: a tiny ``BlipForConditionalGeneration`` captioner with a hand-written BERT
  ``vocab.txt``. It trains with an extra per-patch shape/colour cross-entropy on the vision
  tokens; those heads live outside the BLIP model and are not saved, so the saved model is a
  standard BLIP.

Each run trains until its wall-clock budget (``--minutes``) or ``--max-steps``, whichever comes
first (the learning-rate schedule follows whichever is further along), evaluates on the
held-out demo split, saves with ``save_pretrained`` (safetensors), checks that a fresh process
with ``HF_HUB_OFFLINE=1`` reloads it (model + processor) to identical outputs, and writes
``training_info.json`` next to the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mirada.demo import synthetic as syn

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "shared" / "vlm" / "demo_models"
CLIP_BPE_DIR = Path(__file__).resolve().parent / "assets" / "clip-bpe"

# The normalisation used in training; the saved image processors use the same values.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, the processors' default
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_TEXT_LEN = 32
VAL_SEED = 777
VAL_SIZE = 200
SOT, EOT = "<|startoftext|>", "<|endoftext|>"

# Architecture shared by both models (ENVIRONMENT.md, "Training tiny demo models").
HIDDEN, MLP, HEADS, VISION_LAYERS, TEXT_LAYERS, PATCH = 64, 256, 4, 3, 2, 8


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def pixels(images: Sequence[Any]) -> torch.Tensor:
    """PIL images -> normalised float32 [B, 3, 64, 64], as CLIP/BLIP image processors do."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() * (1.0 / 255.0)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class TrainStream:
    """The training stream of scenes (demo captions excluded), counted."""

    def __init__(self, seed: int = syn.TRAIN_SEED) -> None:
        self._it = syn.iter_train_scenes(seed)
        self.drawn = 0

    def take(self, n: int) -> list[syn.Scene]:
        self.drawn += n
        return [next(self._it) for _ in range(n)]


def val_scenes() -> list[syn.Scene]:
    """A monitoring set from its own seed (never the demo split, which is only for the end)."""
    return syn.generate_scenes(
        VAL_SIZE, VAL_SEED, unique=True, exclude_captions=syn.demo_captions()
    )


def caption_vocabulary() -> list[str]:
    """Every word any caption can use, sorted."""
    words = {"a", "an", "on", "background", "with"}
    words |= set(syn.SHAPES) | set(syn.COLOURS) | set(syn.SIZES) | set(syn.BACKGROUNDS)
    for rel, (conv, _) in syn.RELATIONS.items():
        words |= set(rel.split()) | set(conv.split())
    return sorted(words)


# --------------------------------------------------------------------------------------------
# schedule / loop helpers
# --------------------------------------------------------------------------------------------
@dataclass
class Budget:
    seconds: float
    max_steps: int
    warmup_steps: int = 100
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, step: int) -> float:
        return max(step / self.max_steps, self.elapsed() / self.seconds)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0

    def lr_factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, self.progress(step))))


def make_optimizer(params: Sequence[nn.Parameter] | Any, lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.05)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------
def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's byte -> printable character table, in CLIP's vocabulary order."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def train_clip_bpe(out_dir: Path = CLIP_BPE_DIR) -> Path:
    """Train a CLIP-style BPE on the caption vocabulary; write vocab.json + merges.txt.

    The merges come from ``tokenizers``' trainer; the vocabulary is laid out as OpenAI CLIP's
    is (256 byte symbols, the same with ``</w>``, one token per merge, then ``<|startoftext|>``
    and ``<|endoftext|>``), so any text tokenizes without unknown tokens. Not reproducible
    between runs: run once and commit the files.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=EOT))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=[SOT, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    corpus = [c for s in syn.train_scenes(5000) for c in s.captions]
    tok.train_from_iterator(corpus, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        tok.model.save(tmp)
        lines = Path(tmp, "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
    byte_chars = _bytes_to_unicode()
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [SOT, EOT]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    return out_dir


def load_clip_tokenizer(bpe_dir: Path = CLIP_BPE_DIR) -> Any:
    from transformers import CLIPTokenizer

    if not (bpe_dir / "vocab.json").exists():
        log(f"no committed BPE in {bpe_dir}: training one (commit it)")
        train_clip_bpe(bpe_dir)
    vocab = json.loads((bpe_dir / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split(" "))
        for line in (bpe_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TEXT_LEN)
    for cap in syn.demo_scenes(20)[0].captions:  # every word is one token, nothing unknown
        ids = tok(cap)["input_ids"]
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id, ids
        assert len(ids) == len(cap.split()) + 2, (cap, tok.convert_ids_to_tokens(ids))
    return tok


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
    img, txt = clip_embed(model, tokenizer, images, texts)
    sims = img @ txt.T
    i2t = (owner[sims.argmax(dim=1)] == torch.arange(len(scenes))).float().mean().item()
    t2i = (sims.T.argmax(dim=1) == owner).float().mean().item()
    pairs = [s for s in scenes if len(s.objects) == 2]
    out = {"i2t_top1": i2t, "t2i_top1": t2i, "n_images": len(scenes), "n_captions": len(texts)}
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


def clip_batch(
    stream: TrainStream, tokenizer: Any, batch_size: int, rng: random.Random
) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """A batch of (image, one of its two captions), with at most one image per scene
    description (same captions, up to the paraphrase), since the loss treats the others as
    negatives."""
    seen: set[frozenset[str]] = set()
    scenes: list[syn.Scene] = []
    for s in stream.take(batch_size):
        key = frozenset(s.captions)
        if key not in seen:
            seen.add(key)
            scenes.append(s)
    texts = [rng.choice(s.captions) for s in scenes]
    tok = tokenizer(texts, padding=True, return_tensors="pt")
    return pixels([syn.render(s) for s in scenes]), dict(tok), batch_size - len(scenes)


def build_clip(seed: int) -> tuple[Any, Any]:
    from transformers import CLIPModel

    tokenizer = load_clip_tokenizer()
    torch.manual_seed(seed)
    model = CLIPModel(clip_config(tokenizer))
    return model, tokenizer


def train_clip(minutes: float, max_steps: int, seed: int = 0) -> tuple[Any, Any, dict[str, Any]]:
    model, tokenizer = build_clip(seed)
    rng = random.Random(seed)
    stream = TrainStream()
    val = val_scenes()
    opt = make_optimizer(model.parameters(), lr=1e-3)
    budget = Budget(seconds=minutes * 60, max_steps=max_steps, warmup_steps=100)
    curve: list[dict[str, float]] = []
    dropped = 0
    step = 0
    next_eval = 30.0
    while not budget.done(step):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * budget.lr_factor(step)
        pix, tok, n_dup = clip_batch(stream, tokenizer, 128, rng)
        dropped += n_dup
        model.train()
        loss = model(pixel_values=pix, **tok, return_loss=True).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if budget.elapsed() >= next_eval or budget.done(step):
            next_eval += 90.0
            metrics = evaluate_clip(model, tokenizer, val, probes=False)
            curve.append({"step": step, "seconds": round(budget.elapsed(), 1), **metrics})
            log(
                f"clip step {step} loss {loss.item():.3f} val i2t {metrics['i2t_top1']:.3f} "
                f"({budget.elapsed():.0f}s)"
            )
    info = {
        "steps": step,
        "batch_size": 128,
        "duplicates_dropped": dropped,
        "train_scenes_drawn": stream.drawn,
        "train_seconds": round(budget.elapsed(), 1),
        "val_curve": curve,
    }
    return model, tokenizer, info


def save_clip(model: Any, tokenizer: Any, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, safe_serialization=True)
    clip_processor(tokenizer).save_pretrained(out)
    for name in ("vocab.json", "merges.txt"):  # the committed BPE, for other tooling
        shutil.copy(CLIP_BPE_DIR / name, out / name)


# --------------------------------------------------------------------------------------------
# BLIP
# --------------------------------------------------------------------------------------------
BLIP_SPECIALS_HEAD = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BLIP_SPECIALS_TAIL = ["[DEC]", "[ENC]"]


def write_blip_vocab(path: Path) -> Path:
    tokens = BLIP_SPECIALS_HEAD + caption_vocabulary() + BLIP_SPECIALS_TAIL
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def blip_tokenizer(vocab_txt: Path) -> Any:
    from transformers import BertTokenizer

    return BertTokenizer(
        vocab=str(vocab_txt),
        bos_token="[DEC]",
        extra_special_tokens=["[ENC]"],
        model_max_length=MAX_TEXT_LEN,
    )


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
        for g in opt.param_groups:
            g["lr"] = 1e-3 * budget.lr_factor(step)
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
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if budget.elapsed() >= next_eval or budget.done(step):
            next_eval += 150.0
            metrics = evaluate_blip(model, tokenizer, val)
            curve.append({"step": step, "seconds": round(budget.elapsed(), 1), **metrics})
            log(
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
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out, safe_serialization=True)
    blip_processor(tokenizer).save_pretrained(out)
    shutil.copy(vocab_txt, out / "vocab.txt")  # the hand-written vocabulary, for other tooling


# --------------------------------------------------------------------------------------------
# reload check (fresh process, offline, through the public from_pretrained entry points)
# --------------------------------------------------------------------------------------------
REF_SCENES = 8


def _reference_inputs() -> tuple[list[Any], list[str]]:
    scenes = syn.demo_scenes(REF_SCENES)
    return [syn.render(s) for s in scenes], [c for s in scenes for c in s.captions]


def reference_outputs(kind: str, model: Any, tokenizer: Any) -> dict[str, np.ndarray]:
    """What the in-memory model gives on fixed inputs, with training-time preprocessing."""
    images, texts = _reference_inputs()
    model.eval()
    with torch.no_grad():
        if kind == "clip":
            tok = tokenizer(texts, padding=True, return_tensors="pt")
            out = model(pixel_values=pixels(images), **tok)
            return {
                "image_embeds": out.image_embeds.numpy(),
                "text_embeds": out.text_embeds.numpy(),
                "logits_per_image": out.logits_per_image.numpy(),
            }
        tok = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        ids = tok["input_ids"].clone()
        ids[:, 0] = tokenizer.bos_token_id
        pix = pixels(images).repeat_interleave(2, dim=0)
        logits = model(pixel_values=pix, input_ids=ids, attention_mask=tok["attention_mask"]).logits
        gen = model.generate(pixel_values=pixels(images), num_beams=3, max_length=20)
        return {"logits": logits.numpy(), "generated": gen.numpy()}


def reloaded_outputs(kind: str, model_dir: Path) -> dict[str, np.ndarray]:
    """The same, from a model and processor loaded with ``from_pretrained``."""
    images, texts = _reference_inputs()
    with torch.no_grad():
        if kind == "clip":
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(model_dir).eval()
            proc = CLIPProcessor.from_pretrained(model_dir)
            inputs = proc(text=texts, images=images, padding=True, return_tensors="pt")
            out = model(**inputs)
            return {
                "image_embeds": out.image_embeds.numpy(),
                "text_embeds": out.text_embeds.numpy(),
                "logits_per_image": out.logits_per_image.numpy(),
            }
        from transformers import BlipForConditionalGeneration, BlipProcessor

        model = BlipForConditionalGeneration.from_pretrained(model_dir).eval()
        proc = BlipProcessor.from_pretrained(model_dir)
        pix = proc(images=images, return_tensors="pt")["pixel_values"]
        tok = proc.tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        ids = tok["input_ids"].clone()
        ids[:, 0] = proc.tokenizer.bos_token_id
        logits = model(
            pixel_values=pix.repeat_interleave(2, dim=0),
            input_ids=ids,
            attention_mask=tok["attention_mask"],
        ).logits
        gen = model.generate(pixel_values=pix, num_beams=3, max_length=20)
        return {"logits": logits.numpy(), "generated": gen.numpy()}


def verify_reload(kind: str, model: Any, tokenizer: Any, model_dir: Path) -> dict[str, float]:
    """Compare the in-memory model with a fresh offline process's reload; raise on mismatch."""
    ref = reference_outputs(kind, model, tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, got_path = Path(tmp, "ref.npz"), Path(tmp, "got.npz")
        np.savez(ref_path, **ref)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "mirada.demo.train", "_reload", kind, str(model_dir)]
        subprocess.run([*cmd, str(got_path)], check=True, env=env, cwd=REPO_ROOT)
        got = dict(np.load(got_path))
    for k in ref:
        if ref[k].shape != got[k].shape:
            raise RuntimeError(f"{model_dir.name} reloads differently: {k} has another shape")
    diffs = {k: float(np.abs(ref[k].astype(np.float64) - got[k]).max()) for k in ref}
    log(f"reload check {model_dir.name}: max abs diffs {diffs}")
    for k, d in diffs.items():  # float noise only (logits are scaled up to ~100x)
        if d > 1e-5 * max(1.0, float(np.abs(ref[k]).max())):
            raise RuntimeError(f"{model_dir.name} reloads differently: {k} differs by {d}")
    return diffs


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def _environment() -> dict[str, str]:
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": str(torch.get_num_threads()),
        "machine": platform.machine(),
    }


def _write_info(out: Path, info: dict[str, Any]) -> None:
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _finish_clip(
    name: str, model: Any, tokenizer: Any, out_root: Path, command: str, info: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate on the held-out split, save, verify the reload and write training_info.json."""
    demo = evaluate_clip(model, tokenizer, syn.demo_scenes())
    log(f"{name} held-out: {demo}")
    out = out_root / name
    save_clip(model, tokenizer, out)
    diffs = verify_reload("clip", model, tokenizer, out)
    full = {
        "model": name,
        "command": command,
        "seed": 0,
        "num_params": _num_params(model),
        **info,
        "demo_eval": demo,
        "reload_max_abs_diff": diffs,
        "environment": _environment(),
    }
    _write_info(out, full)
    return full


def run_clip(out_root: Path, minutes: float, max_steps: int, command: str) -> dict[str, Any]:
    t0 = time.monotonic()
    model, tokenizer, info = train_clip(minutes, max_steps)
    info["wall_seconds"] = round(time.monotonic() - t0, 1)
    return _finish_clip("demo-clip", model, tokenizer, out_root, command, info)


def run_clip_random(out_root: Path, command: str) -> dict[str, Any]:
    model, tokenizer = build_clip(seed=0)
    return _finish_clip("demo-clip-random", model, tokenizer, out_root, command, {"steps": 0})


def run_blip(
    out_root: Path, minutes: float, max_steps: int, command: str, aux_weight: float
) -> dict[str, Any]:
    t0 = time.monotonic()
    model, tokenizer, info, vocab_txt = train_blip(minutes, max_steps, aux_weight=aux_weight)
    demo = evaluate_blip(model, tokenizer, syn.demo_scenes())
    log(f"demo-blip held-out: {demo}")
    out = out_root / "demo-blip"
    save_blip(model, tokenizer, vocab_txt, out)
    diffs = verify_reload("blip", model, tokenizer, out)
    info = {
        "model": "demo-blip",
        "command": command,
        "seed": 0,
        "num_params": _num_params(model),
        **info,
        "wall_seconds": round(time.monotonic() - t0, 1),
        "demo_eval": demo,
        "reload_max_abs_diff": diffs,
        "environment": _environment(),
    }
    _write_info(out, info)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_reload"]:  # internal: the fresh-process half of verify_reload
        _, kind, model_dir, out_path = argv
        np.savez(out_path, **reloaded_outputs(kind, Path(model_dir)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m mirada.demo.train", description=__doc__)
    parser.add_argument("what", choices=["clip", "clip-random", "blip", "all"], nargs="?")
    parser.add_argument("--minutes", type=float, help="wall-clock budget per model")
    parser.add_argument("--max-steps", type=int, help="step budget per model")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # One thread: on our shared 2-core machines, two threads ran 5-10x slower per step
    # whenever other processes were busy (oversubscription).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--aux-weight", type=float, default=1.0, help="BLIP patch-loss weight")
    parser.add_argument("--train-bpe", action="store_true", help="retrain the CLIP BPE files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m mirada.demo.train " + " ".join(argv)
    if args.train_bpe:
        log(f"wrote {train_clip_bpe()}")
    what = args.what or ("all" if not args.train_bpe else None)
    if what is None:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "clip": lambda: run_clip(args.out, args.minutes or 8.0, args.max_steps or 6000, command),
        "clip-random": lambda: run_clip_random(args.out, command),
        "blip": lambda: run_blip(
            args.out, args.minutes or 15.0, args.max_steps or 12000, command, args.aux_weight
        ),
    }
    for name in ["clip", "clip-random", "blip"] if what == "all" else [what]:
        info = runners[name]()
        log(f"{name}: {json.dumps(info['demo_eval'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
