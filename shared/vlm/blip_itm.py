"""BLIP retrieval (BlipForImageTextRetrieval): contrastive embeddings + ITM re-ranking head."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoTokenizer, BlipForImageTextRetrieval

from shared.vlm._common import (
    HFImageTransform,
    TorchAdapter,
    hf_from_pretrained,
    hf_preprocessing,
    hf_revision,
    l2_numpy,
)
from shared.vlm._hub import resolve_hf_dir
from shared.vlm.base import EMBED, SCORE_PAIRS, Fingerprint
from shared.vlm.ids import ModelSpec

ITM_CHUNK = 128  # image-text pairs per cross-attention forward; bounds activation memory


class BlipITMAdapter(TorchAdapter):
    def __init__(self, spec: ModelSpec, device: str, dtype: str) -> None:
        path = resolve_hf_dir(spec)
        model = hf_from_pretrained(spec, BlipForImageTextRetrieval.from_pretrained, path)
        self.tokenizer = hf_from_pretrained(spec, AutoTokenizer.from_pretrained, path)
        self.processor = hf_from_pretrained(spec, AutoImageProcessor.from_pretrained, path)
        self._transform = HFImageTransform(self.processor)
        caps = frozenset({EMBED, SCORE_PAIRS})
        super().__init__(spec, model, device, dtype, caps, hf_revision(path, model.config))
        self.model: BlipForImageTextRetrieval = self.module  # type: ignore[assignment]
        self._max_len = int(model.config.text_config.max_position_embeddings)

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.image_text_hidden_size)

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self._transform

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            self.model_id, self.family, self.revision, self.dtype, hf_preprocessing(self.processor)
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


def load(spec: ModelSpec, device: str, dtype: str) -> BlipITMAdapter:
    return BlipITMAdapter(spec, device, dtype)
