"""FLAVA (FlavaModel) as a dual encoder.

pooling=projected (default, correct): each tower's [CLS] through its contrastive projection,
as FLAVA's contrastive loss uses it. pooling=mean reproduces an earlier Mirada bug (mean over
unprojected tokens) so old numbers can be compared; it is much worse at retrieval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoTokenizer, FlavaModel

from shared.vlm._common import (
    HFImageTransform,
    TorchAdapter,
    hf_from_pretrained,
    hf_preprocessing,
    hf_revision,
    l2_numpy,
)
from shared.vlm._hub import resolve_hf_dir
from shared.vlm.base import EMBED, Fingerprint
from shared.vlm.errors import ModelIdError
from shared.vlm.ids import ModelSpec


class FlavaAdapter(TorchAdapter):
    def __init__(self, spec: ModelSpec, device: str, dtype: str) -> None:
        path = resolve_hf_dir(spec)
        model = hf_from_pretrained(spec, FlavaModel.from_pretrained, path)
        self.tokenizer = hf_from_pretrained(spec, AutoTokenizer.from_pretrained, path)
        self.processor = hf_from_pretrained(spec, AutoImageProcessor.from_pretrained, path)
        self._transform = HFImageTransform(self.processor)
        self.pooling = spec.option("pooling")
        cfg = model.config
        if self.pooling == "mean" and cfg.image_config.hidden_size != cfg.text_config.hidden_size:
            raise ModelIdError(f"{spec.model_id}: pooling=mean needs equal tower widths")
        super().__init__(spec, model, device, dtype, frozenset({EMBED}), hf_revision(path, cfg))
        self.model: FlavaModel = self.module  # type: ignore[assignment]
        self._max_len = int(cfg.text_config.max_position_embeddings)

    @property
    def embed_dim(self) -> int:
        cfg = self.model.config
        return int(
            cfg.projection_dim if self.pooling == "projected" else cfg.image_config.hidden_size
        )

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self._transform

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            self.model_id,
            self.family,
            self.revision,
            self.dtype,
            hf_preprocessing(self.processor),
            {"pooling": self.pooling},
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self._max_len,
            return_tensors="pt",
        )
        return self.tokens_in({k: batch[k] for k in ("input_ids", "attention_mask")})

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


def load(spec: ModelSpec, device: str, dtype: str) -> FlavaAdapter:
    return FlavaAdapter(spec, device, dtype)
