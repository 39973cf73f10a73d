"""BLIP captioning (BlipForConditionalGeneration): a Captioner only, not an Embedder."""

from __future__ import annotations

from typing import Any

import torch
from transformers import BlipForConditionalGeneration

from mirada.domain import Device, Dtype
from mirada.vlm.base import DEFAULT_CAPTION_OPTIONS, Captioning, CaptionOptions
from mirada.vlm.ids import ModelSpec
from mirada.vlm.torch_common import HFAdapter


class BlipCaptionAdapter(Captioning, HFAdapter):
    def __init__(self, spec: ModelSpec, device: Device, dtype: Dtype) -> None:
        super().__init__(spec, device, dtype, BlipForConditionalGeneration)
        self.model: BlipForConditionalGeneration = self.module

    @torch.inference_mode()
    def caption_pixels(
        self, pixel_values: torch.Tensor, options: CaptionOptions = DEFAULT_CAPTION_OPTIONS
    ) -> list[str]:
        n = len(pixel_values)
        if n == 0:
            return []
        kwargs: dict[str, Any] = {}
        if options.prompt:
            batch = self.tokenizer([options.prompt] * n, return_tensors="pt")
            kwargs = {k: batch[k].to(self.torch_device) for k in ("input_ids", "attention_mask")}
        # max_length counts generated tokens, not the prompt (as LAVIS's max_len).
        out = self.model.generate(
            pixel_values=self.pixels_in(pixel_values),
            num_beams=options.num_beams,
            max_new_tokens=options.max_length,
            do_sample=False,
            **kwargs,
        )
        texts = [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        if options.prompt:
            # Like LAVIS, captions exclude the prompt, so metrics compare only generated words.
            prefix = str(
                self.tokenizer.decode(
                    self.tokenizer(options.prompt, add_special_tokens=False)["input_ids"]
                )
            ).strip()
            texts = [t[len(prefix) :].strip() if t.startswith(prefix) else t for t in texts]
        return texts


def load(spec: ModelSpec, device: Device, dtype: Dtype) -> BlipCaptionAdapter:
    return BlipCaptionAdapter(spec, device, dtype)
