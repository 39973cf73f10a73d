"""Models Mirada knows by name: plain data, no imports of model libraries.

Capabilities are family-level (see registry.FAMILY_CAPABILITIES); they are repeated here so the
catalogue reads on its own, and a test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirada.vlm.base import CAPTION, EMBED, SCORE_PAIRS


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    title: str
    family: str
    capabilities: frozenset[str]
    description: str


_CLIP = frozenset({EMBED})
_BLIP_ITM = frozenset({EMBED, SCORE_PAIRS})
_BLIP_CAP = frozenset({CAPTION})

CATALOGUE: list[CatalogueEntry] = [
    CatalogueEntry(
        "hf-clip:openai/clip-vit-base-patch32",
        "CLIP ViT-B/32 (OpenAI, transformers)",
        "hf-clip",
        _CLIP,
        "The original OpenAI CLIP ViT-B/32 through transformers; the common retrieval baseline.",
    ),
    CatalogueEntry(
        "open-clip:ViT-B-32/laion2b_s34b_b79k",
        "OpenCLIP ViT-B/32 LAION-2B",
        "open-clip",
        _CLIP,
        "OpenCLIP ViT-B/32 trained on LAION-2B (34B samples); stronger than OpenAI's B/32.",
    ),
    CatalogueEntry(
        "open-clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k",
        "OpenCLIP ViT-B/32 multilingual (XLM-RoBERTa)",
        "open-clip",
        _CLIP,
        "Multilingual text tower (XLM-RoBERTa base) with a ViT-B/32, trained on LAION-5B. "
        "Needs the xlm-roberta-base tokenizer/config in the HF cache too.",
    ),
    CatalogueEntry(
        "blip-itm:Salesforce/blip-itm-base-coco",
        "BLIP base retrieval (COCO)",
        "blip-itm",
        _BLIP_ITM,
        "BLIP base fine-tuned for COCO retrieval: contrastive embeddings plus an image-text "
        "matching head for re-ranking.",
    ),
    CatalogueEntry(
        "blip-caption:Salesforce/blip-image-captioning-base",
        "BLIP base captioning",
        "blip-caption",
        _BLIP_CAP,
        "BLIP base captioner fine-tuned on COCO; beam search by default.",
    ),
    CatalogueEntry(
        "flava:facebook/flava-full",
        "FLAVA full (projected [CLS])",
        "flava",
        _CLIP,
        "FLAVA with the correct contrastive pooling: the projected [CLS] token of each tower.",
    ),
    CatalogueEntry(
        "flava:facebook/flava-full?pooling=mean",
        "FLAVA full (mean pooling, legacy)",
        "flava",
        _CLIP,
        "FLAVA with mean pooling over unprojected tokens, as an earlier Mirada did; kept to "
        "reproduce old numbers. Expect much worse retrieval than the projected variant.",
    ),
    CatalogueEntry(
        "hf-clip:mirada/demo-clip",
        "Demo CLIP (tiny, shapes)",
        "hf-clip",
        _CLIP,
        "A tiny CLIP trained on the bundled synthetic shapes dataset; ships with Mirada.",
    ),
    CatalogueEntry(
        "hf-clip:mirada/demo-clip-random",
        "Demo CLIP (tiny, untrained)",
        "hf-clip",
        _CLIP,
        "Same shape as demo-clip but untrained: a chance-level baseline.",
    ),
    CatalogueEntry(
        "blip-caption:mirada/demo-blip",
        "Demo BLIP captioner (tiny, shapes)",
        "blip-caption",
        _BLIP_CAP,
        "A tiny BLIP captioner trained on the bundled synthetic shapes dataset.",
    ),
]


def list_catalogue() -> list[CatalogueEntry]:
    return list(CATALOGUE)
