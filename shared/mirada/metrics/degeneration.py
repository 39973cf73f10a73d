"""Degeneration indicators for generated captions: repetition loops and generic captions.

Tokens: lower-cased word tokens (`[\\w']+`), punctuation dropped.

Per caption:
- repeated_ngram_rate = max over n = 1, 2, 3 of (n-grams - distinct n-grams) / n-grams, where
  unigrams count content words only (a small English stop-word list is ignored, so the three
  "a"s of "a man riding a horse on a beach" are not repetition). Examples:
  "a bowl of salsa and a bowl of salsa" 0.5, "pain pain de pain" 0.5, "cheese, let and let"
  0.33, "a red car and a red truck" 0.25.
- verbatim_repeat: the same normalised caption was generated for at least one other image.
- degenerate: repeated_ngram_rate >= REPEAT_THRESHOLD (0.3), or a content word immediately
  repeated ("pain pain"), or the caption is shared verbatim by >= GENERIC_MIN_IMAGES (3)
  images (generic captions such as "a body of water"). `reasons` says which.

Corpus: distinct-1 / distinct-2 (distinct n-grams / all n-grams over the whole run),
verbatim_repeat_share, mean repeated_ngram_rate, degenerate_share.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from mirada.metrics import names

REPEAT_THRESHOLD = 0.3
GENERIC_MIN_IMAGES = 3

_TOKEN = re.compile(r"[\w']+")
STOPWORDS = frozenset(
    "a an the of and or in on at to with by for from into onto over under near next is are "
    "was were be been being it its this that these those there their his her he she they "
    "some while as up down out off".split()
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def normalise(text: str) -> str:
    return " ".join(tokens(text))


def _ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def _repeat_share(grams: Sequence[Any]) -> float:
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def caption_repetition(text: str) -> tuple[float, list[str]]:
    """(repeated_ngram_rate, reasons) for one caption (reasons only describe repetition)."""
    toks = tokens(text)
    content = [t for t in toks if t not in STOPWORDS]
    rates = [
        _repeat_share(content),
        _repeat_share(_ngrams(toks, 2)),
        _repeat_share(_ngrams(toks, 3)),
    ]
    rate = max(rates)
    reasons: list[str] = []
    if rate >= REPEAT_THRESHOLD:
        longest = ""
        for n in range(min(len(toks) // 2, 6), 0, -1):
            counts = Counter(_ngrams(toks, n))
            rep = [g for g, c in counts.items() if c > 1 and any(w not in STOPWORDS for w in g)]
            if rep:
                longest = " ".join(rep[0])
                break
        reasons.append(f"repeats {longest!r} (repeated n-gram rate {rate:.2f})")
    doubled = sorted({a for a, b in itertools.pairwise(toks) if a == b and a not in STOPWORDS})
    if doubled:
        reasons.append(f"word repeated back to back: {', '.join(doubled)}")
    return float(rate), reasons


def degeneration(
    captions: Mapping[Any, str], *, generic_min_images: int = GENERIC_MIN_IMAGES
) -> tuple[dict[Any, dict[str, Any]], dict[str, float]]:
    """Per-caption flags {id: {"repeated_ngram_rate", "verbatim_repeat", "degenerate",
    "reasons"}} and corpus metrics {"distinct-1", "distinct-2", "verbatim_repeat_share",
    "repeated_ngram_rate", "degenerate_share"} for one caption per image."""
    norm = {k: normalise(v) for k, v in captions.items()}
    shared = Counter(norm.values())
    flags: dict[Any, dict[str, Any]] = {}
    uni: list[str] = []
    bi: list[tuple[str, ...]] = []
    for key, text in captions.items():
        toks = tokens(text)
        uni.extend(toks)
        bi.extend(_ngrams(toks, 2))
        rate, reasons = caption_repetition(text)
        copies = shared[norm[key]] if norm[key] else 0
        verbatim = copies >= 2
        if not toks:
            reasons.append("empty: the model generated no words")
        if copies >= generic_min_images:
            reasons.append(f"generic: the same caption was generated for {copies} images")
        flags[key] = {
            names.REPEATED_NGRAM_RATE: rate,
            "verbatim_repeat": verbatim,
            "degenerate": bool(reasons),
            "reasons": reasons,
        }
    n = len(flags)
    nan = float("nan")
    corpus = {
        names.distinct(1): len(set(uni)) / len(uni) if uni else nan,
        names.distinct(2): len(set(bi)) / len(bi) if bi else nan,
        names.VERBATIM_REPEAT_SHARE: sum(f["verbatim_repeat"] for f in flags.values()) / n
        if n
        else nan,
        names.REPEATED_NGRAM_RATE: sum(f[names.REPEATED_NGRAM_RATE] for f in flags.values()) / n
        if n
        else nan,
        names.DEGENERATE_SHARE: sum(f["degenerate"] for f in flags.values()) / n if n else nan,
    }
    return flags, corpus
