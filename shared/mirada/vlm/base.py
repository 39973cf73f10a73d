"""The narrow adapter contract every model family implements.

The runner only calls what is here. A family that does not fit gets a thin wrapper in its own
module; it is never special-cased in the worker.

Images go through two steps so decoding/preprocessing can overlap with compute in a
DataLoader: `image_transform(pil) -> tensor` (picklable, runs in loader workers) and
`encode_pixels(batch) -> embeddings` (runs on the model device). `encode_images` is both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mirada.domain import Capability, Device

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

# The capabilities, by the names adapters use. "embed": encode_images/encode_texts (match task).
# "score_pairs": an image-text matching head for re-ranking. "caption": generate_captions.
EMBED = Capability.embed
SCORE_PAIRS = Capability.score_pairs
CAPTION = Capability.caption


@dataclass(frozen=True)
class CaptionOptions:
    prompt: str | None = None
    num_beams: int = 3
    max_length: int = 20


@dataclass(frozen=True)
class Fingerprint:
    """What results record about the model, and what keys the embedding cache."""

    model_id: str
    family: str
    revision: str | None
    dtype: str
    preprocessing: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "family": self.family,
            "revision": self.revision,
            "dtype": self.dtype,
            "preprocessing": self.preprocessing,
            "options": self.options,
        }


class VLMAdapter(ABC):
    """A loaded model. Embeddings are float32 numpy arrays, L2-normalised per row."""

    model_id: str
    family: str
    capabilities: frozenset[Capability]
    device: str  # resolved: a Device other than auto
    dtype: str  # a Dtype
    init_seed: int = 0  # the torch seed the model was built under (load_adapter sets it)
    random_tensors: int = 0  # weight tensors drawn from that seed, not read from a file

    def init_record(self) -> dict[str, Any]:
        """Fingerprint options recording random weights and their seed (empty when every
        weight came from a file, so pretrained fingerprints and cache keys are unchanged)."""
        if not self.random_tensors:
            return {}
        return {"init_seed": self.init_seed, "random_tensors": self.random_tensors}

    @property
    @abstractmethod
    def embed_dim(self) -> int | None:
        """Embedding dimension, or None for a model without EMBED."""

    @property
    @abstractmethod
    def num_params(self) -> int: ...

    @abstractmethod
    def fingerprint(self) -> Fingerprint: ...

    @property
    @abstractmethod
    def image_transform(self) -> Callable[[Image], torch.Tensor]:
        """PIL image (RGB) -> preprocessed CHW tensor. Picklable (DataLoader workers)."""

    # --- EMBED -----------------------------------------------------------------------------
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        raise NotImplementedError(f"{self.model_id} cannot embed images")

    def encode_images(self, images: Sequence[Image]) -> np.ndarray:
        import torch

        transform = self.image_transform
        return self.encode_pixels(torch.stack([transform(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError(f"{self.model_id} cannot embed texts")

    # --- SCORE_PAIRS -----------------------------------------------------------------------
    def score_candidates(
        self, pixel_values: torch.Tensor, candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """ITM match probability of each image's candidate texts (vision tower once per image)."""
        raise NotImplementedError(f"{self.model_id} has no image-text matching head")

    def score_pairs(self, images: Sequence[Image], texts: Sequence[str]) -> np.ndarray:
        """Match probability for aligned (image_i, text_i) pairs -> float32 [N]."""
        import torch

        transform = self.image_transform
        pixels = torch.stack([transform(im) for im in images])
        return np.array(
            [s[0] for s in self.score_candidates(pixels, [[t] for t in texts])], dtype=np.float32
        )

    # --- CAPTION ---------------------------------------------------------------------------
    def caption_pixels(
        self, pixel_values: torch.Tensor, options: CaptionOptions = CaptionOptions()
    ) -> list[str]:
        raise NotImplementedError(f"{self.model_id} cannot generate captions")

    def generate_captions(
        self, images: Sequence[Image], options: CaptionOptions = CaptionOptions()
    ) -> list[str]:
        import torch

        transform = self.image_transform
        return self.caption_pixels(torch.stack([transform(im) for im in images]), options)

    # --- device plumbing -------------------------------------------------------------------
    def synchronize(self) -> None:
        """Wait for queued device work, so timings are honest."""
        import torch

        if self.device == Device.cuda:
            torch.cuda.synchronize()
        elif self.device == Device.mps:
            torch.mps.synchronize()
