"""The shipped demo models: loadable offline, standard, small, and as good as their card says.

They are loaded the way users load them, through the public model ids and
``mirada.vlm.registry.load_adapter``; the last tests also load the directories with plain
``transformers`` and check that this gives the training-time preprocessing exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mirada.demo import synthetic as syn
from mirada.demo.training.blip import parse_caption, score_captions
from mirada.demo.training.common import IMAGE_MEAN, IMAGE_STD, pixels
from mirada.domain import Device
from mirada.vlm.base import CaptionOptions

MODELS_DIR = Path(__file__).resolve().parents[1] / "shared/mirada/vlm/demo_models"
CLIP_ID, RANDOM_ID, BLIP_ID = (
    "hf-clip:mirada/demo-clip",
    "hf-clip:mirada/demo-clip-random",
    "blip-caption:mirada/demo-blip",
)


@pytest.fixture(scope="module", autouse=True)
def _offline_one_thread(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch_module.setenv("TRANSFORMERS_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def demo() -> tuple[list[syn.Scene], list[Any], list[str], np.ndarray]:
    scenes = syn.demo_scenes()
    images = [syn.render(s) for s in scenes]
    texts = [c for s in scenes for c in s.captions]
    owner = np.array([i for i, s in enumerate(scenes) for _ in s.captions])
    return scenes, images, texts, owner


def _load(model_id: str) -> Any:
    from mirada.vlm.registry import load_adapter

    return load_adapter(model_id, device=Device.cpu)


def _i2t_top1(img: np.ndarray, txt: np.ndarray, owner: np.ndarray) -> float:
    """Correct when the best-scoring caption is one of the image's own captions."""
    best = (img @ txt.T).argmax(axis=1)
    return float((owner[best] == np.arange(len(img))).mean())


