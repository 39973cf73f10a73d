"""SigLIP and SigLIP 2 through transformers: `siglip:` (SiglipModel) and `siglip2:` (SiglipModel
for SigLIP 2's fixed-resolution checkpoints, Siglip2Model for its NaFlex ones, chosen by the
checkpoint's `model_type`).

Text preprocessing follows the model cards (checked against transformers 5.25's sources):

- Padding to `max_length` = the text tower's `max_position_embeddings` (64 for every published
  checkpoint). The text tower pools the LAST position (`last_hidden_state[:, -1]`, "which may be
  padding", transformers' own comment), so padding to the batch's longest text, as the CLIP
  adapters do, changes every embedding. SigLIP was trained with fixed-length padding; both cards
  say `padding="max_length"`. Truncation at the same length.
- SigLIP: SiglipTokenizer (SentencePiece; the `sentencepiece` package) lower-cases and strips
  punctuation itself (`canonicalize_text`, big_vision's recipe), so texts go in as given.
- SigLIP 2: the Gemma tokenizer, and the card says the model "was trained with lowercased
  text". transformers lower-cases only in Siglip2Tokenizer, which it loads for the NaFlex
  checkpoints (`model_type: siglip2`); the fixed-resolution ones (`model_type: siglip`) load
  GemmaTokenizer, which does not. So this adapter lower-cases every SigLIP 2 text itself
  (`str.lower`, which Siglip2Tokenizer's own lower-casing leaves unchanged).
- The tokenizer's other settings (padding side, special tokens) are the checkpoint's, as the
  processor would use them; the token ids and attention mask go to `get_text_features` as the
  processor returns them.

Scores: the sigmoid loss trains sigmoid(exp(logit_scale) · cos + logit_bias) as each pair's
match probability. Retrieval and zero-shot rank by cosine, which orders exactly as that score
(a monotone function of cos); `sigmoid_calibration` exposes the scale and bias so zero-shot
can also report the model's own probability for its chosen class.

SigLIP 2 NaFlex images: Siglip2ImageProcessor keeps each image's aspect ratio, resizing it to
at most `max_num_patches` patches, and returns the patches [P, 3·p·p] padded to P, a patch mask
and the patch grid (h, w). `image_transform` must return one tensor per image (DataLoader
workers stack them), so `NaFlexTransform` packs all three into one [P + 1, 3·p·p] tensor: the
patches, then a header row holding h and w (the mask is the first h·w patches, which is how
the processor pads). `encode_pixels` unpacks it before the forward pass. The processor's
output is reproduced exactly, aspect ratio included; the image processor's own settings are
used (the checkpoint's), not Siglip2Processor's class defaults, which override them in
transformers 5.25 (both are patch 16 and 256 patches for the published NaFlex checkpoints).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import Siglip2Model, SiglipModel

from mirada.domain import Device, Dtype
from mirada.vlm.base import Fingerprint, ImageEmbedding
from mirada.vlm.errors import ModelIdError, ModelUnavailableError
from mirada.vlm.hub import resolve_hf_dir, unavailable
from mirada.vlm.ids import ModelSpec
from mirada.vlm.torch_common import HFAdapter, HFImageTransform, l2_numpy

SIGLIP2 = "siglip2"  # the family whose texts this adapter lower-cases
_OTHER_FAMILY = {"siglip": "siglip2", "siglip2": "siglip"}


class NaFlexTransform(HFImageTransform):
    """Picklable PIL -> [P + 1, 3·p·p] tensor for SigLIP 2 NaFlex: the processor's patches,
    then a header row (h, w, 0, ...) with the patch grid (see the module docstring)."""

    def __call__(self, image: Any) -> torch.Tensor:
        out = self.processed(image)
        patches = out["pixel_values"][0]
        header = patches.new_zeros(1, patches.shape[1])
        header[0, :2] = out["spatial_shapes"][0].to(patches.dtype)
        return torch.cat([patches, header])


def unpack_naflex(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """NaFlexTransform's stacked tensors -> Siglip2Model's pixel_values, pixel_attention_mask
    and spatial_shapes."""
    patches = batch[:, :-1]
    shapes = batch[:, -1, :2].float().round().long()
    positions = torch.arange(patches.shape[1], device=batch.device)
    mask = (positions[None, :] < shapes.prod(-1)[:, None]).to(torch.int32)
    return {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": shapes}


def _model_class(spec: ModelSpec) -> type[SiglipModel] | type[Siglip2Model]:
    """SiglipModel or Siglip2Model, from the checkpoint's config.json `model_type`."""
    if spec.preset_entry is not None:
        return SiglipModel  # both presets are fixed-resolution (mirada.vlm.presets)
    path = resolve_hf_dir(spec)
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise unavailable(spec, str(path), f"unreadable config.json: {exc}") from exc
    classes: dict[str, type[SiglipModel] | type[Siglip2Model]] = {"siglip": SiglipModel}
    if spec.family == SIGLIP2:
        classes["siglip2"] = Siglip2Model
    if model_type in classes:
        return classes[model_type]
    if model_type == "siglip2":
        raise _wrong_family(spec, "a SigLIP 2 NaFlex checkpoint (model_type siglip2)")
    raise ModelIdError(
        f"model {spec.model_id}: {path} holds a {model_type!r} checkpoint, not SigLIP "
        f"(model_type {' or '.join(classes)}); use the family made for it (see `mirada models`)"
    )


