"""Real-size architectures with random, seeded weights: "latency only" models.

Latency, throughput and memory depend only on the architecture, so these models measure the
study's models' speed on a machine that cannot download their weights. Their outputs mean
nothing: they are for `--task benchmark` only (refused at queue time for match and caption).

Ids: `<family>:random:<preset>`, e.g. `blip-caption:random:blip-base-384`. Each preset says
where its configuration comes from. The table is plain data (the id parser reads it); the
builders import transformers only when a model is loaded.

Tokenizers are built offline from files shipped with Mirada. The transformers families reuse
the demo models' tokenizers (shared/vlm/demo_models): their vocabularies are tiny (CLIP BPE:
596 tokens, BERT WordPiece: 34), so a text tokenizes to a different number of tokens than with
the real tokenizer (text latency shifts accordingly) and generated captions decode to mostly
empty strings. The embedding tables keep the real vocabulary size (49408 for CLIP, 30524 for
BLIP, 30522 for FLAVA), so parameter count and memory are the real models'; only token ids
below the tiny vocabulary's size are ever looked up. The SigLIP presets ship their own tiny
tokenizers (demo_models/siglip-tokenizer: SentencePiece, 52 pieces; siglip2-tokenizer: Gemma-
style BPE, 373 tokens; built by tests/tiny_siglip.py); SigLIP pads every text to the model's
64 positions, so their text latency is the real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

RANDOM_PREFIX = "random:"  # id body prefix: `<family>:random:<preset>`
LATENCY_ONLY = "latency only"  # the label shown wherever these models are listed
_DEMO_DIR = Path(__file__).resolve().parent / "demo_models"


@dataclass(frozen=True)
class Preset:
    family: str
    name: str
    title: str
    config_source: str  # where the configuration's values come from
    tokenizer_source: str
    # config kwargs on top of the library defaults (transformers families only)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    tokenizer_dir: str | None = None  # demo model whose tokenizer is reused (transformers)
    # the transformers config class, for families whose presets differ in architecture (hf-vlm)
    config_class: str | None = None
    # too large for a CPU benchmark: refused on CPU with a message naming --device cuda
    gpu_only: bool = False

    @property
    def model_id(self) -> str:
        return f"{self.family}:{RANDOM_PREFIX}{self.name}"


_BERT_TOKENIZER = (
    "the demo BLIP's BERT WordPiece tokenizer (34 tokens; the embedding table keeps the real "
    "size, so memory is unchanged)"
)
_BLIP_384 = {
    # BlipConfig's defaults are BLIP base (ViT-B/16, BERT-base text). image_size 384 as in
    # Salesforce/blip-image-captioning-base's published config (and blip-itm-base-coco's);
    # BlipVisionConfig's default initializer_range (1e-10) gives degenerate weights, the
    # published configs' text side and every other tower use 0.02.
    "vision_config": {"image_size": 384, "initializer_range": 0.02},
}
_VLM_TOKENIZER = (
    "a word-level tokenizer over the demo words with the model's special tokens (image, "
    "chat markers), built in code (mirada.vlm.hf_vlm); the embedding table keeps the real size"
)
_BLIP_SOURCE = (
    "transformers BlipConfig defaults (BLIP base); image_size=384 from "
    "Salesforce/blip-image-captioning-base's published config; vision initializer_range=0.02"
)

PRESETS: dict[tuple[str, str], Preset] = {
    (p.family, p.name): p
    for p in (
        Preset(
            "hf-clip",
            "clip-vit-b-32",
            "CLIP ViT-B/32 size, random weights (transformers)",
            "transformers CLIPConfig defaults, which are openai/clip-vit-base-patch32's "
            "published config (ViT-B/32 at 224 px, 12-layer 512-wide text tower)",
            "the demo CLIP's BPE tokenizer (596 tokens; the embedding table keeps 49408 rows)",
            tokenizer_dir="demo-clip",
        ),
        Preset(
            "open-clip",
            "ViT-B-32",
            "OpenCLIP ViT-B/32 size, random weights",
            "open_clip's ViT-B-32 model config, shipped inside the open_clip package",
            "open_clip's bundled CLIP BPE tokenizer (the real one)",
        ),
        Preset(
            "blip-itm",
            "blip-base-384",
            "BLIP base retrieval size at 384 px, random weights",
            _BLIP_SOURCE,
            _BERT_TOKENIZER,
            _BLIP_384,
            "demo-blip",
        ),
        Preset(
            "blip-caption",
            "blip-base-384",
            "BLIP base captioner size at 384 px, random weights",
            _BLIP_SOURCE,
            _BERT_TOKENIZER,
            _BLIP_384,
            "demo-blip",
        ),
        Preset(
            "flava",
            "flava-full",
            "FLAVA full size, random weights",
            "transformers FlavaConfig defaults, which are facebook/flava-full's published "
            "config: image, text and multimodal towers as FlavaModel (241M parameters; the "
            "pre-training heads and the image codebook are not loaded, as for the real model)",
            _BERT_TOKENIZER,
            tokenizer_dir="demo-blip",
        ),
        Preset(
            "siglip",
            "siglip-base-patch16-224",
            "SigLIP base/16 at 224 px size, random weights",
            "transformers SiglipConfig defaults, which are google/siglip-base-patch16-224's "
            "published config (ViT-B/16 at 224 px, 12-layer 768-wide text tower, 32000-token "
            "vocabulary, 64 text positions)",
            "a SentencePiece tokenizer trained on the demo words (52 pieces, the real one's "
            "lower-casing and punctuation removal; the embedding table keeps 32000 rows)",
            tokenizer_dir="siglip-tokenizer",
        ),
        Preset(
            "siglip2",
            "siglip2-base-patch16-224",
            "SigLIP 2 base/16 at 224 px (fixed resolution) size, random weights",
            "transformers SiglipConfig defaults (SigLIP 2's fixed-resolution checkpoints use "
            "SiglipModel) with the Gemma tokenizer's 256000-token vocabulary, as "
            "google/siglip2-base-patch16-224",
            "a Gemma-style byte-fallback BPE built from the demo words (373 tokens; the "
            "embedding table keeps 256000 rows)",
            {"text_config": {"vocab_size": 256_000}},
            "siglip2-tokenizer",
        ),
        Preset(
            "hf-vlm",
            "blip2-opt-2.7b",
            "BLIP-2 OPT-2.7b size, random weights (GPU only)",
            "Salesforce/blip2-opt-2.7b's published config: transformers Blip2Config defaults "
            "for the ViT-g/14 vision tower (224 px) and the Q-Former (32 queries), OPT-2.7b "
            "text (2560 wide, 32 layers, 32 heads, ffn 10240, vocabulary 50304)",
            _VLM_TOKENIZER,
            {
                "text_config": {
                    "model_type": "opt",
                    "hidden_size": 2560,
                    "word_embed_proj_dim": 2560,
                    "ffn_dim": 10240,
                    "num_hidden_layers": 32,
                    "num_attention_heads": 32,
                    "vocab_size": 50304,
                },
                "num_query_tokens": 32,
            },
            config_class="Blip2Config",
            gpu_only=True,  # 3.9B parameters: 15 GB in fp32
        ),
        Preset(
            "hf-vlm",
            "smolvlm-256m",
            "SmolVLM-256M-Instruct size, random weights",
            "HuggingFaceTB/SmolVLM-256M-Instruct's published config (Idefics3 architecture): "
            "SigLIP base/16 at 512 px, pixel shuffle 4 (64 tokens per 512 px tile), "
            "SmolLM2-135M text (576 wide, 30 layers, 9 heads, 3 KV heads, vocabulary 49280, "
            "untied head); images split into 512 px tiles up to a 2048 px longest edge, "
            "plus the global view",
            _VLM_TOKENIZER + "; SmolVLM's chat template",
            {
                "vision_config": {
                    "hidden_size": 768,
                    "intermediate_size": 3072,
                    "num_hidden_layers": 12,
                    "num_attention_heads": 12,
                    "image_size": 512,
                    "patch_size": 16,
                },
                "text_config": {
                    "model_type": "llama",
                    "hidden_size": 576,
                    "intermediate_size": 1536,
                    "num_hidden_layers": 30,
                    "num_attention_heads": 9,
                    "num_key_value_heads": 3,
                    "head_dim": 64,
                    "vocab_size": 49280,
                    "max_position_embeddings": 8192,
                    "rope_theta": 100000.0,
                    "rms_norm_eps": 1e-5,
                    "tie_word_embeddings": False,
                },
                "scale_factor": 4,
                "tie_word_embeddings": False,
            },
            config_class="Idefics3Config",
        ),
    )
}


def gpu_only_refusal(preset: Preset) -> str:
    """Why a GPU-only preset does not run on the CPU (at queue time and at load)."""
    return (
        f"{preset.model_id} is marked GPU only: at its real size it needs more memory and "
        "time than a CPU benchmark is worth. Run it with --device cuda (or auto on a machine "
        "with a GPU), or pick a smaller preset from `mirada models`."
    )


def get_preset(family: str, name: str) -> Preset | None:
    return PRESETS.get((family, name))


def preset_names(family: str) -> list[str]:
    return [name for fam, name in PRESETS if fam == family]


@dataclass
class BuiltPreset:
    """A transformers preset built from its config: random-initialised from torch's RNG."""

    model: torch.nn.Module
    tokenizer: Any
    processor: Any
    revision: str


