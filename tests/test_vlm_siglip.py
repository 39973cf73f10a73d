"""SigLIP and SigLIP 2 (issue 24 §1): fidelity to transformers on tiny random models built
here (tokenizers built offline), the sigmoid calibration and the zero-shot probability, the
real-size presets, queue-time validation and CLIPScore's refusal."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers/huggingface_hub read it

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
import tiny_siglip as ts  # noqa: E402
from PIL import Image  # noqa: E402
from run_helpers import work  # noqa: E402

from mirada import queue  # noqa: E402
from mirada.domain import Device  # noqa: E402
from mirada.errors import MiradaError  # noqa: E402
from mirada.metrics import names  # noqa: E402
from mirada.metrics.report import build_match_report  # noqa: E402
from mirada.vlm.base import EMBED, SigmoidCalibrated, sigmoid_calibration  # noqa: E402
from mirada.vlm.errors import ModelIdError, ModelUnavailableError  # noqa: E402
from mirada.vlm.ids import DEMO_MODELS_DIR, parse_model_id, valid_forms  # noqa: E402
from mirada.vlm.registry import capabilities_for, list_catalogue, load_adapter  # noqa: E402

ATOL = 1e-5
TEXTS = ["A Red cat, on the LEFT!", "the dog on the left of a big blue square", "star"]
DATASET_IMAGES = 8  # for conftest's `dataset`: 4 shapes, so zero-shot has classes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    """Three aspect ratios, so NaFlex gives each image its own patch grid."""
    rng = np.random.default_rng(0)
    sizes = [(40, 48), (24, 64), (64, 32)]
    return [Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8")) for h, w in sizes]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("siglip")


@pytest.fixture(scope="module")
def siglip_dir(models_dir: Path) -> Path:
    return ts.make_siglip(models_dir / "siglip")


@pytest.fixture(scope="module")
def fixres_dir(models_dir: Path) -> Path:
    return ts.make_siglip2_fixres(models_dir / "siglip2-fixres")


@pytest.fixture(scope="module")
def naflex_dir(models_dir: Path) -> Path:
    return ts.make_siglip2_naflex(models_dir / "siglip2-naflex")


def _norm(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.float(), dim=-1).numpy()


def _direct(
    model_dir: Path, model_class: type, images: list[Image.Image], texts: list[str]
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The library's own path: the processor's output into get_image/text_features (both
    normalised), and the model's forward logits_per_image."""
    model = model_class.from_pretrained(model_dir).eval()
    processor = transformers.AutoProcessor.from_pretrained(model_dir)
    pixels = processor(images=images, return_tensors="pt")
    tokens = processor(
        text=texts, padding="max_length", max_length=ts.TEXT_LEN, truncation=True,
        return_tensors="pt",
    )  # fmt: skip
    with torch.inference_mode():
        img = _norm(model.get_image_features(**pixels).pooler_output)
        txt = _norm(model.get_text_features(**tokens).pooler_output)
        logits = model(**pixels, **tokens).logits_per_image
    return img, txt, logits


def _check_embedder(adapter: Any, images: list[Image.Image]) -> None:
    assert isinstance(adapter, SigmoidCalibrated)
    assert adapter.capabilities == {EMBED}
    for emb in (adapter.encode_images(images), adapter.encode_texts(TEXTS)):
        assert emb.dtype == np.float32 and emb.shape[1] == adapter.embed_dim == 32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert adapter.encode_texts([]).shape == (0, 32)
    transform = pickle.loads(pickle.dumps(adapter.image_transform))
    assert torch.equal(transform(images[0]), adapter.image_transform(images[0]))


def _check_calibration(adapter: Any, images: list[Image.Image], logits: torch.Tensor) -> None:
    """sigmoid_calibration reproduces the model's own logits: scale · cos + bias."""
    scale, bias = sigmoid_calibration(adapter)
    assert scale == pytest.approx(math.exp(2.0)) and bias == pytest.approx(-3.0)  # tiny_siglip
    cos = adapter.encode_images(images) @ adapter.encode_texts(TEXTS).T
    np.testing.assert_allclose(scale * cos + bias, logits.numpy(), atol=1e-4)


# --- SigLIP ---------------------------------------------------------------------------------


def test_siglip_equals_the_library(siglip_dir: Path, images: list[Image.Image]) -> None:
    adapter = load_adapter(f"siglip:{siglip_dir}", device=Device.cpu)
    _check_embedder(adapter, images)
    img, txt, logits = _direct(siglip_dir, transformers.SiglipModel, images, TEXTS)
    np.testing.assert_allclose(adapter.encode_images(images), img, atol=ATOL)
    np.testing.assert_allclose(adapter.encode_texts(TEXTS), txt, atol=ATOL)
    np.testing.assert_allclose(adapter.encode_texts(TEXTS[2:]), txt[2:], atol=ATOL)  # alone
    _check_calibration(adapter, images, logits)
    # SiglipTokenizer canonicalises (lower-case, no punctuation), as the model was trained
    np.testing.assert_allclose(adapter.encode_texts(["a red cat on the left"]), txt[:1], atol=ATOL)
    text = adapter.fingerprint().preprocessing["text"]
    assert text == {
        "padding": "max_length",
        "max_length": ts.TEXT_LEN,
        "lowercase": True,
        "tokenizer": "SiglipTokenizer",
    }


