"""Read models of the Captions page: generated vs reference captions and the corpus metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import GeneratedCaption
from mirada.metrics.captioning import CIDER_NOTE, IMPLEMENTATIONS, TOKENIZATION
from mirada.metrics.names import CAPTION_METRICS, DEGENERATION_METRICS, metric_name
from mirada.queries.common import caption_frame, item_frame, run_info
from mirada.queries.results import run_metrics

# Per-image scores shown on the Captions page (GeneratedCaption.scores keys).
TABLE_METRICS: tuple[str, ...] = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
TABLE_COLUMNS = [
    "item_id",
    "filename",
    "category",
    "generated",
    "references",
    *TABLE_METRICS,
    "degenerate",
    "repeated_ngram_rate",
    "verbatim_repeat",
    "reasons",
]
CORPUS_COLUMNS = [
    "metric",
    "label",
    "help",
    "value",
    "ci_low",
    "ci_high",
    "implementation",
    "unavailable",
    "interval",
]
DEGENERATION_IMPLEMENTATION = "degeneration indicators (mirada.metrics.degeneration)"


def score_value(scores: dict[str, Any] | None, metric: str) -> float | None:
    """A per-image caption score by its key (`names.CAPTION_METRICS`), or None."""
    value = (scores or {}).get(metric)
    return None if value is None else float(value)


def caption_table(run_id: int) -> pd.DataFrame:
    """Generated vs reference captions with per-image scores and degeneration flags, in
    dataset order. Columns: TABLE_COLUMNS (references joined with ' | ')."""
    info = run_info(run_id)
    if info is None:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    with read_session() as s:
        rows = s.execute(
            select(
                GeneratedCaption.item_id,
                GeneratedCaption.text,
                GeneratedCaption.scores,
                GeneratedCaption.flags,
            ).where(GeneratedCaption.run_id == run_id)
        ).all()
    if not rows:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    items = item_frame(info.dataset_id)
    caps = caption_frame(info.dataset_id)
    refs = caps.groupby("item_id")["text"].apply(lambda t: " | ".join(t)).to_dict()
    meta = items.set_index("item_id")
    out = []
    for item_id, text, scores, flags in rows:
        flags = flags or {}
        known = item_id in meta.index
        rec: dict[str, Any] = {
            "item_id": item_id,
            "filename": meta.at[item_id, "filename"] if known else None,
            "category": meta.at[item_id, "category"] if known else None,
            "generated": text,
            "references": refs.get(item_id, ""),
        }
        for m in TABLE_METRICS:
            rec[m] = score_value(scores, m)
        rec["degenerate"] = bool(flags.get("degenerate", False))
        rec["repeated_ngram_rate"] = flags.get("repeated_ngram_rate")
        rec["verbatim_repeat"] = bool(flags.get("verbatim_repeat", False))
        rec["reasons"] = "; ".join(flags.get("reasons", []) or [])
        out.append(rec)
    df = pd.DataFrame(out, columns=TABLE_COLUMNS)
    df["_pos"] = df["item_id"].map(meta["position"])
    return df.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)


def caption_corpus(run_id: int) -> pd.DataFrame:
    """Corpus caption metrics: the COCO metrics in `names.CAPTION_METRICS` order, then the
    run's other overall metrics (degeneration indicators).

    Columns: metric (key), label, help, value, ci_low, ci_high, implementation, unavailable,
    interval ("95% bootstrap" / "95% Wilson", None without a CI).
    """
    overall = run_metrics(run_id)
    overall = overall[overall["category"].isna()].drop_duplicates("name").set_index("name")
    order = [k for k in CAPTION_METRICS if k in overall.index]
    order += [k for k in overall.index if k not in CAPTION_METRICS]
    rows = []
    for key in order:
        r = overall.loc[key]
        info = metric_name(key)
        implementation = IMPLEMENTATIONS.get(key, "")
        if key in DEGENERATION_METRICS:
            implementation = DEGENERATION_IMPLEMENTATION
        rows.append(
            {
                "metric": key,
                "label": info.label,
                "help": info.help,
                "value": r["value"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "implementation": implementation,
                "unavailable": r["unavailable"],
                "interval": r["interval"],
            }
        )
    return pd.DataFrame(rows, columns=CORPUS_COLUMNS)


@dataclass(frozen=True)
class CaptionNotes:
    cider: str  # why CIDEr is comparable only on the same reference set
    tokenization: str  # the tokeniser the COCO metrics use


def caption_notes() -> CaptionNotes:
    """The CIDEr note and the tokenisation, from the metrics layer."""
    return CaptionNotes(cider=CIDER_NOTE, tokenization=TOKENIZATION)


def hardest_captions(
    run_id: int, *, category: str | None = None, degenerate_only: bool = False, limit: int = 24
) -> pd.DataFrame:
    """The generated captions that score worst: lowest per-image CIDEr first (missing scores
    last), of one category and only the degenerate ones when asked. Columns: TABLE_COLUMNS."""
    table = caption_table(run_id)
    if category is not None:
        table = table[table["category"] == category]
    if degenerate_only:
        table = table[table["degenerate"]]
    table = table.sort_values("CIDEr", ascending=True, kind="stable", na_position="last")
    return table.head(limit).reset_index(drop=True)
