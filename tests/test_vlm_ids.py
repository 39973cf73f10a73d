"""Model ids, capabilities, catalogue and `mirada models`: no model library is imported here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirada.domain import Device
from mirada.errors import MiradaError
from mirada.vlm.base import CAPTION, EMBED, SCORE_PAIRS
from mirada.vlm.catalogue import CATALOGUE, list_catalogue
from mirada.vlm.errors import ModelIdError
from mirada.vlm.families import FAMILIES, Family, Layout
from mirada.vlm.ids import DEMO_MODELS_DIR, parse_model_id
from mirada.vlm.presets import PRESETS
from mirada.vlm.registry import available_offline, capabilities_for, load_adapter

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    # An empty HF cache, and no network: nothing here may download.
    return {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}


@pytest.mark.parametrize(
    ("model_id", "family", "source", "pretrained"),
    [
        ("hf-clip:openai/clip-vit-base-patch32", "hf-clip", "openai/clip-vit-base-patch32", None),
        ("open-clip:ViT-B-32/laion2b_s34b_b79k", "open-clip", "ViT-B-32", "laion2b_s34b_b79k"),
        ("open-clip:ViT-B-32", "open-clip", "ViT-B-32", None),
        ("open-clip:ViT-B-32//ckpt/x.safetensors", "open-clip", "ViT-B-32", "/ckpt/x.safetensors"),
        ("blip-itm:Salesforce/blip-itm-base-coco", "blip-itm",
         "Salesforce/blip-itm-base-coco", None),
        ("blip-caption:Salesforce/blip-image-captioning-base", "blip-caption",
         "Salesforce/blip-image-captioning-base", None),
        ("flava:facebook/flava-full", "flava", "facebook/flava-full", None),
    ],
)  # fmt: skip
def test_parse_valid(model_id: str, family: str, source: str, pretrained: str | None) -> None:
    spec = parse_model_id(model_id)
    assert (spec.family, spec.source, spec.pretrained) == (family, source, pretrained)
    assert spec.model_id == model_id
    assert spec.local_dir is None


def test_parse_local_dirs_and_demo(tmp_path: Path) -> None:
    spec = parse_model_id(f"hf-clip:{tmp_path}")
    assert spec.local_dir == tmp_path.resolve()
    oc = parse_model_id(f"open-clip:local-dir:{tmp_path}")
    assert oc.local_dir == tmp_path.resolve() and oc.pretrained is None
    demo = parse_model_id("hf-clip:mirada/demo-clip")
    assert demo.is_demo and demo.local_dir == DEMO_MODELS_DIR / "demo-clip"
    assert (
        parse_model_id("blip-caption:mirada/demo-blip").local_dir == DEMO_MODELS_DIR / "demo-blip"
    )


def test_parse_pooling_option() -> None:
    mean = parse_model_id("flava:facebook/flava-full?pooling=mean")
    assert mean.option("pooling") == "mean"
    assert mean.model_id == "flava:facebook/flava-full?pooling=mean"
    default = parse_model_id("flava:facebook/flava-full?pooling=projected")
    # The default is dropped from the canonical id, so both spellings share caches and results.
    assert default.option("pooling") == "projected"
    assert default.model_id == "flava:facebook/flava-full"
    assert parse_model_id("flava:facebook/flava-full").option("pooling") == "projected"


@pytest.mark.parametrize(
    ("model_id", "needle"),
    [
        ("align:kakaobrain/align-base", "unknown family 'align'"),
        ("openai/clip-vit-base-patch32", "missing '<family>:' prefix"),
        ("hf-clip:", "nothing after the family prefix"),
        ("", "empty"),
        ("hf-clip:a/b/c", "neither an 'org/name' repo nor a path"),
        ("hf-clip:org/../x", "neither"),
        ("open-clip:ViT-B-32/", "empty pretrained tag"),
        ("open-clip:bad arch/x", "bad open_clip architecture"),
        ("open-clip:local-dir:", "empty path"),
        ("flava:facebook/flava-full?pooling=max", "expected one of projected, mean"),
        ("flava:facebook/flava-full?pool=mean", "unknown option 'pool'"),
        ("flava:facebook/flava-full?pooling", "not key=value"),
        ("hf-clip:openai/clip-vit-base-patch32?pooling=mean", "unknown option 'pooling'"),
        ("hf-clip:mirada/../etc", "bad demo model name"),
    ],
)
def test_parse_invalid_names_valid_forms(model_id: str, needle: str) -> None:
    with pytest.raises(ModelIdError) as info:
        parse_model_id(model_id)
    message = str(info.value)
    assert needle in message
    assert "valid model ids" in message and "open-clip:<arch>/<pretrained-tag>" in message
    assert isinstance(info.value, MiradaError)


def test_capabilities_for_without_loading() -> None:
    assert capabilities_for("hf-clip:openai/clip-vit-base-patch32") == {EMBED}
    assert capabilities_for("open-clip:ViT-B-32") == {EMBED}
    assert capabilities_for("blip-itm:Salesforce/blip-itm-base-coco") == {EMBED, SCORE_PAIRS}
    assert capabilities_for("blip-caption:mirada/demo-blip") == {CAPTION}
    assert CAPTION not in capabilities_for("flava:facebook/flava-full?pooling=mean")
    with pytest.raises(ModelIdError):
        capabilities_for("nope:x")


def test_catalogue_is_consistent() -> None:
    ids = [e.id for e in CATALOGUE]
    assert len(ids) == len(set(ids)) == 15 + len(PRESETS)  # + the latency-only presets
    assert list_catalogue() == CATALOGUE and list_catalogue() is not CATALOGUE
    for entry in CATALOGUE:
        spec = parse_model_id(entry.id)
        assert spec.model_id == entry.id
        assert spec.family == entry.family
        assert entry.capabilities == FAMILIES[entry.family].capabilities
        assert entry.capabilities == capabilities_for(entry.id)


def test_every_family_has_an_adapter_module() -> None:
    """Read without importing (torch): each table row names a module defining `load`."""
    import ast

    vlm = REPO / "shared" / "mirada" / "vlm"
    for family in FAMILIES.values():
        tree = ast.parse((vlm / f"{family.module}.py").read_text())
        loads = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "load"]
        assert loads, f"mirada.vlm.{family.module} has no load(spec, device, dtype)"
        assert family.forms and family.capabilities


def test_a_new_family_is_one_table_entry_and_one_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    module = types.ModuleType("mirada.vlm.toy_family")
    module.load = lambda spec, device, dtype: ("loaded", spec.model_id, device, dtype)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mirada.vlm.toy_family", module)
    toy = Family(
        "toy",
        "toy_family",
        frozenset({CAPTION}),
        Layout.transformers,
        (("<hf-repo-or-local-dir>", "e.g. toy:org/toy"),),
        options={"size": ("small", "big")},
    )
    monkeypatch.setitem(FAMILIES, "toy", toy)
    weights = tmp_path / "toy"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"")

    spec = parse_model_id(f"toy:{weights}?size=big")
    assert spec.family == "toy" and spec.option("size") == "big"
    assert parse_model_id(f"toy:{weights}?size=small").model_id == f"toy:{weights}"
    assert capabilities_for(f"toy:{weights}") == {CAPTION}
    assert available_offline(f"toy:{weights}")
    assert load_adapter(f"toy:{weights}", device=Device.cpu) == (
        "loaded",
        f"toy:{weights}",
        "cpu",
        "fp32",
    )
    with pytest.raises(ModelIdError, match="expected one of small, big"):
        parse_model_id("toy:org/toy?size=huge")


def test_available_offline_checks_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert not available_offline("hf-clip:openai/clip-vit-base-patch32")
    assert not available_offline("open-clip:ViT-B-32/laion2b_s34b_b79k")
    assert available_offline("open-clip:ViT-B-32")  # random init needs no weights
    # A fake cache snapshot, laid out as huggingface_hub does it.
    snap = tmp_path / "hf/hub/models--openai--clip-vit-base-patch32/snapshots/abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert not available_offline("hf-clip:openai/clip-vit-base-patch32")  # config, no weights
    (snap / "model.safetensors").write_bytes(b"")
    assert available_offline("hf-clip:openai/clip-vit-base-patch32")
    oc = tmp_path / "hf/hub/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/def"
    oc.mkdir(parents=True)
    (oc / "open_clip_model.safetensors").write_bytes(b"")
    assert available_offline("open-clip:ViT-B-32/laion2b_s34b_b79k")


def test_registry_import_is_light() -> None:
    code = (
        "import sys, mirada.vlm.registry, mirada.cli.models\n"
        "from mirada.cli import main\n"
        "main(['models', '--json'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)


def test_models_json_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mirada", "models", "--json"],
        cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["id"] for r in rows] == [e.id for e in CATALOGUE]
    for row in rows:
        assert set(row) == {"id", "title", "family", "capabilities", "description",
                            "available_offline", "latency_only"}  # fmt: skip
        assert isinstance(row["available_offline"], bool)
    by_id = {r["id"]: r for r in rows}
    assert by_id["blip-itm:Salesforce/blip-itm-base-coco"]["capabilities"] == [
        "embed",
        "score_pairs",
    ]
    assert by_id["hf-clip:openai/clip-vit-base-patch32"]["available_offline"] is False


def test_models_pull_offline_fails_clearly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mirada", "models", "pull", "hf-clip:openai/clip-vit-base-patch32"],
        cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "could not download hf-clip:openai/clip-vit-base-patch32" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_models_bad_id_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mirada", "models", "pull", "clip:foo"],
        cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unknown family 'clip'" in proc.stderr and "valid model ids" in proc.stderr
