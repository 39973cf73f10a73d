"""What a loaded model is, and the narrow protocols of what it can do.

Every loaded model is a `LoadedModel`: its id, family, device, dtype, size, fingerprint and
image transform. What it can do is one narrow Protocol per capability, as narrow as
CLIP_benchmark's contract (which needs only encode_image/encode_text):

    Capability.embed       -> Embedder    (embed_dim, encode_pixels, encode_images, encode_texts)
    Capability.score_pairs -> PairScorer  (score_candidates, score_pairs)
    Capability.caption     -> Captioner   (caption_pixels, generate_captions)

A family's adapter class implements exactly the protocols its capabilities (the family table,
`mirada.vlm.families`) name; a test checks each one. Callers that need a capability narrow the
loaded model with `as_embedder`, `as_pair_scorer` or `as_captioner`, which raise a clear
error naming the model when it lacks that capability: a model never has methods it cannot run.

Images go through two steps so decoding/preprocessing can overlap with compute in a
DataLoader: `image_transform(pil) -> tensor` (picklable, runs in loader workers) and
`encode_pixels(batch) -> embeddings` (runs on the model device). `encode_images` is both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mirada.domain import Capability, Device, Dtype
from mirada.errors import MiradaError

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


DEFAULT_CAPTION_OPTIONS = CaptionOptions()


@dataclass(frozen=True)
class Fingerprint:
    """What results record about the model, and what keys the embedding cache."""

    model_id: str
    family: str
    revision: str | None
    dtype: Dtype
    preprocessing: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the dtype as its stored string, so cache keys never change."""
        return {
            "model_id": self.model_id,
            "family": self.family,
            "revision": self.revision,
            "dtype": self.dtype.value,
            "preprocessing": self.preprocessing,
            "options": self.options,
        }


class LoadedModel(ABC):
    """What every loaded model has, whatever it can do."""

    model_id: str
    family: str
    capabilities: frozenset[Capability]
    device: Device  # resolved: never Device.auto
    dtype: Dtype
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
    def num_params(self) -> int: ...

    @abstractmethod
    def fingerprint(self) -> Fingerprint: ...

    @property
    @abstractmethod
    def image_transform(self) -> Callable[[Image], torch.Tensor]:
        """PIL image (RGB) -> preprocessed CHW tensor. Picklable (DataLoader workers)."""

    def synchronize(self) -> None:
        """Wait for queued device work, so timings are honest."""
        import torch

        if self.device is Device.cuda:
            torch.cuda.synchronize()
        elif self.device is Device.mps:
            torch.mps.synchronize()


# --- the capability protocols -------------------------------------------------------------
# Embeddings are float32 numpy arrays, L2-normalised per row.


@runtime_checkable
class Embedder(Protocol):
    """Embeds images and texts into one space (Capability.embed: the match task)."""

    @property
    def embed_dim(self) -> int: ...

    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image]) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class PairScorer(Protocol):
    """An image-text matching head (Capability.score_pairs: re-ranking)."""

    def score_candidates(
        self, pixel_values: torch.Tensor, candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]:
        """ITM match probability of each image's candidate texts (vision tower once per image)."""
        ...

    def score_pairs(self, images: Sequence[Image], texts: Sequence[str]) -> np.ndarray:
        """Match probability for aligned (image_i, text_i) pairs -> float32 [N]."""
        ...


@runtime_checkable
class Captioner(Protocol):
    """Generates captions (Capability.caption: the caption task)."""

    def caption_pixels(
        self, pixel_values: torch.Tensor, options: CaptionOptions = DEFAULT_CAPTION_OPTIONS
    ) -> list[str]: ...

    def generate_captions(
        self, images: Sequence[Image], options: CaptionOptions = DEFAULT_CAPTION_OPTIONS
    ) -> list[str]: ...


# The protocol each capability names.
PROTOCOLS: dict[Capability, type] = {EMBED: Embedder, SCORE_PAIRS: PairScorer, CAPTION: Captioner}


@runtime_checkable
class SigmoidCalibrated(Protocol):
    """An Embedder trained with a sigmoid loss (SigLIP): the model's own probability that an
    image and a text match is sigmoid(scale · cos + bias), with its learned scale and bias.
    Not a capability: it only adds a calibration to Capability.embed."""

    def sigmoid_calibration(self) -> tuple[float, float]:
        """(scale, bias): scale = exp(logit_scale), bias = logit_bias."""
        ...


def sigmoid_calibration(model: LoadedModel) -> tuple[float, float] | None:
    """`model`'s (scale, bias) when it is SigmoidCalibrated, else None."""
    return model.sigmoid_calibration() if isinstance(model, SigmoidCalibrated) else None


# --- the PIL-image halves, built from image_transform + the pixel method ------------------


def _pixels(model: LoadedModel, images: Sequence[Image]) -> torch.Tensor:
    import torch

    transform = model.image_transform
    return torch.stack([transform(im) for im in images])


class ImageEmbedding(LoadedModel):
    """Embedder's `encode_images`, for adapters that implement `encode_pixels`."""

    @abstractmethod
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image]) -> np.ndarray:
        return self.encode_pixels(_pixels(self, images))


class PairScoring(LoadedModel):
    """PairScorer's `score_pairs`, for adapters that implement `score_candidates`."""

    @abstractmethod
    def score_candidates(
        self, pixel_values: torch.Tensor, candidates: Sequence[Sequence[str]]
    ) -> list[np.ndarray]: ...

    def score_pairs(self, images: Sequence[Image], texts: Sequence[str]) -> np.ndarray:
        scores = self.score_candidates(_pixels(self, images), [[t] for t in texts])
        return np.array([s[0] for s in scores], dtype=np.float32)


class Captioning(LoadedModel):
    """Captioner's `generate_captions`, for adapters that implement `caption_pixels`."""

    @abstractmethod
    def caption_pixels(
        self, pixel_values: torch.Tensor, options: CaptionOptions = DEFAULT_CAPTION_OPTIONS
    ) -> list[str]: ...

    def generate_captions(
        self, images: Sequence[Image], options: CaptionOptions = DEFAULT_CAPTION_OPTIONS
    ) -> list[str]:
        return self.caption_pixels(_pixels(self, images), options)


# --- narrowing a loaded model to what a caller needs --------------------------------------


class CapabilityError(MiradaError):
    """A loaded model lacks the capability a caller needs."""


def _missing(model: LoadedModel, capability: Capability, what: str) -> CapabilityError:
    can = ", ".join(sorted(model.capabilities)) or "none"
    return CapabilityError(
        f"model {model.model_id} cannot {what}: it lacks the {capability} capability "
        f"(family {model.family} has: {can})"
    )


def as_embedder(model: LoadedModel) -> Embedder:
    """`model` as an Embedder; CapabilityError naming the model otherwise."""
    if isinstance(model, Embedder):
        return model
    raise _missing(model, EMBED, "embed images and texts")


def as_pair_scorer(model: LoadedModel) -> PairScorer:
    """`model` as a PairScorer; CapabilityError naming the model otherwise."""
    if isinstance(model, PairScorer):
        return model
    raise _missing(model, SCORE_PAIRS, "score image-text pairs")


def as_captioner(model: LoadedModel) -> Captioner:
    """`model` as a Captioner; CapabilityError naming the model otherwise."""
    if isinstance(model, Captioner):
        return model
    raise _missing(model, CAPTION, "generate captions")