def build_hf_preset(preset: Preset, model_class: Any) -> BuiltPreset:
    """`model_class(config)` with the preset's config, its tokenizer and image processor.
    The weights come from torch's RNG (load_adapter seeds it)."""
    import transformers
    from transformers import AutoTokenizer

    config_class, processor_class = _HF_CLASSES[preset.family]
    config = getattr(transformers, config_class)(**preset.overrides)
    vision: Any = getattr(config, "vision_config", None) or config.image_config
    size = int(vision.image_size)
    processor: Any = getattr(transformers, processor_class)(
        **({"size": {"height": size, "width": size}} if preset.family.startswith("blip") else {})
    )
    assert preset.tokenizer_dir is not None, preset
    tokenizer = AutoTokenizer.from_pretrained(
        str(_DEMO_DIR / preset.tokenizer_dir), local_files_only=True
    )
    model = model_class(config)
    return BuiltPreset(
        model, tokenizer, processor, f"random-transformers-{transformers.__version__}"
    )


# family -> (transformers config class, image processor class), by name: no import here
_HF_CLASSES: dict[str, tuple[str, str]] = {
    "hf-clip": ("CLIPConfig", "CLIPImageProcessor"),
    "blip-itm": ("BlipConfig", "BlipImageProcessor"),
    "blip-caption": ("BlipConfig", "BlipImageProcessor"),
    "flava": ("FlavaConfig", "FlavaImageProcessor"),
    "siglip": ("SiglipConfig", "SiglipImageProcessor"),
    "siglip2": ("SiglipConfig", "SiglipImageProcessor"),
}