def _wrong_family(spec: ModelSpec, what: str) -> ModelIdError:
    other = _OTHER_FAMILY[spec.family]
    body = spec.model_id.split(":", 1)[1]
    recipe = "lower-cased text" if other == SIGLIP2 else "SiglipTokenizer's canonical text"
    return ModelIdError(
        f"model {spec.model_id} is {what}: use {other}:{body}, whose text preprocessing "
        f"({recipe}, padded to the model's text length) is the one it was trained with"
    )


def _check_tokenizer(spec: ModelSpec, tokenizer: Any) -> None:
    """SigLIP (v1) checkpoints ship SiglipTokenizer; SigLIP 2 ones the Gemma tokenizer. A
    mismatch means the wrong family, whose text preprocessing would be wrong."""
    is_v1 = type(tokenizer).__name__ == "SiglipTokenizer"
    if spec.family == SIGLIP2 and is_v1:
        raise _wrong_family(spec, "a SigLIP (v1) checkpoint (SiglipTokenizer)")
    if spec.family != SIGLIP2 and not is_v1:
        raise _wrong_family(spec, f"a SigLIP 2 checkpoint ({type(tokenizer).__name__})")


class SiglipAdapter(ImageEmbedding, HFAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        if (
            spec.family != SIGLIP2
            and spec.preset_entry is None
            and importlib.util.find_spec("sentencepiece") is None
        ):
            raise ModelUnavailableError(
                f"model {spec.model_id}: SigLIP's tokenizer is a SentencePiece model, which "
                "needs the `sentencepiece` package (pip install sentencepiece)"
            )
        model_class = _model_class(spec)
        super().__init__(spec, device, dtype, model_class)
        _check_tokenizer(spec, self.tokenizer)
        self.model: SiglipModel | Siglip2Model = self.module
        self.naflex = model_class is Siglip2Model
        self._naflex_transform = NaFlexTransform(self.processor) if self.naflex else None
        self.lowercase = spec.family == SIGLIP2

    @property
    def image_transform(self) -> Callable[[Any], torch.Tensor]:
        return self._naflex_transform or self._transform

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.vision_config.hidden_size)

    def sigmoid_calibration(self) -> tuple[float, float]:
        """(exp(logit_scale), logit_bias): the pair probability is sigmoid(scale·cos + bias)."""
        scale = float(self.model.logit_scale.detach().float().exp().item())
        return scale, float(self.model.logit_bias.detach().float().item())

    def fingerprint(self) -> Fingerprint:
        base = super().fingerprint()
        text = {
            "padding": "max_length",
            "max_length": self._max_len,
            "lowercase": self.lowercase or bool(getattr(self.tokenizer, "do_lower_case", False)),
            "tokenizer": type(self.tokenizer).__name__,
        }
        image = (
            {
                "patch_size": int(self.processor.patch_size),
                "max_num_patches": int(self.processor.max_num_patches),
            }
            if self.naflex
            else {}
        )
        pre = {**base.preprocessing, **image, "text": text}
        return Fingerprint(base.model_id, base.family, base.revision, base.dtype, pre, base.options)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded to the model's text length (never to the longest text: the tower pools the
        last position); SigLIP 2 texts lower-cased (see the module docstring)."""
        batch = self.tokenizer(
            [t.lower() for t in texts] if self.lowercase else list(texts),
            padding="max_length",
            truncation=True,
            max_length=self._max_len,
            return_tensors="pt",
        )
        return self.tokens_in({k: batch[k] for k in ("input_ids", "attention_mask") if k in batch})

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        if not self.naflex:
            out = self.model.get_image_features(pixel_values=self.pixels_in(pixel_values))
            return l2_numpy(out.pooler_output)
        inputs = unpack_naflex(pixel_values.to(self.torch_device))
        inputs["pixel_values"] = self.pixels_in(inputs["pixel_values"])
        return l2_numpy(self.model.get_image_features(**inputs).pooler_output)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed_dim), np.float32)
        return l2_numpy(self.model.get_text_features(**self.tokenize(texts)).pooler_output)


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> SiglipAdapter:
    return SiglipAdapter(spec, device, dtype)
