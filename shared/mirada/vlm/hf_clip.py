"""CLIP through transformers (CLIPModel + CLIPProcessor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from transformers import CLIPModel

from mirada.domain import Device, Dtype
from mirada.vlm.base import ImageEmbedding
from mirada.vlm.ids import ModelSpec
from mirada.vlm.torch_common import HFAdapter, l2_numpy


class HFCLIPAdapter(ImageEmbedding, HFAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        super().__init__(spec, device, dtype, CLIPModel)
        self.model: CLIPModel = self.module

    @property
    def embed_dim(self) -> int:
        return cast(int, self.model.config.projection_dim)

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        out = self.model.get_image_features(pixel_values=self.pixels_in(pixel_values))
        return l2_numpy(out.pooler_output)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        out = self.model.get_text_features(**self.tokenize(texts))
        return l2_numpy(out.pooler_output)


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> HFCLIPAdapter:
    return HFCLIPAdapter(spec, device, dtype)
