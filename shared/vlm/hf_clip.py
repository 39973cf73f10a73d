"""CLIP through transformers (CLIPModel + CLIPProcessor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

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
from shared.vlm.ids import ModelSpec


class HFCLIPAdapter(TorchAdapter):
    def __init__(self, spec: ModelSpec, device: str, dtype: str) -> None:
        path = resolve_hf_dir(spec)
        model = hf_from_pretrained(spec, CLIPModel.from_pretrained, path)
        self.tokenizer = hf_from_pretrained(spec, AutoTokenizer.from_pretrained, path)
        self.processor = hf_from_pretrained(spec, AutoImageProcessor.from_pretrained, path)
        self._transform = HFImageTransform(self.processor)
        super().__init__(
            spec, model, device, dtype, frozenset({EMBED}), hf_revision(path, model.config)
        )
        self.model: CLIPModel = self.module  # type: ignore[assignment]
        self._max_len = int(model.config.text_config.max_position_embeddings)

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self._transform

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            self.model_id, self.family, self.revision, self.dtype, hf_preprocessing(self.processor)
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        # Pad to the batch's longest caption, not 77: CLIP pools at the first EOS, so the
        # embedding is unchanged and short captions run several times faster.
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self._max_len,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        out = self.model.get_image_features(pixel_values=self.pixels_in(pixel_values))
        return l2_numpy(out.pooler_output)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        out = self.model.get_text_features(**self.tokens_in(self.tokenize(texts)))
        return l2_numpy(out.pooler_output)


def load(spec: ModelSpec, device: str, dtype: str) -> HFCLIPAdapter:
    return HFCLIPAdapter(spec, device, dtype)
