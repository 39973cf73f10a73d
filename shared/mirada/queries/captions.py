"""Read models of the Captions page: generated vs reference captions and the corpus metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import GeneratedCaption, Metric, Run
from mirada.metrics import clipscore
from mirada.metrics.captioning import CIDER_NOTE, IMPLEMENTATIONS, TOKENIZATION
from mirada.metrics.formatting import no_interval_reason
from mirada.metrics.names import (
    BLEU_4,
    CAPTION_METRICS,
    CIDER,
    CLIPSCORE_METRICS,
    DEGENERATION_METRICS,
    METEOR,
    REPEATED_NGRAM_RATE,
    ROUGE_L,
    metric_name,
)
from mirada.queries.common import caption_frame, item_frame, run_info
from mirada.queries.results import run_metrics

# Per-image scores shown on the Captions page (GeneratedCaption.scores keys); the CLIPScore
# columns are empty (None) for runs without --clipscore-model.
TABLE_METRICS: tuple[str, ...] = (BLEU_4, METEOR, ROUGE_L, CIDER, *CLIPSCORE_METRICS)
TABLE_COLUMNS = [
    "item_id",
    "filename",
    "category",
    "generated",
    "references",
    *TABLE_METRICS,
    "degenerate",
    REPEATED_NGRAM_RATE,
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
    "no_interval",
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
        rec[REPEATED_NGRAM_RATE] = flags.get(REPEATED_NGRAM_RATE)
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
    interval ("95% bootstrap" / "95% Wilson", None without a CI), no_interval (why there is
    no CI, `formatting.no_interval_reason`: corpus-level BLEU and METEOR quote their per-image
    mean's bootstrap CI; None when there is one).
    """
    overall = run_metrics(run_id)
    with read_session() as s:
        details: dict[str, Any] = dict(
            s.execute(
                select(Metric.name, Metric.details).where(
                    Metric.run_id == run_id, Metric.category.is_(None)
                )
            ).all()
        )
    overall = overall[overall["category"].isna()].drop_duplicates("name").set_index("name")
    first = (*CAPTION_METRICS, *CLIPSCORE_METRICS)
    order = [k for k in first if k in overall.index]
    order += [k for k in overall.index if k not in first]
    clip_model = clipscore_model(run_id)
    rows = []
    for key in order:
        r = overall.loc[key]
        info = metric_name(key)
        implementation = IMPLEMENTATIONS.get(key, "")
        if key in DEGENERATION_METRICS:
            implementation = DEGENERATION_IMPLEMENTATION
        if key in CLIPSCORE_METRICS:
            implementation = (
                f"Hessel et al. 2021 (w = {clipscore.W}, texts prefixed "
                f"{clipscore.PREFIX.strip()!r}) with {clip_model}"
            )
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
                "no_interval": None
                if isinstance(r["interval"], str)
                else no_interval_reason(key, details.get(key)),
            }
        )
    return pd.DataFrame(rows, columns=CORPUS_COLUMNS)


def clipscore_model(run_id: int) -> str | None:
    """The embedding model a caption run computed CLIPScore with (--clipscore-model), or None."""
    with read_session() as s:
        options = s.scalar(select(Run.options).where(Run.id == run_id))
    model = (options or {}).get("clipscore_model")
    return str(model) if model else None


