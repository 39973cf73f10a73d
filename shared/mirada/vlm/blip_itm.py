"""BLIP retrieval (BlipForImageTextRetrieval): contrastive embeddings + ITM re-ranking head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import BlipForImageTextRetrieval

from mirada.domain import Device, Dtype
from mirada.vlm.base import ImageEmbedding, PairScoring
from mirada.vlm.ids import ModelSpec
from mirada.vlm.torch_common import HFAdapter, l2_numpy

ITM_CHUNK = 128  # image-text pairs per cross-attention forward; bounds activation memory


class BlipITMAdapter(ImageEmbedding, PairScoring, HFAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        super().__init__(spec, device, dtype, BlipForImageTextRetrieval)
        self.model: BlipForImageTextRetrieval = self.module

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.image_text_hidden_size)

    def _vision_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model(pixel_values=self.pixels_in(pixel_values)).last_hidden_state

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        # As BLIP's contrastive path: projected [CLS] of the (post-layernormed) vision tokens.
        return l2_numpy(self.model.vision_proj(self._vision_tokens(pixel_values)[:, 0, :]))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        hidden = self.model.text_encoder(**self.tokenize(texts)).last_hidden_state
        return l2_numpy(self.model.text_proj(hidden[:, 0, :]))

    @torch.inference_mode()
    def score_candidates(
        self, pixel_values: torch.Tensor, candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        if len(candidates) != len(pixel_values):
            raise ValueError(f"{len(pixel_values)} images but {len(candidates)} candidate lists")
        image_tokens = self._vision_tokens(pixel_values)  # vision tower once per image
        owners = [i for i, texts in enumerate(candidates) for _ in texts]
        flat = [t for texts in candidates for t in texts]
        probs: list[torch.Tensor] = []
        for start in range(0, len(flat), ITM_CHUNK):
            idx = torch.tensor(owners[start : start + ITM_CHUNK], device=image_tokens.device)
            enc = image_tokens.index_select(0, idx)
            atts = torch.ones(enc.shape[:-1], dtype=torch.long, device=enc.device)
            hidden = self.model.text_encoder(
                **self.tokenize(flat[start : start + ITM_CHUNK]),
                encoder_hidden_states=enc,
                encoder_attention_mask=atts,
            ).last_hidden_state
            logits = self.model.itm_head(hidden[:, 0, :]).float()
            probs.append(logits.softmax(dim=-1)[:, 1].cpu())
        scores = torch.cat(probs).numpy() if probs else np.zeros(0, np.float32)
        out: list[np.ndarray] = []
        pos = 0
        for texts in candidates:
            out.append(scores[pos : pos + len(texts)].astype(np.float32))
            pos += len(texts)
        return out


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> BlipITMAdapter:
    return BlipITMAdapter(spec, device, dtype)