def test_padding_to_the_longest_text_would_change_the_embeddings(siglip_dir: Path) -> None:
    """The pitfall is real: the text tower pools the last position, which is padding."""
    model = transformers.SiglipModel.from_pretrained(siglip_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(siglip_dir)
    adapter = load_adapter(f"siglip:{siglip_dir}", device=Device.cpu)
    with torch.inference_mode():
        longest = tokenizer(TEXTS, padding="longest", return_tensors="pt")
        wrong = _norm(model.get_text_features(**longest).pooler_output)
    assert longest["input_ids"].shape[1] < ts.TEXT_LEN
    assert np.abs(adapter.encode_texts(TEXTS) - wrong).max() > 1e-2


# --- SigLIP 2 -------------------------------------------------------------------------------


def test_siglip2_fixres_lowercases_and_equals_the_library(
    fixres_dir: Path, images: list[Image.Image]
) -> None:
    adapter = load_adapter(f"siglip2:{fixres_dir}", device=Device.cpu)
    assert type(adapter.tokenizer).__name__ == "GemmaTokenizer"
    assert type(adapter.model).__name__ == "SiglipModel"
    _check_embedder(adapter, images)
    lower = [t.lower() for t in TEXTS]
    img, txt, logits = _direct(fixres_dir, transformers.SiglipModel, images, lower)
    np.testing.assert_allclose(adapter.encode_images(images), img, atol=ATOL)
    np.testing.assert_allclose(adapter.encode_texts(TEXTS), txt, atol=ATOL)
    _check_calibration(adapter, images, logits)
    # The Gemma tokenizer itself keeps case, so without the adapter's lower-casing the
    # embeddings would differ.
    tokenizer = transformers.AutoTokenizer.from_pretrained(fixres_dir)
    assert tokenizer(TEXTS[0])["input_ids"] != tokenizer(lower[0])["input_ids"]


def test_siglip2_naflex_equals_the_library(naflex_dir: Path, images: list[Image.Image]) -> None:
    from mirada.vlm.siglip import unpack_naflex

    adapter = load_adapter(f"siglip2:{naflex_dir}", device=Device.cpu)
    assert type(adapter.tokenizer).__name__ == "Siglip2Tokenizer"
    _check_embedder(adapter, images)
    # One tensor per image: the processor's patches plus a header row with the patch grid.
    processor = transformers.AutoProcessor.from_pretrained(naflex_dir)
    out = processor(images=images, return_tensors="pt")
    packed = torch.stack([adapter.image_transform(im) for im in images])
    assert packed.shape == (3, ts.NAFLEX_PATCHES + 1, 3 * ts.NAFLEX_PATCH**2)
    unpacked = unpack_naflex(packed)
    assert torch.equal(unpacked["pixel_values"], out["pixel_values"])
    assert torch.equal(unpacked["spatial_shapes"], out["spatial_shapes"])
    assert torch.equal(unpacked["pixel_attention_mask"], out["pixel_attention_mask"])
    assert len({tuple(s) for s in out["spatial_shapes"].tolist()}) == 3  # aspect ratios kept
    # Siglip2Tokenizer lower-cases on its own: mixed-case texts into the processor as given.
    img, txt, logits = _direct(naflex_dir, transformers.Siglip2Model, images, TEXTS)
    np.testing.assert_allclose(adapter.encode_images(images), img, atol=ATOL)
    np.testing.assert_allclose(adapter.encode_texts(TEXTS), txt, atol=ATOL)
    _check_calibration(adapter, images, logits)
    pre = adapter.fingerprint().preprocessing
    assert pre["patch_size"] == ts.NAFLEX_PATCH and pre["max_num_patches"] == ts.NAFLEX_PATCHES


def test_a_checkpoint_under_the_wrong_family_is_refused(
    siglip_dir: Path, fixres_dir: Path, naflex_dir: Path
) -> None:
    for model_id, use in (
        (f"siglip:{naflex_dir}", f"use siglip2:{naflex_dir}"),
        (f"siglip:{fixres_dir}", f"use siglip2:{fixres_dir}"),
        (f"siglip2:{siglip_dir}", f"use siglip:{siglip_dir}"),
    ):
        with pytest.raises(ModelIdError, match="use siglip") as refused:
            load_adapter(model_id, device=Device.cpu)
        assert use in str(refused.value)


def test_missing_weights_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not available offline"):
        load_adapter(f"siglip2:{tmp_path / 'nope'}", device=Device.cpu)


# --- zero-shot probability ------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_zeroshot_sigmoid_prob_is_the_models_probability_of_its_chosen_class() -> None:
    rng = np.random.default_rng(3)
    n, dim, labels = 12, 8, ["a", "b", "c"]
    img, txt = _unit(rng.normal(size=(n, dim))), _unit(rng.normal(size=(n, dim)))
    class_emb = _unit(rng.normal(size=(3, 2, dim)))  # two templates per class
    categories = [*labels * 3, None, None, None]
    common = {"class_emb": class_emb, "class_names": labels, "n_resamples": 50}
    args = (img, txt, np.arange(n), list(range(n)), list(range(n)), categories)
    scale, bias = 10.0, -2.0
    report = build_match_report(*args, sigmoid_calibration=(scale, bias), **common)
    plain = build_match_report(*args, **common)
    # by hand: templates normalised, averaged, renormalised; the best class's cosine
    avg = class_emb.astype(np.float64).mean(axis=1)
    avg /= np.linalg.norm(avg, axis=1, keepdims=True)
    best = (img.astype(np.float64) @ avg.T).max(axis=1)
    want = 1.0 / (1.0 + np.exp(-(scale * best + bias)))
    got = [item.details["zeroshot_prob"] for item in report.items]
    np.testing.assert_allclose(got, want, atol=1e-5)
    (metric,) = [m for m in report.metrics if m.name == names.ZEROSHOT_SIGMOID_PROB]
    assert metric.value == pytest.approx(want[:9].mean())  # categorised images only
    assert metric.ci_low is not None and metric.ci_low <= metric.value <= metric.ci_high
    assert metric.details["logit_bias"] == bias
    assert names.kind_of(names.ZEROSHOT_SIGMOID_PROB) is names.MetricKind.mean
    # without a calibration (CLIP-like models) nothing changes
    assert names.ZEROSHOT_SIGMOID_PROB not in {m.name for m in plain.metrics}
    assert all("zeroshot_prob" not in item.details for item in plain.items)
    with pytest.raises(MiradaError, match="finite"):
        build_match_report(*args, sigmoid_calibration=(math.inf, 0.0), **common)


def test_bundles_check_the_probability_range() -> None:
    from pydantic import ValidationError

    from mirada.bundles.schema import ItemDetails, MetricDoc

    assert ItemDetails.model_validate({"zeroshot_prob": 0.25}).zeroshot_prob == 0.25
    with pytest.raises(ValidationError):
        ItemDetails.model_validate({"zeroshot_prob": 1.5})
    MetricDoc.model_validate({"name": names.ZEROSHOT_SIGMOID_PROB, "value": 0.4})
    with pytest.raises(ValidationError, match="outside"):
        MetricDoc.model_validate({"name": names.ZEROSHOT_SIGMOID_PROB, "value": 1.2})


@pytest.mark.slow
def test_match_run_stores_the_zeroshot_probability(dataset: int, siglip_dir: Path) -> None:
    from sqlalchemy import select

    from mirada.db import read_session
    from mirada.db.models import ItemResult
    from mirada.queries.runs import run_detail

    run_id = queue.enqueue(dataset, f"siglip:{siglip_dir}", "match", batch_size=4)
    assert work() == 1
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]
    value = detail["metrics"][names.ZEROSHOT_SIGMOID_PROB]
    assert 0.0 < value < 1.0 and names.ZEROSHOT_ACCURACY in detail["metrics"]
    assert detail["model_fingerprint"]["preprocessing"]["text"]["padding"] == "max_length"
    with read_session() as s:
        rows = s.scalars(select(ItemResult).where(ItemResult.run_id == run_id)).all()
    scale, bias = math.exp(2.0), -3.0  # tiny_siglip's calibration
    probs = []
    for row in rows:
        details = row.details or {}
        top_cos = details["zeroshot_scores"][0][1]  # the predicted class's cosine
        want = 1.0 / (1.0 + math.exp(-(scale * top_cos + bias)))
        assert details["zeroshot_prob"] == pytest.approx(want, abs=1e-4)
        probs.append(details["zeroshot_prob"])
    assert value == pytest.approx(float(np.mean(probs)), abs=1e-4)  # every demo image has one
    from mirada.queries.results import item_drilldown  # the item view reads it per image

    shown = item_drilldown(run_id, rows[0].item_id)
    assert shown is not None and shown.zeroshot_prob == pytest.approx(probs[0])


