"""Model families, one entry each: the table the id parser, registry, catalogue and worker read.

Adding a family is one `Family` entry in `FAMILIES` plus its adapter module under `mirada.vlm`,
which exposes `load(spec, device, dtype) -> LoadedModel` (an adapter implementing the protocols
of `mirada.vlm.base` its capabilities name). Plain data: importing this module
never imports a model library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from mirada.domain import Capability
from mirada.vlm.errors import ModelIdError
from mirada.vlm.presets import LATENCY_ONLY, RANDOM_PREFIX, preset_names


class Layout(StrEnum):
    """How a family's ids name weights: decides how ids parse and how weights are found."""

    # `<family>:<hf-repo-or-local-dir>`: a transformers model directory (config.json + weights)
    transformers = "transformers"
    # `open-clip:<arch>[/<tag-or-checkpoint>]` or `open-clip:local-dir:<dir>`
    open_clip = "open_clip"


@dataclass(frozen=True)
class Family:
    prefix: str  # the id prefix before ':'
    module: str  # adapter module under mirada.vlm
    capabilities: frozenset[Capability]
    layout: Layout
    # (id body, note) per accepted id form, for error messages and `mirada models --help`
    forms: tuple[tuple[str, str], ...]
    # id options `?key=value`: name -> accepted values, the default first
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (import name, distribution) of a package whose bundled model configs shape the model
    # (preprocessing); its version joins the embedding-cache identity of weights named by tag
    config_package: tuple[str, str] | None = None
    # trained with a pairwise sigmoid loss (SigLIP): scores are sigmoid(scale·cos + bias), not a
    # softmax over candidates, and CLIPScore's w = 2.5 scale does not apply to its cosines
    sigmoid_loss: bool = False

    def default(self, option: str) -> str:
        return self.options[option][0]

    def form_lines(self) -> list[tuple[str, str]]:
        """(full id form, note) lines; a family's options are shown on its first form."""
        suffix = "".join(f"[?{name}={'|'.join(vals)}]" for name, vals in self.options.items())
        return [
            (f"{self.prefix}:{body}" + (suffix if i == 0 else ""), note)
            for i, (body, note) in enumerate(self.forms)
        ]


_HF_DIR = "<hf-repo-or-local-dir>"


def _random(family: str) -> tuple[str, str]:
    """The id form of a family's real-size random-weight presets (mirada.vlm.presets)."""
    names = ", ".join(preset_names(family))
    return (f"{RANDOM_PREFIX}<preset>", f"{LATENCY_ONLY}, benchmark only: {names}")


_EMBED = frozenset({Capability.embed})

FAMILIES: dict[str, Family] = {
    f.prefix: f
    for f in (
        Family(
            "hf-clip",
            "hf_clip",
            _EMBED,
            Layout.transformers,
            ((_HF_DIR, "e.g. hf-clip:openai/clip-vit-base-patch32"), _random("hf-clip")),
        ),
        Family(
            "open-clip",
            "open_clip_family",
            _EMBED,
            Layout.open_clip,
            (
                ("<arch>/<pretrained-tag>", "e.g. open-clip:ViT-B-32/laion2b_s34b_b79k"),
                ("<arch>/<checkpoint-file>", "e.g. open-clip:ViT-B-32//data/ckpt.safetensors"),
                ("<arch>", "random init (no pretrained weights)"),
                ("local-dir:<dir>", "dir with open_clip_config.json + weights"),
                _random("open-clip"),
            ),
            config_package=("open_clip", "open_clip_torch"),
        ),
        Family(
            "blip-itm",
            "blip_itm",
            frozenset({Capability.embed, Capability.score_pairs}),
            Layout.transformers,
            ((_HF_DIR, "e.g. blip-itm:Salesforce/blip-itm-base-coco"), _random("blip-itm")),
        ),
        Family(
            "blip-caption",
            "blip_caption",
            frozenset({Capability.caption}),
            Layout.transformers,
            (
                (_HF_DIR, "e.g. blip-caption:Salesforce/blip-image-captioning-base"),
                _random("blip-caption"),
            ),
        ),
        Family(
            "flava",
            "flava",
            _EMBED,
            Layout.transformers,
            ((_HF_DIR, ""), _random("flava")),
            # projected: the contrastive [CLS] of each tower (correct); mean: an old Mirada bug,
            # kept to reproduce earlier numbers
            options={"pooling": ("projected", "mean")},
        ),
        Family(
            "siglip",
            "siglip",
            _EMBED,
            Layout.transformers,
            ((_HF_DIR, "e.g. siglip:google/siglip-base-patch16-224"), _random("siglip")),
            sigmoid_loss=True,
        ),
        Family(
            "siglip2",
            "siglip",
            _EMBED,
            Layout.transformers,
            (
                (_HF_DIR, "fixed-res or NaFlex, e.g. siglip2:google/siglip2-base-patch16-224"),
                _random("siglip2"),
            ),
            sigmoid_loss=True,
        ),
        Family(
            "hf-vlm",
            "hf_vlm",
            frozenset({Capability.caption}),
            Layout.transformers,
            (
                (
                    _HF_DIR,
                    "any AutoModelForImageTextToText captioner (GIT, BLIP-2, LLaVA, SmolVLM, "
                    "Qwen2-VL, ...), e.g. hf-vlm:HuggingFaceTB/SmolVLM-256M-Instruct",
                ),
                _random("hf-vlm"),
            ),
        ),
    )
}


def get_family(prefix: str) -> Family:
    """The family named `prefix`; ModelIdError listing the known ones otherwise."""
    try:
        return FAMILIES[prefix]
    except KeyError:
        raise ModelIdError(f"unknown family {prefix!r} (known: {', '.join(FAMILIES)})") from None