def generation_options(run_id: int) -> dict[str, str]:
    """How a caption run's captions were generated, label -> text, for showing beside them:
    prompt, chat template, decoding, max new tokens, and (hf-vlm) the text sent with each image
    and the checkpoint's own decoding settings. {} for a run that does not exist or does not
    caption. Every caption metric depends on these settings.

    From what the model recorded when it captioned (hf-vlm: the fingerprint's "generation"),
    else from the run's options (blip-caption, or a run that has not finished)."""
    from mirada.domain import RunStatus, Task
    from mirada.run_options import CaptionRunOptions
    from mirada.vlm.ids import parse_model_id

    with read_session() as s:
        row = s.execute(
            select(Run.task, Run.model_id, Run.options, Run.model_fingerprint, Run.status).where(
                Run.id == run_id
            )
        ).first()
    if row is None or row.task != Task.caption:
        return {}
    stored = row.options or {}
    defaults = CaptionRunOptions()
    beams = int(stored.get("num_beams", defaults.num_beams))
    max_new = int(stored.get("max_length", defaults.max_length))
    fingerprint = row.model_fingerprint if row.status == RunStatus.succeeded else None
    recorded = ((fingerprint or {}).get("options") or {}).get("generation") or {}
    out: dict[str, str] = {}
    if recorded:
        prompt = recorded.get("prompt")
        source = "the model's default" if recorded.get("prompt_source") == "model default" else ""
        out["prompt"] = (prompt or "none") + (f" ({source})" if source else "")
        out["chat template"] = "applied" if recorded.get("chat_template") else "none"
        out["text sent with each image"] = str(recorded.get("text", ""))
        beams = int(recorded.get("num_beams", beams))
        max_new = int(recorded.get("max_new_tokens", max_new))
    else:
        prompt = stored.get("prompt")
        hf_vlm = parse_model_id(row.model_id).family == "hf-vlm"
        out["prompt"] = (
            prompt if prompt else "the model's default" if hf_vlm and prompt is None else "none"
        )
    out["decoding"] = "greedy" if beams == 1 else f"beam search, {beams} beams"
    out["max new tokens"] = str(max_new)
    settings = recorded.get("checkpoint_settings") or {}
    if settings:
        out["checkpoint decoding settings"] = ", ".join(f"{k}={v}" for k, v in settings.items())
    return out


METEOR_NOTE = (
    "Corpus METEOR is not the mean of the per-image METEOR scores: pycocoevalcap sends every "
    "caption to one METEOR process that pools the matches over the whole set, so precision, "
    "recall and the fragmentation penalty (how scattered the matched words are) are computed "
    "from corpus totals, not averaged image by image. Corpus BLEU-n pools n-gram counts and "
    "the brevity penalty the same way."
)
INTERVAL_NOTE = (
    "BLEU-n and METEOR corpus scores have no confidence interval: they are not means of "
    "per-image values, so resampling images says nothing direct about them. Their per-image "
    "means do have one (95% bootstrap over images: `per_image_mean` and "
    "`per_image_mean_ci` in the metric's details); CIDEr, ROUGE-L, CLIPScore and RefCLIPScore "
    "are means of per-image scores, so their corpus value carries the bootstrap CI itself."
)
CLIPSCORE_NOTE = (
    "CLIPScore = 2.5 × max(cosine(image, generated caption), 0) under the run's "
    "--clipscore-model, with no reference captions: it sees what the image shows, so it "
    "penalises hallucinated objects that n-gram metrics miss. RefCLIPScore is the harmonic "
    "mean of CLIPScore and the best cosine between the generated caption and a reference "
    "(clipped at 0). Both follow Hessel et al. (2021) and are comparable only under the same "
    "embedding model."
)


@dataclass(frozen=True)
class CaptionNotes:
    cider: str  # why CIDEr is comparable only on the same reference set
    tokenization: str  # the tokeniser the COCO metrics use
    meteor: str  # why corpus METEOR (and BLEU) differ from the per-image mean
    intervals: str  # which corpus scores carry a CI and which only per image
    clipscore: str  # what CLIPScore and RefCLIPScore measure


def caption_notes() -> CaptionNotes:
    """The notes the Captions page shows beside the metrics, from the metrics layer."""
    return CaptionNotes(
        cider=CIDER_NOTE,
        tokenization=TOKENIZATION,
        meteor=METEOR_NOTE,
        intervals=INTERVAL_NOTE,
        clipscore=CLIPSCORE_NOTE,
    )


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
    table = table.sort_values(CIDER, ascending=True, kind="stable", na_position="last")
    return table.head(limit).reset_index(drop=True)