# --- presets, ids, queue --------------------------------------------------------------------


def test_ids_forms_catalogue_and_capabilities() -> None:
    for model_id in ("siglip:google/siglip-base-patch16-224", "siglip2:./some/dir"):
        spec = parse_model_id(model_id)
        assert spec.family_entry.sigmoid_loss and capabilities_for(model_id) == {EMBED}
    forms = valid_forms()
    assert "siglip:<hf-repo-or-local-dir>" in forms and "siglip2:random:<preset>" in forms
    listed = {e.id: e for e in list_catalogue()}
    for model_id in (
        "siglip:google/siglip-base-patch16-224",
        "siglip2:google/siglip2-base-patch16-224",
        "siglip:random:siglip-base-patch16-224",
        "siglip2:random:siglip2-base-patch16-224",
    ):
        assert listed[model_id].capabilities == {EMBED}
    assert listed["siglip:random:siglip-base-patch16-224"].latency_only
    with pytest.raises(ModelIdError, match="unknown siglip2 preset"):
        parse_model_id("siglip2:random:siglip-base-patch16-224")


def test_shipped_preset_tokenizers_are_the_builders(tmp_path: Path) -> None:
    words = ["A Red cat, on the LEFT!", "two small green stars"]
    for name, build in (
        ("siglip-tokenizer", ts.write_siglip_tokenizer),
        ("siglip2-tokenizer", ts.write_siglip2_tokenizer),
    ):
        shipped = transformers.AutoTokenizer.from_pretrained(DEMO_MODELS_DIR / name)
        built = build(tmp_path / name)
        assert type(shipped) is type(built) and shipped.get_vocab() == built.get_vocab()
        assert shipped(words)["input_ids"] == built(words)["input_ids"]


