"""Adapters on tiny random models: each must equal the direct library call (plumbing, offline)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers/huggingface_hub read it

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")
import tiny_models as tm  # noqa: E402
import tiny_siglip  # noqa: E402
from PIL import Image  # noqa: E402

from mirada.domain import Device, Dtype  # noqa: E402
from mirada.vlm.base import (  # noqa: E402
    CAPTION,
    EMBED,
    PROTOCOLS,
    SCORE_PAIRS,
    CapabilityError,
    CaptionOptions,
    Embedder,
    LoadedModel,
    as_captioner,
    as_embedder,
    as_pair_scorer,
)
from mirada.vlm.families import FAMILIES  # noqa: E402
from mirada.vlm.registry import OPEN_CLIP_TAG_REPOS, load_adapter  # noqa: E402

ATOL = 1e-5
TEXTS = ["a red cat", "the dog on the left of a big blue square on a gray background", "star"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray((rng.random((40 + 4 * i, 48, 3)) * 255).astype("uint8")) for i in range(3)
    ]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="module")
def clip_dir(models_dir: Path) -> Path:
    return tm.make_hf_clip(models_dir / "clip")


@pytest.fixture(scope="module")
def blip_itm_dir(models_dir: Path) -> Path:
    return tm.make_blip(models_dir / "blip-itm", "itm")


@pytest.fixture(scope="module")
def blip_cap_dir(models_dir: Path) -> Path:
    return tm.make_blip(models_dir / "blip-cap", "caption")


@pytest.fixture(scope="module")
def flava_dir(models_dir: Path) -> Path:
    return tm.make_flava(models_dir / "flava")


@pytest.fixture(scope="module")
def open_clip_dir(models_dir: Path) -> Path:
    return tm.make_open_clip_dir(models_dir / "open-clip")


@pytest.fixture(scope="module")
def siglip_dirs(models_dir: Path) -> tuple[Path, Path]:
    """Tiny SigLIP and SigLIP 2 NaFlex (their fidelity is in tests/test_vlm_siglip.py)."""
    return (
        tiny_siglip.make_siglip(models_dir / "siglip"),
        tiny_siglip.make_siglip2_naflex(models_dir / "siglip2"),
    )


@pytest.fixture(scope="module")
def hf_vlm_dir(models_dir: Path) -> Path:
    """A tiny LLaVA (its fidelity and the other hf-vlm architectures: test_vlm_hf_vlm.py)."""
    import tiny_vlms

    return tiny_vlms.make_llava(models_dir / "hf-vlm")


def _norm(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.float(), dim=-1).numpy()


def _check_common(adapter: LoadedModel, images: list[Image.Image]) -> None:
    fp = adapter.fingerprint().as_dict()
    assert fp["model_id"] == adapter.model_id and fp["family"] == adapter.family
    assert fp["revision"] and fp["dtype"] == "fp32"
    assert fp["preprocessing"]["mean"] and fp["preprocessing"]["std"]
    assert adapter.num_params > 1000
    assert adapter.device is Device.cpu and adapter.dtype is Dtype.fp32
    # DataLoader workers pickle the transform.
    transform = pickle.loads(pickle.dumps(adapter.image_transform))
    assert torch.equal(transform(images[0]), adapter.image_transform(images[0]))
    assert adapter.image_transform(images[0]).shape == (3, tm.IMAGE, tm.IMAGE)
    if isinstance(adapter, Embedder):
        for emb in (adapter.encode_images(images), adapter.encode_texts(TEXTS)):
            assert emb.dtype == np.float32 and emb.shape[1] == adapter.embed_dim
            np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        assert adapter.encode_texts([]).shape == (0, adapter.embed_dim)


# --- transformers CLIP ---------------------------------------------------------------------


def test_hf_clip_equals_direct_calls(clip_dir: Path, images: list[Image.Image]) -> None:
    adapter = load_adapter(f"hf-clip:{clip_dir}", device=Device.cpu)
    assert adapter.capabilities == {EMBED} and adapter.embed_dim == 16
    _check_common(adapter, images)
    model = transformers.CLIPModel.from_pretrained(clip_dir).eval()
    processor = transformers.CLIPProcessor.from_pretrained(clip_dir)
    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        direct_img = _norm(model.get_image_features(pixel_values=pixels).pooler_output)
        # Padded to the model maximum: the adapter's longest-padding must give the same result.
        toks = processor.tokenizer(
            TEXTS, padding="max_length", max_length=32, truncation=True, return_tensors="pt"
        )
        direct_txt = _norm(model.get_text_features(**toks).pooler_output)
    assert np.allclose(adapter.encode_images(images), direct_img, atol=ATOL)
    assert np.allclose(adapter.encode_texts(TEXTS), direct_txt, atol=ATOL)
    # Each text alone (no padding at all) equals its row in a padded batch.
    assert np.allclose(adapter.encode_texts(TEXTS[2:]), direct_txt[2:], atol=ATOL)


def test_hf_clip_long_text_is_truncated(clip_dir: Path) -> None:
    adapter = load_adapter(f"hf-clip:{clip_dir}", device=Device.cpu)
    emb = adapter.encode_texts(["the cat " * 100])  # > 32 positions
    assert emb.shape == (1, 16) and np.isfinite(emb).all()


@pytest.mark.parametrize("dtype", [Dtype.bf16, Dtype.fp16])
def test_low_precision_outputs_float32(
    clip_dir: Path, images: list[Image.Image], dtype: Dtype
) -> None:
    ref = load_adapter(f"hf-clip:{clip_dir}", device=Device.cpu)
    adapter = load_adapter(f"hf-clip:{clip_dir}", device=Device.cpu, dtype=dtype)
    assert adapter.dtype is dtype and adapter.fingerprint().dtype is dtype
    assert adapter.fingerprint().as_dict()["dtype"] == dtype.value  # the stored string
    assert next(adapter.model.parameters()).dtype == {"bf16": torch.bfloat16,
                                                      "fp16": torch.float16}[dtype]  # fmt: skip
    for got, want in (
        (adapter.encode_images(images), ref.encode_images(images)),
        (adapter.encode_texts(TEXTS), ref.encode_texts(TEXTS)),
    ):
        assert got.dtype == np.float32
        assert np.allclose(got, want, atol=0.05)


# --- open_clip ------------------------------------------------------------------------------


def test_open_clip_local_dir_equals_direct(open_clip_dir: Path, images: list[Image.Image]) -> None:
    adapter = load_adapter(f"open-clip:local-dir:{open_clip_dir}", device=Device.cpu)
    assert adapter.embed_dim == 16 and adapter.trim
    _check_common(adapter, images)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{open_clip_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{open_clip_dir}")
    model.eval()
    with torch.inference_mode():
        pixels = torch.stack([preprocess(im) for im in images])
        direct_img = _norm(model.encode_image(pixels))
        tokens = tokenizer(TEXTS)
        assert tokens.shape[1] == 77
        direct_txt = _norm(model.encode_text(tokens))  # padded to 77, untrimmed
    assert np.allclose(adapter.encode_images(images), direct_img, atol=ATOL)
    # The adapter trims the context to the longest caption; the result must not change.
    assert adapter.tokenize(TEXTS).shape[1] < 20
    assert np.allclose(adapter.encode_texts(TEXTS), direct_txt, atol=ATOL)
    assert np.allclose(adapter.encode_texts(TEXTS[2:]), direct_txt[2:], atol=ATOL)


def test_open_clip_registered_arch_random_and_checkpoint(
    open_clip_dir: Path, models_dir: Path, images: list[Image.Image]
) -> None:
    arch = tm.register_open_clip_arch(models_dir / "configs")
    random_init = load_adapter(f"open-clip:{arch}", device=Device.cpu)
    assert random_init.fingerprint().revision is None
    assert random_init.encode_texts(TEXTS).shape == (3, 16)
    # The local-dir weights, loaded as a checkpoint file on the registered architecture.
    ckpt = open_clip_dir / "open_clip_model.safetensors"
    from_ckpt = load_adapter(f"open-clip:{arch}/{ckpt}", device=Device.cpu)
    from_dir = load_adapter(f"open-clip:local-dir:{open_clip_dir}", device=Device.cpu)
    assert np.allclose(from_ckpt.encode_images(images), from_dir.encode_images(images), atol=ATOL)
    assert np.allclose(from_ckpt.encode_texts(TEXTS), from_dir.encode_texts(TEXTS), atol=ATOL)
    assert from_ckpt.fingerprint().revision


def test_open_clip_catalogue_tags_match_open_clip() -> None:
    from open_clip.pretrained import get_pretrained_cfg

    from mirada.vlm.open_clip_family import hf_text_repo

    for (arch, tag), (repo, text_repo) in OPEN_CLIP_TAG_REPOS.items():
        assert get_pretrained_cfg(arch, tag)["hf_hub"].rstrip("/") == repo
        assert hf_text_repo(arch) == text_repo


# --- BLIP ----------------------------------------------------------------------------------


def test_blip_itm_embeddings_and_scores(blip_itm_dir: Path, images: list[Image.Image]) -> None:
    adapter = load_adapter(f"blip-itm:{blip_itm_dir}", device=Device.cpu)
    assert adapter.capabilities == {EMBED, SCORE_PAIRS} and adapter.embed_dim == 16
    _check_common(adapter, images)
    model = transformers.BlipForImageTextRetrieval.from_pretrained(blip_itm_dir).eval()
    processor = transformers.BlipProcessor.from_pretrained(blip_itm_dir)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    toks = processor.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        # BLIP's own contrastive path: cosine similarities of each image with each text.
        sims = torch.stack(
            [
                model(
                    input_ids=toks["input_ids"], attention_mask=toks["attention_mask"],
                    pixel_values=pixels[i : i + 1], use_itm_head=False,
                ).itm_score[0]
                for i in range(len(images))
            ]
        ).numpy()  # fmt: skip
        # ITM probabilities for each (image, candidate) pair, one forward per image.
        candidates = [TEXTS, TEXTS[:1], TEXTS[1:]]
        direct_itm = []
        for i, cands in enumerate(candidates):
            t = processor.tokenizer(cands, padding=True, return_tensors="pt")
            logits = model(
                input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                pixel_values=pixels[i : i + 1].expand(len(cands), -1, -1, -1),
            ).itm_score  # fmt: skip
            direct_itm.append(logits.softmax(-1)[:, 1].numpy())
    img, txt = adapter.encode_images(images), adapter.encode_texts(TEXTS)
    assert np.allclose(img @ txt.T, sims, atol=ATOL)
    got = adapter.score_candidates(pixels, candidates)
    assert [g.shape for g in got] == [(3,), (1,), (2,)]
    for g, want in zip(got, direct_itm, strict=True):
        assert g.dtype == np.float32 and np.allclose(g, want, atol=ATOL)
    pairs = adapter.score_pairs(images[:2], [TEXTS[0], TEXTS[0]])
    assert np.allclose(pairs, [direct_itm[0][0], direct_itm[1][0]], atol=ATOL)
    with pytest.raises(ValueError, match="candidate lists"):
        adapter.score_candidates(pixels, candidates[:2])


def test_blip_caption_equals_generate(blip_cap_dir: Path, images: list[Image.Image]) -> None:
    adapter = load_adapter(f"blip-caption:{blip_cap_dir}", device=Device.cpu)
    assert adapter.capabilities == {CAPTION} and not hasattr(adapter, "embed_dim")
    _check_common(adapter, images)
    model = transformers.BlipForConditionalGeneration.from_pretrained(blip_cap_dir).eval()
    processor = transformers.BlipProcessor.from_pretrained(blip_cap_dir)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = model.generate(pixel_values=pixels, num_beams=2, max_new_tokens=6, do_sample=False)
    direct = [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]
    options = CaptionOptions(num_beams=2, max_length=6)
    assert adapter.generate_captions(images, options) == direct
    assert all(len(c.split()) <= 6 for c in direct)
    prompted = adapter.generate_captions(images, CaptionOptions(prompt="a photo of", max_length=4))
    assert len(prompted) == 3 and not any(c.startswith("a photo of") for c in prompted)
    assert adapter.caption_pixels(pixels[:0]) == []


# --- FLAVA ---------------------------------------------------------------------------------


def test_flava_projected_and_mean(flava_dir: Path, images: list[Image.Image]) -> None:
    projected = load_adapter(f"flava:{flava_dir}", device=Device.cpu)
    mean = load_adapter(f"flava:{flava_dir}?pooling=mean", device=Device.cpu)
    _check_common(projected, images)
    _check_common(mean, images)
    assert projected.fingerprint().options == {"pooling": "projected"}
    assert mean.fingerprint().options == {"pooling": "mean"}
    assert projected.embed_dim == 16 and mean.embed_dim == 32
    model = transformers.FlavaModel.from_pretrained(flava_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(flava_dir)
    image_processor = transformers.AutoImageProcessor.from_pretrained(flava_dir)
    pixels = image_processor(images=images, return_tensors="pt")["pixel_values"]
    toks = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        img_tokens = model.get_image_features(pixel_values=pixels).pooler_output
        assert img_tokens.dim() == 3  # transformers 5 projects every token
        direct_img = _norm(img_tokens[:, 0])
        direct_txt = _norm(model.get_text_features(**toks).pooler_output[:, 0])
        mean_img = _norm(model.image_model(pixel_values=pixels).last_hidden_state.mean(1))
    assert np.allclose(projected.encode_images(images), direct_img, atol=ATOL)
    assert np.allclose(projected.encode_texts(TEXTS), direct_txt, atol=ATOL)
    assert np.allclose(mean.encode_images(images), mean_img, atol=ATOL)
    # Masked mean: a text's legacy embedding does not depend on what it is batched with.
    assert np.allclose(mean.encode_texts(TEXTS)[2:], mean.encode_texts(TEXTS[2:]), atol=ATOL)
    sim_projected = projected.encode_images(images) @ projected.encode_texts(TEXTS).T
    sim_mean = mean.encode_images(images) @ mean.encode_texts(TEXTS).T
    assert not np.allclose(sim_projected, sim_mean, atol=1e-3)


# --- the protocols each family implements ---------------------------------------------------


def test_each_family_implements_exactly_the_protocols_its_capabilities_name(
    clip_dir: Path,
    open_clip_dir: Path,
    blip_itm_dir: Path,
    blip_cap_dir: Path,
    flava_dir: Path,
    siglip_dirs: tuple[Path, Path],
    hf_vlm_dir: Path,
) -> None:
    model_ids = {
        "hf-clip": f"hf-clip:{clip_dir}",
        "open-clip": f"open-clip:local-dir:{open_clip_dir}",
        "blip-itm": f"blip-itm:{blip_itm_dir}",
        "blip-caption": f"blip-caption:{blip_cap_dir}",
        "flava": f"flava:{flava_dir}",
        "siglip": f"siglip:{siglip_dirs[0]}",
        "siglip2": f"siglip2:{siglip_dirs[1]}",
        "hf-vlm": f"hf-vlm:{hf_vlm_dir}",
    }
    assert set(model_ids) == set(FAMILIES), "a new family needs a tiny model in this test"
    for prefix, model_id in model_ids.items():
        adapter = load_adapter(model_id, device=Device.cpu)
        implemented = {cap for cap, protocol in PROTOCOLS.items() if isinstance(adapter, protocol)}
        assert implemented == FAMILIES[prefix].capabilities == adapter.capabilities, prefix
        for capability, narrow in (
            (EMBED, as_embedder),
            (SCORE_PAIRS, as_pair_scorer),
            (CAPTION, as_captioner),
        ):
            if capability in adapter.capabilities:
                assert narrow(adapter) is adapter
            else:
                why = f"model {re.escape(model_id)} cannot .* lacks the {capability} capability"
                with pytest.raises(CapabilityError, match=why):
                    narrow(adapter)
