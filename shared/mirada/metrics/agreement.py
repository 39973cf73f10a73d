"""How closely a variant's outputs agree with the fp32 reference's on the same items.

Embeddings: the cosine between each item's two vectors (mean and minimum over items), in
float64 whatever the dtypes were. Captions: the share of items whose caption is identical,
and corpus BLEU-4 of the variant's captions with the fp32 captions as the one reference each
(pycocoevalcap's Bleu(4), closest reference length). BLEU here measures drift between two
outputs of one model, not caption quality, so it uses a plain tokenisation (lower case, words
and punctuation split, no Java) instead of the PTB tokenizer the official COCO metrics need.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class CosineAgreement:
    mean: float
    min: float
    n: int  # items compared


@dataclass(frozen=True)
class CaptionAgreement:
    identical_share: float  # 0..1
    bleu4: float  # corpus BLEU-4 against the reference captions, 0..1
    n: int


def cosine_agreement(reference: np.ndarray, candidate: np.ndarray) -> CosineAgreement:
    """Row-wise cosine between two [N, D] arrays of the same items (any float dtype).

    Identical rows give exactly 1. A zero row agrees only with a zero row (cosine 1 if both
    are zero, else 0), so a variant that collapses to zeros shows as disagreement, never NaN."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != cand.shape:
        raise ValueError(f"need two [N, D] arrays of one shape, got {ref.shape} and {cand.shape}")
    if ref.shape[0] == 0:
        raise ValueError("no items to compare")
    ref_norm, cand_norm = np.linalg.norm(ref, axis=1), np.linalg.norm(cand, axis=1)
    norms = ref_norm * cand_norm
    dots = np.einsum("nd,nd->n", ref, cand)
    both_zero = (ref_norm == 0) & (cand_norm == 0)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1, 0))
    # identical rows agree exactly (the float64 quotient can land one ulp below 1)
    cos = np.where((ref == cand).all(axis=1), 1.0, np.clip(cos, -1.0, 1.0))
    return CosineAgreement(float(cos.mean()), float(cos.min()), int(ref.shape[0]))


def _tokens(text: str) -> str:
    return " ".join(_TOKEN.findall(text.lower()))


def caption_agreement(reference: Sequence[str], candidate: Sequence[str]) -> CaptionAgreement:
    """Identical share and BLEU-4 of `candidate` captions against `reference` (item by item)."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference captions but {len(candidate)} candidates")
    if not reference:
        raise ValueError("no captions to compare")
    from pycocoevalcap.bleu.bleu import Bleu

    identical = sum(r == c for r, c in zip(reference, candidate, strict=True))
    gts = {i: [_tokens(r)] for i, r in enumerate(reference)}
    res = {i: [_tokens(c)] for i, c in enumerate(candidate)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return CaptionAgreement(identical / len(reference), float(bleu[3]), len(reference))
