"""Models Mirada knows by name: plain data, no imports of model libraries.

An entry names a model; its family and capabilities come from the id through the family table
(`mirada.vlm.families`), so they are never restated here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirada.domain import Capability
from mirada.vlm.ids import parse_model_id
from mirada.vlm.presets import LATENCY_ONLY, PRESETS


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    title: str
    description: str

    @property
    def family(self) -> str:
        return parse_model_id(self.id).family

    @property
    def latency_only(self) -> bool:
        """Random weights at a real size (mirada.vlm.presets): benchmark runs only."""
        return parse_model_id(self.id).latency_only

    @property
    def capabilities(self) -> frozenset[Capability]:
        return parse_model_id(self.id).family_entry.capabilities


CATALOGUE: list[CatalogueEntry] = [
    CatalogueEntry(
        "hf-clip:openai/clip-vit-base-patch32",
        "CLIP ViT-B/32 (OpenAI, transformers)",
        "The original OpenAI CLIP ViT-B/32 through transformers; the common retrieval baseline.",
    ),
    CatalogueEntry(
        "open-clip:ViT-B-32/laion2b_s34b_b79k",
        "OpenCLIP ViT-B/32 LAION-2B",
        "OpenCLIP ViT-B/32 trained on LAION-2B (34B samples); stronger than OpenAI's B/32.",
    ),
    CatalogueEntry(
        "open-clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k",
        "OpenCLIP ViT-B/32 multilingual (XLM-RoBERTa)",
        "Multilingual text tower (XLM-RoBERTa base) with a ViT-B/32, trained on LAION-5B. "
        "Needs the xlm-roberta-base tokenizer/config in the HF cache too.",
    ),
    CatalogueEntry(
        "blip-itm:Salesforce/blip-itm-base-coco",
        "BLIP base retrieval (COCO)",
        "BLIP base fine-tuned for COCO retrieval: contrastive embeddings plus an image-text "
        "matching head for re-ranking.",
    ),
    CatalogueEntry(
        "blip-caption:Salesforce/blip-image-captioning-base",
        "BLIP base captioning",
        "BLIP base captioner fine-tuned on COCO; beam search by default.",
    ),
    CatalogueEntry(
        "flava:facebook/flava-full",
        "FLAVA full (projected [CLS])",
        "FLAVA with the correct contrastive pooling: the projected [CLS] token of each tower.",
    ),
    CatalogueEntry(
        "flava:facebook/flava-full?pooling=mean",
        "FLAVA full (mean pooling, legacy)",
        "FLAVA with mean pooling over unprojected tokens, as an earlier Mirada did; kept to "
        "reproduce old numbers. Expect much worse retrieval than the projected variant.",
    ),
    CatalogueEntry(
        "siglip:google/siglip-base-patch16-224",
        "SigLIP base/16 224 px (Google, transformers)",
        "SigLIP ViT-B/16 trained on WebLI with a sigmoid loss; texts padded to 64 tokens as "
        "trained. Zero-shot also reports the model's own sigmoid probability.",
    ),
    CatalogueEntry(
        "siglip2:google/siglip2-base-patch16-224",
        "SigLIP 2 base/16 224 px (Google, transformers)",
        "SigLIP 2 ViT-B/16 at fixed resolution, multilingual Gemma tokenizer; texts lower-cased "
        "and padded to 64 tokens as trained.",
    ),
    CatalogueEntry(
        "hf-vlm:microsoft/git-base-coco",
        "GIT base (COCO captions)",
        "GIT base fine-tuned on COCO captions; captions unprompted, as its model card does.",
    ),
    CatalogueEntry(
        "hf-vlm:Salesforce/blip2-opt-2.7b",
        "BLIP-2 OPT-2.7b",
        "BLIP-2 with a frozen OPT-2.7b decoder (3.7B parameters; 15 GB in fp32, so a GPU in "
        "fp16/bf16 suits it); captions unprompted by default.",
    ),
    CatalogueEntry(
        "hf-vlm:HuggingFaceTB/SmolVLM-256M-Instruct",
        "SmolVLM-256M-Instruct (chat)",
        "The smallest SmolVLM chat model, asked through its chat template (by default "
        "'Describe this image in one sentence.'). Captions follow the prompt: compare runs "
        "made with the same one.",
    ),
    CatalogueEntry(
        "hf-clip:mirada/demo-clip",
        "Demo CLIP (tiny, shapes)",
        "A tiny CLIP trained on the bundled synthetic shapes dataset; ships with Mirada.",
    ),
    CatalogueEntry(
        "hf-clip:mirada/demo-clip-random",
        "Demo CLIP (tiny, untrained)",
        "Same shape as demo-clip but untrained: a chance-level baseline.",
    ),
    CatalogueEntry(
        "blip-caption:mirada/demo-blip",
        "Demo BLIP captioner (tiny, shapes)",
        "A tiny BLIP captioner trained on the bundled synthetic shapes dataset.",
    ),
]

# The real-size random-weight presets, each labelled so no one mistakes them for real models.
CATALOGUE += [
    CatalogueEntry(
        p.model_id,
        f"{p.title} [{LATENCY_ONLY}]",
        f"{LATENCY_ONLY.capitalize()}: random weights, seeded, for --task benchmark only. "
        f"Config: {p.config_source}. Tokenizer: {p.tokenizer_source}.",
    )
    for p in PRESETS.values()
]


def list_catalogue() -> list[CatalogueEntry]:
    return list(CATALOGUE)
