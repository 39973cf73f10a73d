"""The precision variants a benchmark run measured (its "variants" artifact, written by
`mirada.worker.tasks.variants`): what `mirada show` prints and `--json` returns as `variants`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from mirada.db import read_session
from mirada.db.models import RunArtifact
from mirada.results import VARIANTS_ARTIFACT

# the columns `mirada show` prints, in order (every record has more; see VariantRecord)
VARIANT_COLUMNS = (
    "name",
    "images_per_s",
    "texts_per_s",
    "captions_per_s",
    "speedup_vs_fp32",
    "min_cosine_to_fp32",
    "caption_identical_share",
    "caption_bleu4_to_fp32",
    "compile_s",
    "unavailable_reason",
)


def run_variants(run_id: int) -> list[dict[str, Any]] | None:
    """One object per variant (name, images_per_s, min_cosine_to_fp32, ...), the fp32 reference
    first; None for a run measured without variants."""
    with read_session() as s:
        blob = s.scalar(
            select(RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == VARIANTS_ARTIFACT
            )
        )
    if blob is None:
        return None
    records: list[dict[str, Any]] = json.loads(blob)
    return records


def variant_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as `mirada show` prints them: rates to 0.1, cosines to 6 decimals (their
    interesting digits are the last ones), the reference and the unavailable marked."""

    def fixed(value: Any, digits: int) -> str | None:
        return None if value is None else f"{value:.{digits}f}"

    rows = []
    for r in records:
        name = r["name"] + (" (reference)" if r.get("reference") else "")
        rows.append(
            {
                "name": name,
                "images_per_s": fixed(r.get("images_per_s"), 1),
                "texts_per_s": fixed(r.get("texts_per_s"), 1),
                "captions_per_s": fixed(r.get("captions_per_s"), 2),
                "speedup_vs_fp32": fixed(r.get("speedup_vs_fp32"), 2),
                "min_cosine_to_fp32": fixed(r.get("min_cosine_to_fp32"), 6),
                "caption_identical_share": fixed(r.get("caption_identical_share"), 3),
                "caption_bleu4_to_fp32": fixed(r.get("caption_bleu4_to_fp32"), 3),
                "compile_s": fixed(r.get("compile_s"), 1),
                "unavailable_reason": r.get("unavailable_reason"),
            }
        )
    return rows