def test_preset_builds_and_embeds_at_real_size() -> None:
    """The SigLIP preset has google/siglip-base-patch16-224's 203M parameters (counted in
    tests/test_vlm_presets.py) and embeds at 224 px with 64-token texts."""
    import gc

    adapter = load_adapter("siglip:random:siglip-base-patch16-224", device=Device.cpu, seed=1)
    assert 200e6 < adapter.num_params < 206e6, adapter.num_params
    pixels = adapter.image_transform(Image.new("RGB", (300, 200), "red"))
    assert pixels.shape == (3, 224, 224)
    tokens = adapter.tokenize(["a red cat"])
    assert tokens["input_ids"].shape == (1, 64)
    assert adapter.encode_texts(["a red cat"]).shape == (1, 768)
    assert adapter.fingerprint().options["init_seed"] == 1
    del adapter
    gc.collect()


@pytest.mark.parametrize(
    ("task", "why"),
    [("caption", "cannot run task .caption."), ("match", "latency only")],
)
def test_queue_refuses_impossible_tasks(dataset: int, task: str, why: str) -> None:
    model = "siglip:random:siglip-base-patch16-224" if task == "match" else "siglip:some/repo"
    with pytest.raises(MiradaError, match=why):
        queue.enqueue(dataset, model, task)


def test_clipscore_with_a_siglip_scorer_is_refused(dataset: int, models: dict[str, str]) -> None:
    from mirada.run_options import CaptionRunOptions

    options = CaptionRunOptions(clipscore_model="siglip2:google/siglip2-base-patch16-224")
    with pytest.raises(MiradaError, match=r"CLIPScore is defined for CLIP's cosine scale"):
        queue.enqueue(dataset, models["caption"], "caption", options=options)


def test_open_clip_siglip_needs_its_tokenizer_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_clip's SigLIP configs take their tokenizer from a Hub repo (timm/ViT-B-16-SigLIP):
    loading fails at once, naming it; with the repo's config and tokenizer files cached it
    passes (checked by hand: open-clip:ViT-B-16-SigLIP then loads and pads texts to 64)."""
    from mirada.vlm.open_clip_family import missing_text_repo

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    arch = "ViT-B-16-SigLIP"
    with pytest.raises(ModelUnavailableError, match="timm/ViT-B-16-SigLIP") as refused:
        load_adapter(f"open-clip:{arch}/webli", device=Device.cpu)
    assert "tokenizer" in str(refused.value) and "does not bundle" in str(refused.value)
    from mirada.vlm.registry import available_offline  # random init needs the tokenizer too

    assert not available_offline(f"open-clip:{arch}")
    assert available_offline("open-clip:ViT-B-32")  # open_clip bundles CLIP's BPE
    snapshot = tmp_path / "hub/models--timm--ViT-B-16-SigLIP/snapshots/abc"
    snapshot.mkdir(parents=True)
    (snapshot / "tokenizer_config.json").write_text("{}")
    assert missing_text_repo(arch)  # transformers 5's AutoTokenizer reads config.json first
    (snapshot / "config.json").write_text('{"architecture": "vit_base_patch16_siglip_224"}')
    assert missing_text_repo(arch) is None
    assert available_offline(f"open-clip:{arch}")
    assert missing_text_repo("xlm-roberta-base-ViT-B-32")  # a text tower needs config.json
