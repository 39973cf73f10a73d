"""Tiny random SigLIP and SigLIP 2 models, with tokenizers built offline.

- SigLIP: a SentencePiece unigram model trained on the demo words (deterministic: one thread,
  identity normalisation), loaded by transformers' SiglipTokenizer like google/siglip-*'s
  spiece.model (T5 layout: <pad> 0, </s> 1, <unk> 2; </s> pads).
- SigLIP 2: a Gemma-style byte-fallback BPE (<pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4,
  the 256 byte tokens, then letters and the demo words built up by merges).

`write_siglip_tokenizer` and `write_siglip2_tokenizer` also made the tokenizers the real-size
presets ship (shared/mirada/vlm/demo_models/siglip-tokenizer, siglip2-tokenizer);
tests/test_vlm_siglip.py checks that they still agree.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from tiny_models import IMAGE, TOWER, WORDS

TEXT_LEN = 16  # text positions of the tiny models (the real ones have 64)


def write_siglip_tokenizer(directory: Path) -> Any:
    """A SiglipTokenizer over a SentencePiece model trained on WORDS, saved to `directory`."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    lines = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 5
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=80,
        hard_vocab_limit=False,  # as many pieces as the words allow
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        normalization_rule_name="identity",
        num_threads=1,
        minloglevel=2,
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spiece.model").write_bytes(model.getvalue())
    tokenizer = SiglipTokenizer(str(directory / "spiece.model"), model_max_length=64)
    tokenizer.save_pretrained(directory)
    return tokenizer


def gemma_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a byte-fallback BPE in Gemma's layout, spelling WORDS."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "▁abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        piece = "▁" + word
        for i in range(1, len(piece)):
            if piece[: i + 1] not in vocab:
                vocab[piece[: i + 1]] = len(vocab)
                merges.append((piece[:i], piece[i]))
    return vocab, merges


def write_siglip2_tokenizer(directory: Path, class_name: str = "GemmaTokenizer") -> Any:
    """The Gemma-style BPE as `class_name` (GemmaTokenizer, as SigLIP 2's fixed-resolution
    checkpoints load it, or Siglip2Tokenizer, as the NaFlex ones do), saved to `directory`."""
    import transformers

    vocab, merges = gemma_vocab()
    tokenizer = getattr(transformers, class_name)(vocab=vocab, merges=merges)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    return tokenizer


def _text(vocab_size: int) -> dict[str, Any]:
    return {**TOWER, "vocab_size": vocab_size, "max_position_embeddings": TEXT_LEN}


def _calibrate(model: Any) -> None:
    # Random init sets logit_scale = logit_bias = 0; real checkpoints learn about
    # (log 110, -13). Set distinct values, so a test can tell them apart.
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
        model.logit_bias.fill_(-3.0)


def _save_fixed_resolution(directory: Path, tokenizer: Any, seed: int) -> Path:
    """A tiny SiglipModel with `tokenizer` and SiglipImageProcessor, saved to `directory`
    (the layout of SigLIP v1 and of SigLIP 2's fixed-resolution checkpoints)."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    vision = {**TOWER, "image_size": IMAGE, "patch_size": 8}
    config = SiglipConfig(text_config=_text(len(tokenizer)), vision_config=vision)
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    _calibrate(model)
    processor = SiglipProcessor(
        image_processor=SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_siglip(directory: Path, seed: int = 0) -> Path:
    """A tiny SiglipModel with SiglipTokenizer and SiglipImageProcessor (SigLIP v1 layout)."""
    return _save_fixed_resolution(directory, write_siglip_tokenizer(directory), seed)


def make_siglip2_fixres(directory: Path, seed: int = 0) -> Path:
    """A tiny SigLIP 2 fixed-resolution checkpoint: SiglipModel with a Gemma tokenizer."""
    tokenizer = write_siglip2_tokenizer(directory, "GemmaTokenizer")
    return _save_fixed_resolution(directory, tokenizer, seed)


# NaFlex at the published patch size and patch budget: Siglip2Processor's own defaults
# (patch 16, 256 patches) override its image processor's settings in transformers 5.25, so a
# tiny model with other values would disagree with the processor.
NAFLEX_PATCH = 16
NAFLEX_PATCHES = 256


def make_siglip2_naflex(directory: Path, seed: int = 0) -> Path:
    """A tiny SigLIP 2 NaFlex checkpoint: Siglip2Model, Siglip2Tokenizer, Siglip2Processor."""
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model, Siglip2Processor

    tokenizer = write_siglip2_tokenizer(directory, "Siglip2Tokenizer")
    vision = {**TOWER, "patch_size": NAFLEX_PATCH, "num_patches": NAFLEX_PATCHES}
    config = Siglip2Config(text_config=_text(len(tokenizer)), vision_config=vision)
    torch.manual_seed(seed)
    model = Siglip2Model(config).eval()
    _calibrate(model)
    processor = Siglip2Processor(
        image_processor=Siglip2ImageProcessor(
            patch_size=NAFLEX_PATCH, max_num_patches=NAFLEX_PATCHES
        ),
        tokenizer=tokenizer,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