def test_demo_clip_retrieves_held_out_captions(demo: tuple[Any, ...]) -> None:
    _, images, texts, owner = demo
    adapter = _load(CLIP_ID)
    img, txt = adapter.encode_images(images), adapter.encode_texts(texts)
    assert img.dtype == np.float32 and img.shape == (len(images), adapter.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    top1 = _i2t_top1(img, txt, owner)
    print(f"demo-clip held-out i2t top-1: {top1:.3f} ({len(images)} images, {len(texts)} captions)")
    assert top1 >= 0.9


def test_demo_clip_zero_shot_beats_chance(demo: tuple[Any, ...]) -> None:
    """The match task's zero-shot recipe (default prompts, averaged per class) on the held-out
    split: the demo CLIP was fine-tuned with a zero-shot loss on bare-category prompts, so it
    classifies shapes (MODEL_CARD.md, "Zero-shot")."""
    from mirada.metrics.retrieval import class_prompts, zeroshot_classify
    from mirada.metrics.stats import wilson_interval

    scenes, images, _, _ = demo
    adapter = _load(CLIP_ID)
    prompts = class_prompts(syn.CATEGORIES)
    flat = adapter.encode_texts([p for ps in prompts for p in ps])
    class_emb = flat.reshape(len(prompts), len(prompts[0]), -1)
    result = zeroshot_classify(
        adapter.encode_images(images), class_emb, syn.CATEGORIES, [s.category for s in scenes]
    )
    low, high = wilson_interval(int(result.correct.sum()), len(scenes))
    chance = 1 / len(syn.CATEGORIES)
    print(f"demo-clip held-out zero-shot: {result.accuracy:.3f} [{low:.3f}, {high:.3f}]")
    assert low > chance and result.accuracy >= 0.5


def test_random_clip_stays_near_chance(demo: tuple[Any, ...]) -> None:
    _, images, texts, owner = demo
    adapter = _load(RANDOM_ID)
    top1 = _i2t_top1(adapter.encode_images(images), adapter.encode_texts(texts), owner)
    print(f"demo-clip-random held-out i2t top-1: {top1:.3f} (chance {2 / len(texts):.3f})")
    assert top1 < 0.2


def test_demo_blip_names_the_main_object(demo: tuple[Any, ...]) -> None:
    scenes, images, _, _ = demo
    adapter = _load(BLIP_ID)
    captions = adapter.generate_captions(images, CaptionOptions(num_beams=3, max_length=20))
    assert len(captions) == len(images) and all(isinstance(c, str) for c in captions)
    assert not any("[" in c for c in captions)  # no [DEC]/[SEP]/[PAD] leaks into the text
    scores = score_captions(scenes, captions)
    print(f"demo-blip held-out: {scores}")
    assert scores["main_shape_colour_acc"] >= 0.8


def test_parse_caption() -> None:
    parsed = parse_caption("an orange star to the left of a small red circle on a gray background")
    assert parsed == {"objects": [("small", "red", "circle")], "relation": "to the left of"}
    parsed = parse_caption("a large orange star below a small red circle on a white background")
    assert parsed["objects"] == [("large", "orange", "star"), ("small", "red", "circle")]
    assert parsed["relation"] == "below"


# --- the saved directories, with plain transformers ----------------------------------------
@pytest.mark.parametrize("name", ["demo-clip", "demo-clip-random", "demo-blip"])
def test_saved_directory_is_small_standard_and_documented(name: str) -> None:
    d = MODELS_DIR / name
    files = {p.name for p in d.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert sum(p.stat().st_size for p in d.iterdir()) < 3_000_000
    info = json.loads((d / "training_info.json").read_text())
    assert info["model"] == name
    card = (MODELS_DIR / "MODEL_CARD.md").read_text()
    assert f"## {name}" in card


def test_clip_directory_loads_with_training_time_behaviour(demo: tuple[Any, ...]) -> None:
    from transformers import CLIPModel, CLIPProcessor

    _, images, texts, owner = demo
    d = MODELS_DIR / "demo-clip"
    model = CLIPModel.from_pretrained(d).eval()
    proc = CLIPProcessor.from_pretrained(d)
    tok = proc.tokenizer
    # end-of-text is what pooling looks for and what pads
    assert model.config.text_config.eos_token_id == tok.eos_token_id == tok.pad_token_id
    assert tok.convert_ids_to_tokens(tok("a red circle")["input_ids"]) == [
        "<|startoftext|>",
        "a</w>",
        "red</w>",
        "circle</w>",
        "<|endoftext|>",
    ]
    inputs = proc(text=texts, images=images, padding=True, return_tensors="pt")
    torch.testing.assert_close(inputs["pixel_values"], pixels(images), atol=1e-6, rtol=0)
    assert proc.image_processor.image_mean == pytest.approx(list(IMAGE_MEAN))
    assert proc.image_processor.image_std == pytest.approx(list(IMAGE_STD))
    with torch.no_grad():
        out = model(**inputs)
    img = torch.nn.functional.normalize(out.image_embeds, dim=-1).numpy()
    txt = torch.nn.functional.normalize(out.text_embeds, dim=-1).numpy()
    assert _i2t_top1(img, txt, owner) >= 0.9
    # and the registry's adapter gives the same embeddings
    adapter = _load(CLIP_ID)
    np.testing.assert_allclose(adapter.encode_images(images[:8]), img[:8], atol=1e-5)
    np.testing.assert_allclose(adapter.encode_texts(texts[:8]), txt[:8], atol=1e-5)


def test_blip_directory_is_a_standard_blip() -> None:
    from safetensors import safe_open
    from transformers import BlipForConditionalGeneration, BlipProcessor

    d = MODELS_DIR / "demo-blip"
    model = BlipForConditionalGeneration.from_pretrained(d).eval()
    with safe_open(d / "model.safetensors", "pt") as f:
        saved = set(f.keys())
    expected = set(model.state_dict())
    assert saved <= expected  # no leftover training-only heads
    assert not any("patch" in k and "head" in k for k in saved)
    proc = BlipProcessor.from_pretrained(d)
    tok = proc.tokenizer
    cfg = model.config.text_config
    assert tok.bos_token == "[DEC]" and cfg.bos_token_id == tok.bos_token_id
    assert cfg.sep_token_id == tok.sep_token_id and cfg.pad_token_id == tok.pad_token_id
    assert model.config.vision_config.initializer_range == pytest.approx(0.02)
    vocab = (d / "vocab.txt").read_text().split()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"[DEC]", "[ENC]"} <= set(vocab)
    images = [syn.render(s) for s in syn.demo_scenes(4)]
    pix = proc(images=images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pix, pixels(images), atol=1e-6, rtol=0)
    with torch.no_grad():
        ids = model.generate(pixel_values=pix, num_beams=3, max_length=20)
    assert (ids[:, 0] == tok.bos_token_id).all()
    texts = tok.batch_decode(ids, skip_special_tokens=True)
    assert all(t.strip() and "[" not in t for t in texts)
