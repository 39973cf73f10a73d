"""Captions: generated vs reference captions with per-image scores, degeneration flags and
the corpus metrics with their implementation; the worst captions as a gallery, and the item
view of one image (`?run=R&item=I`) that every table row links to."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from mirada.dashboard import charts, data, item_view, links
from mirada.domain import Task
from mirada.metrics.formatting import MISSING, format_interval, format_metric
from mirada.metrics.names import CIDER, CLIPSCORE_METRICS, METRICS, label, metric_name
from mirada.queries.captions import TABLE_METRICS
from mirada.text_safety import markdown_text

st.title("Captions")
data.ensure_database()

run_id, info = data.pick_finished_run(
    Task.caption,
    "Caption run",
    "captions_run",
    "**No finished caption runs yet.** Queue one with a captioning model, e.g. "
    "`mirada queue --dataset NAME --model blip-caption:mirada/demo-blip --task caption`, "
    "and start `mirada worker`.",
)
st.caption(
    f"**{markdown_text(info.model)}** on **{markdown_text(info.dataset)}** · "
    f"finished {info.finished_at}"
)
TABLE_ROWS = 300
GALLERY_SIZE = 18

wanted_item = item_view.selected_item()
if wanted_item is not None:
    item_view.item_view(links.CAPTIONS, run_id, wanted_item)

st.subheader("Corpus metrics")
corpus = data.caption_corpus(run_id)
notes = data.caption_notes()
main = corpus[corpus["metric"].isin(TABLE_METRICS)]
cols = st.columns(max(1, len(main)))
for col, r in zip(cols, main.to_dict("records"), strict=False):
    with col.container(border=True):
        # the name as wrapping text: st.metric's own label is cut off in a narrow card
        st.markdown(f"**{r['label']}**", help=f"{r['implementation']}. {r['help']}")
        if pd.isna(r["value"]):
            st.metric(r["label"], "unavailable", label_visibility="collapsed")
            st.caption(f":material/warning: {markdown_text(r['unavailable'] or 'not computed')}")
        else:
            ci = format_interval(r["metric"], r["ci_low"], r["ci_high"])
            value = format_metric(r["metric"], r["value"])
            st.metric(r["label"], value, label_visibility="collapsed")
            # "95% bootstrap [..]", or why a corpus-level score has none
            st.caption(f"{r['interval']} {ci}" if ci else "corpus-level: no interval")


def _interval(r: Mapping[Hashable, Any]) -> str:
    """The corpus table's interval cell: the CI in the metric's units, or why there is none."""
    ci = format_interval(r["metric"], r["ci_low"], r["ci_high"])
    if ci:
        return f"{ci} ({r['interval']})" if isinstance(r["interval"], str) else ci
    return r["no_interval"] if isinstance(r["no_interval"], str) else MISSING


# Every cell is text formatted here (format_metric), so none reads None or nan; the raw
# numbers are in the downloads.
shown_corpus = pd.DataFrame(
    {
        "metric": corpus["label"],
        "key": corpus["metric"],
        "value": [
            format_metric(k, v) if not pd.isna(v) else "unavailable"
            for k, v in zip(corpus["metric"], corpus["value"], strict=True)
        ],
        "95% interval": [_interval(r) for r in corpus.to_dict("records")],
        "implementation": corpus["implementation"],
    }
)
# A static table: it wraps the longer reasons and implementations and shows every row, where
# a grid cut them off at its column edge and scrolled inside a box.
st.table(charts.table_text(shown_corpus), hide_index=True)
# the downloads are `mirada export --format csv`'s tables, byte for byte (one schema)
data.downloads(data.export_table(run_id, "metrics"), f"run{run_id}_metrics", "captions_corpus_dl")
unavailable = corpus[corpus["unavailable"].notna()]
for r in unavailable.to_dict("records"):
    st.warning(f"**{r['label']} unavailable:** {markdown_text(r['unavailable'])}")
st.caption(
    "Implementation: pycocoevalcap (the official COCO caption code) — BLEU 1-4, METEOR 1.5 "
    "(Java), ROUGE-L, CIDEr-D with the IDF of this set's own references. "
    + (f"Tokenisation: {notes.tokenization}." if notes.tokenization else "")
)
st.info(f"**About CIDEr:** {notes.cider}", icon=":material/info:")
with st.expander(
    "Why corpus METEOR differs from the mean of per-image METEOR, and which scores have a CI"
):
    st.markdown(notes.meteor)  # our own text (no user input): plain sentences
    st.markdown(notes.intervals)
if corpus["metric"].isin(CLIPSCORE_METRICS).any():  # the metric table's own words
    about = " ".join(
        f"**{key}:** {markdown_text(METRICS[key].description)}" for key in CLIPSCORE_METRICS
    )
    st.info(about, icon=":material/info:")

st.subheader("Generated vs reference captions")
generation = data.generation_options(run_id)
if generation:  # every caption metric depends on how the captions were generated
    st.caption(
        "Generated with "
        + " · ".join(f"{markdown_text(k)}: **{markdown_text(v)}**" for k, v in generation.items())
    )
table = data.caption_table(run_id)
# the CLIPScore columns only for runs that computed them (--clipscore-model)
shown_metrics = [k for k in TABLE_METRICS if k not in CLIPSCORE_METRICS or table[k].notna().any()]
if table[CIDER].notna().any():
    st.altair_chart(
        charts.score_histogram(
            table,
            value=CIDER,
            color="degenerate",
            title=f"Per-image {label(CIDER)} (coloured: degenerate)",
        ),
        width="stretch",
    )
st.subheader("Worst captions first")
c1, c2 = st.columns([2, 1])
cats = data.dataset_categories(info.dataset_id)
category = c1.selectbox("Category", ["All", *cats], key="captions_hardest_cat")
only_degenerate = c2.toggle("Only degenerate", key="captions_hardest_degenerate")
tiles = data.hardest_captions(
    run_id,
    category=None if category == "All" else category,
    degenerate_only=only_degenerate,
    limit=GALLERY_SIZE,
)
st.caption(
    "Lowest per-image CIDEr first. Under each image: the generated caption, its CIDEr and, "
    "when flagged, why it is degenerate."
)
tiles = tiles.assign(
    said=["“" + str(t) + "”" for t in tiles["generated"]],
    score=[
        f"{f} · {label(CIDER)} {format_metric(CIDER, c)}"
        for f, c in zip(tiles["filename"], tiles[CIDER], strict=True)
    ],
    why=[
        f"degenerate: {r}" if d else ""
        for d, r in zip(tiles["degenerate"], tiles["reasons"], strict=True)
    ],
)
item_view.gallery(tiles, "captions_hardest", lines=["score", "said", "why"])

st.subheader("Every generated caption")
only_bad = st.toggle("Only degenerate captions", key="captions_only_degenerate")
shown = table[table["degenerate"]] if only_bad else table
st.caption(
    f"{int(table['degenerate'].sum())} of {len(table)} generated captions are flagged as "
    "degenerate (repetition loops or a caption shared by several images). "
    + (f"Showing the first {TABLE_ROWS}. " if len(shown) > TABLE_ROWS else "")
    + "Click a row (or its link) to open the image."
)
item_view.linked_table(
    shown,
    links.CAPTIONS,
    run_id,
    "captions_table",
    limit=TABLE_ROWS,
    columns=[
        "filename",
        "category",
        "generated",
        *shown_metrics,
        "degenerate",
        "reasons",
        "references",
    ],
    config={
        "references": st.column_config.TextColumn("references", width="large"),
        "generated": st.column_config.TextColumn("generated", width="medium"),
        **{
            key: st.column_config.NumberColumn(
                metric_name(key).label, format="%.3f", help=metric_name(key).help
            )
            for key in shown_metrics
        },
    },
)
data.downloads(data.export_table(run_id, "items"), f"run{run_id}_items", "captions_dl")
