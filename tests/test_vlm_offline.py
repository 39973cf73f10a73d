"""Missing weights and missing devices fail fast with messages that say what to do."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import time
from pathlib import Path

import pytest

from mirada.domain import Device, Dtype
from mirada.vlm.errors import DeviceUnavailableError, ModelIdError, ModelUnavailableError
from mirada.vlm.registry import load_adapter, resolve_device


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return tmp_path / "hf" / "hub"


@pytest.mark.parametrize(
    "model_id",
    [
        "hf-clip:openai/clip-vit-base-patch32",
        "blip-itm:Salesforce/blip-itm-base-coco",
        "blip-caption:Salesforce/blip-image-captioning-base",
        "flava:facebook/flava-full?pooling=mean",
        "open-clip:ViT-B-32/laion2b_s34b_b79k",
        "open-clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k",
    ],
)
def test_missing_weights_fail_fast(empty_hf_cache: Path, model_id: str) -> None:
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        load_adapter(model_id, device=Device.cpu)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert model_id in message
    assert str(empty_hf_cache) in message
    assert f"mirada models pull {model_id}" in message
    assert "local directory" in message


def test_missing_local_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="local directory"):
        load_adapter(f"hf-clip:{tmp_path / 'nowhere'}", device=Device.cpu)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError, match=r"config\.json \+ weights"):
        load_adapter(f"blip-itm:{tmp_path / 'half'}", device=Device.cpu)
    with pytest.raises(ModelUnavailableError, match=r"open_clip_config\.json"):
        load_adapter(f"open-clip:local-dir:{tmp_path}", device=Device.cpu)


def test_missing_demo_model() -> None:
    with pytest.raises(ModelUnavailableError, match="demo model hf-clip:mirada/no-such-demo"):
        load_adapter("hf-clip:mirada/no-such-demo", device=Device.cpu)


def test_open_clip_unknown_tag_and_arch() -> None:
    with pytest.raises(ModelUnavailableError, match="laion2b_s34b_b79k"):
        load_adapter("open-clip:ViT-B-32/no-such-tag", device=Device.cpu)
    with pytest.raises(ModelIdError, match="unknown open_clip architecture"):
        load_adapter("open-clip:ViT-Nope-1", device=Device.cpu)


def test_unavailable_device_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError, match="device 'cuda' was requested"):
        resolve_device(Device.cuda)
    with pytest.raises(DeviceUnavailableError, match="'cuda'"):
        load_adapter("hf-clip:openai/clip-vit-base-patch32", device=Device.cuda)
    assert resolve_device(Device.auto) in (Device.cpu, Device.mps)
    assert resolve_device(Device.cpu) is Device.cpu


def test_every_dtype_is_one_torch_dtype() -> None:
    """Dtype strings are parsed at the edges (CLI, queue); inside vlm a Dtype is a lookup."""
    torch = pytest.importorskip("torch")
    from mirada.vlm.torch_common import torch_dtype

    assert {d: torch_dtype(d) for d in Dtype} == {
        Dtype.fp32: torch.float32,
        Dtype.fp16: torch.float16,
        Dtype.bf16: torch.bfloat16,
    }
