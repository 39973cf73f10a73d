"""FLAVA (FlavaModel) as a dual encoder.

pooling=projected (default, correct): each tower's [CLS] through its contrastive projection,
as FLAVA's contrastive loss uses it. pooling=mean reproduces an earlier Mirada bug (mean over
unprojected tokens) so old numbers can be compared; it is much worse at retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import FlavaModel

from mirada.domain import Device, Dtype
from mirada.vlm.base import ImageEmbedding
from mirada.vlm.errors import ModelIdError
from mirada.vlm.ids import ModelSpec
from mirada.vlm.torch_common import HFAdapter, l2_numpy


class FlavaAdapter(ImageEmbedding, HFAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        self.pooling = spec.option("pooling")
        options = {"pooling": self.pooling}
        super().__init__(spec, device, dtype, FlavaModel, options)
        self.model: FlavaModel = self.module
        cfg: Any = self.model.config  # sub-configs are typed as optional dicts
        if self.pooling == "mean" and cfg.image_config.hidden_size != cfg.text_config.hidden_size:
            raise ModelIdError(f"{spec.model_id}: pooling=mean needs equal tower widths")

    @property
    def embed_dim(self) -> int:
        cfg: Any = self.model.config
        return int(
            cfg.projection_dim if self.pooling == "projected" else cfg.image_config.hidden_size
        )

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        pixels = self.pixels_in(pixel_values)
        if self.pooling == "projected":
            # transformers 5 projects every token ([B, T, D]); the contrastive embedding is [CLS].
            return l2_numpy(self.model.get_image_features(pixel_values=pixels).pooler_output[:, 0])
        return l2_numpy(self.model.image_model(pixel_values=pixels).last_hidden_state.mean(dim=1))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        batch = self.tokenize(texts)
        if self.pooling == "projected":
            return l2_numpy(self.model.get_text_features(**batch).pooler_output[:, 0])
        hidden = self.model.text_model(**batch).last_hidden_state
        # Masked mean, so the legacy embedding does not depend on the batch's padding.
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return l2_numpy((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1))


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> FlavaAdapter:
    return FlavaAdapter(spec, device, dtype)
