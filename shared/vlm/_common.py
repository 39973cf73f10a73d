"""Torch-side helpers shared by the adapters (imported only by adapter modules)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from shared.vlm._hub import hub_offline, revision_of, unavailable
from shared.vlm.base import VLMAdapter
from shared.vlm.ids import ModelSpec

TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def torch_dtype(dtype: str) -> torch.dtype:
    try:
        return TORCH_DTYPES[dtype]
    except KeyError:
        from shared.errors import MiradaError

        raise MiradaError(
            f"unknown dtype {dtype!r}; use one of {', '.join(TORCH_DTYPES)}"
        ) from None


M = TypeVar("M")


def hf_from_pretrained(spec: ModelSpec, loader: Callable[..., M], path: Path, **kw: Any) -> M:
    """`loader(path, local_files_only=True)`, hub forced offline; errors become Mirada errors."""
    try:
        with hub_offline():
            return loader(str(path), local_files_only=True, trust_remote_code=False, **kw)
    except (OSError, ValueError) as exc:
        raise unavailable(spec, str(path), f"{type(exc).__name__}: {exc}") from exc


def hf_revision(path: Path, config: Any) -> str | None:
    return getattr(config, "_commit_hash", None) or revision_of(path)


def l2_numpy(x: torch.Tensor) -> np.ndarray:
    """float32, L2-normalised rows, on the CPU."""
    x = x.float()
    x = torch.nn.functional.normalize(x, dim=-1)
    return x.cpu().numpy().astype(np.float32, copy=False)


class HFImageTransform:
    """Picklable PIL -> CHW tensor wrapper around a transformers image processor."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Any) -> torch.Tensor:
        if getattr(image, "mode", "RGB") != "RGB":
            image = image.convert("RGB")
        out = self.processor(images=image, return_tensors="pt")
        return out["pixel_values"][0]


def _resample_name(resample: Any) -> str | None:
    if resample is None:
        return None
    if isinstance(resample, int):  # PIL enum stored as int in processor configs
        from PIL.Image import Resampling

        return Resampling(resample).name.lower()
    return str(getattr(resample, "name", resample)).lower()


def hf_preprocessing(processor: Any) -> dict[str, Any]:
    """Size, mean/std and interpolation of a transformers image processor, for fingerprints."""
    size = getattr(processor, "size", None)
    crop = (
        getattr(processor, "crop_size", None)
        if getattr(processor, "do_center_crop", False)
        else None
    )
    resample = getattr(processor, "resample", None)
    return {
        "size": dict(size) if size is not None else None,
        "crop_size": dict(crop) if crop is not None else None,
        "mean": [float(v) for v in (getattr(processor, "image_mean", None) or [])],
        "std": [float(v) for v in (getattr(processor, "image_std", None) or [])],
        "interpolation": _resample_name(resample),
        "processor": type(processor).__name__,
    }


class TorchAdapter(VLMAdapter):
    """Common state of adapters backed by one torch module."""

    def __init__(
        self,
        spec: ModelSpec,
        module: torch.nn.Module,
        device: str,
        dtype: str,
        capabilities: frozenset[str],
        revision: str | None,
    ) -> None:
        self.spec = spec
        self.model_id = spec.model_id
        self.family = spec.family
        self.capabilities = capabilities
        self.device = device
        self.dtype = dtype
        self.torch_dtype = torch_dtype(dtype)
        self.revision = revision
        self.module = module.to(device=device, dtype=self.torch_dtype).eval()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def pixels_in(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values.to(device=self.device, dtype=self.torch_dtype)

    def tokens_in(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in batch.items()}
