"""What the Results and Captions pages share to show the images behind a number: tables with
thumbnails and links, the item view (`?run=R&item=I`) and the hardest-cases gallery.

The URL carries the selection: the item view is open while `item` is in the query string, so
a view can be shared; closing it removes the parameter. Opened from a button or a table row
further down the page, the view scrolls into sight (it is drawn at the top of the page).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Literal

import pandas as pd
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

from mirada.dashboard import data, links
from mirada.metrics.formatting import format_value
from mirada.metrics.names import MetricKind, metric_name
from mirada.metrics.report import ZEROSHOT_TOP_CLASSES
from mirada.queries.results import ItemDrilldown
from mirada.text_safety import markdown_text

ITEM_PARAM = "item"
TAB_PARAM = "tab"  # the open tab of a page with tabs (st.tabs bound to the URL)
SCROLL_KEY = "item_view_scroll"  # set when a click opens the view; the next run scrolls to it
VIEW_KEY = "item_view"  # the view's container: Streamlit gives it the class st-key-item_view
# Fixed text, no user text: scrolls the page to the view's container once it is drawn.
SCROLL_SCRIPT = (
    "<script>requestAnimationFrame(() => document.querySelector('.st-key-"
    + VIEW_KEY
    + "')?.scrollIntoView({behavior: 'smooth', block: 'start'}));</script>"
)
THUMB_COLUMN = "thumbnail"
LINK_COLUMN = "view"
TABLE_ROW_HEIGHT = 76  # room for a 72 px thumbnail; long text wraps over the extra lines
GALLERY_COLUMNS = 6


def selected_item() -> int | None:
    """The item id in the URL (`?item=I`), or None (absent, or malformed: with a notice)."""
    return data.query_id(ITEM_PARAM)


def open_item(item_id: int) -> None:
    """Put `item_id` in the URL and rerun, so the item view opens (and can be shared) and
    scrolls into sight."""
    st.query_params[ITEM_PARAM] = str(int(item_id))
    st.session_state[SCROLL_KEY] = True
    st.rerun()


def on_row_select(key: str, table: pd.DataFrame) -> Callable[[], None]:
    """on_select callback for the per-image table `key`: the selected row's item goes into the
    URL. A callback, not a check on every run: a row stays selected after the view is closed."""
    item_ids = [int(i) for i in table["item_id"]]

    def picked() -> None:
        rows = st.session_state[key].selection.rows
        if rows:
            st.query_params[ITEM_PARAM] = str(item_ids[rows[0]])
            st.session_state[SCROLL_KEY] = True

    return picked


def linked_frame(df: pd.DataFrame, page: str, run_id: int, *, limit: int) -> pd.DataFrame:
    """The first `limit` rows of a per-image table with a thumbnail column and a link to each
    row's item view (relative URL) in front. Needs an `item_id` column."""
    shown = df.head(limit).copy()
    ids = [int(i) for i in shown["item_id"]]
    thumbs = data.thumbnail_urls(ids)
    shown.insert(0, LINK_COLUMN, [links.item_href(page, run_id, i) for i in ids])
    shown.insert(0, THUMB_COLUMN, [thumbs.get(i) for i in ids])
    return shown


def link_columns(**more: ColumnConfig) -> dict[str, ColumnConfig]:
    """column_config for linked_frame's thumbnail and link columns, plus `more`."""
    return {
        THUMB_COLUMN: st.column_config.ImageColumn("image", width="small"),
        LINK_COLUMN: st.column_config.LinkColumn(
            "open", display_text="view ↗", help="The item view of this image", width="small"
        ),
        **more,
    }


def linked_table(
    df: pd.DataFrame,
    page: str,
    run_id: int,
    key: str,
    *,
    limit: int,
    columns: list[str],
    config: dict[str, ColumnConfig],
    height: int | Literal["auto"] = "auto",
) -> None:
    """A per-image table (linked_frame's first `limit` rows): thumbnail and link, then
    `columns`; clicking a row opens its item view."""
    linked = linked_frame(df, page, run_id, limit=limit)
    st.dataframe(
        linked,
        hide_index=True,
        key=key,
        height=height,
        row_height=TABLE_ROW_HEIGHT,
        on_select=on_row_select(key, linked),
        selection_mode="single-row",
        column_order=[THUMB_COLUMN, LINK_COLUMN, *columns],
        column_config=link_columns(**config),
    )


def _close_button(key: str) -> None:
    if st.button("Close the image", key=key, icon=":material/close:"):
        del st.query_params[ITEM_PARAM]
        st.rerun()


def _ranked(table: pd.DataFrame, key: str) -> None:
    st.dataframe(
        table,
        hide_index=True,
        key=key,
        column_order=["rank", "own caption", "score", "caption"],  # the verdict stays in view
        column_config={
            "caption": st.column_config.TextColumn("caption", width="large"),
            "score": st.column_config.NumberColumn("score", format="%.3f"),
            "own caption": st.column_config.CheckboxColumn(
                "correct", help="The caption is one of this image's own (reference) captions"
            ),
        },
    )


def _generated(d: ItemDrilldown) -> None:
    g = d.generated
    if g is None:
        return
    st.markdown("**Generated caption**")
    st.text(g.text)  # plain text: model output is user-facing text, never Markdown
    scores = pd.DataFrame(
        [
            {"metric": metric_name(k).label, "key": k, "value": v}
            for k, v in g.scores.items()
            if isinstance(v, int | float)
        ],
        columns=["metric", "key", "value"],
    )
    if not scores.empty:
        st.dataframe(
            scores,
            hide_index=True,
            key="item_generated_scores",
            column_config={"value": st.column_config.NumberColumn("value", format="%.3f")},
        )
    reasons = [str(r) for r in g.flags.get("reasons") or []]
    if g.flags.get("degenerate"):
        st.warning(
            "**Degenerate caption:** " + markdown_text("; ".join(reasons) or "flagged"),
            icon=":material/warning:",
        )
    else:
        st.caption("Not flagged as degenerate (no repetition loop, not shared by other images).")


def _zeroshot_scores(d: ItemDrilldown) -> None:
    if not d.zeroshot_scores:
        return
    st.markdown("**Zero-shot scores per class** (cosine, best first)")
    scores = pd.DataFrame(
        [{"class": c, "cosine": v, "true class": c == d.category} for c, v in d.zeroshot_scores],
        columns=["class", "cosine", "true class"],
    )
    st.dataframe(
        scores,
        hide_index=True,
        key="item_zeroshot_scores",
        column_config={
            "cosine": st.column_config.NumberColumn(
                "cosine",
                format="%.4f",
                help="Cosine of the image and the class's prompt embedding (templates averaged); "
                "the prediction is the highest. Not a softmax: no temperature is applied.",
            ),
        },
    )
    if len(scores) >= ZEROSHOT_TOP_CLASSES:
        st.caption(f"The {len(scores)} best classes; runs keep no more per image.")


def item_view(page: str, run_id: int, item_id: int) -> None:
    """One image of a run, large: category, reference captions, the model's top-k with scores
    and which are correct, the rank of the first correct caption, the zero-shot prediction,
    and for caption runs the generated caption with its per-image metrics and flags."""
    d = data.item_drilldown(run_id, item_id)
    if d is None:
        st.warning(f"Image {item_id} is not part of run {run_id}.")
        _close_button("item_close_missing")
        return
    from mirada.datasets import image_path

    with st.container(border=True, key=VIEW_KEY):
        if st.session_state.pop(SCROLL_KEY, False):
            st.html(SCROLL_SCRIPT, unsafe_allow_javascript=True, width="content")
        head, close = st.columns([5, 1])
        head.subheader(f"Image: {markdown_text(d.filename)}")
        with close:
            _close_button("item_close")
        left, right = st.columns([2, 3])
        with left:
            path = image_path(d.sha256, d.ext)
            if path.exists():
                st.image(str(path), width="stretch")
            else:
                st.caption("(image file missing on this machine and in the database)")
            st.markdown(f"**Category:** {markdown_text(d.category or 'none')}")
            if d.rank is not None:
                verdict = "correct" if d.correct else "wrong"
                st.markdown(
                    f"**Top-1: {verdict}** · first correct caption at rank **{d.rank}**",
                    help="Rank of the image's best-scoring own caption among all captions",
                )
            if d.zeroshot_pred is not None:
                ok = d.zeroshot_pred == d.category
                mark = ":material/check: correct" if ok else ":material/close: wrong"
                st.markdown(f"**Zero-shot class:** {markdown_text(d.zeroshot_pred)} ({mark})")
                if not d.zeroshot_scores:
                    st.caption("This run stored the predicted class only, not each class's score.")
            if d.zeroshot_prob is not None:
                st.markdown(
                    f"**Model's probability for that class:** "
                    f"{format_value(MetricKind.proportion, d.zeroshot_prob)}",
                    help="sigmoid(logit_scale · cosine + logit_bias) of the predicted class: "
                    "the calibrated score of a sigmoid-loss model (SigLIP)",
                )
            for key, (pred, ok) in d.held_out.items():
                mark = ":material/check: correct" if ok else ":material/close: wrong"
                st.markdown(
                    f"**{metric_name(key).label.replace(' accuracy', '')} prediction:** "
                    f"{markdown_text(pred)} ({mark})",
                    help="Predicted while this image was in the held-out fold (see the Probe tab)",
                )
            if d.category_top1 is not None:
                st.markdown(f"**Category of the top-1 caption:** {markdown_text(d.category_top1)}")
        with right:
            st.markdown("**Reference captions**")
            for cap in d.true_captions:
                st.markdown(f"- {markdown_text(cap)}")
            if not d.top.empty:
                st.markdown(f"**Model's top-{len(d.top)} captions** (cosine)")
                _ranked(d.top, "item_top")
            if d.reranked is not None:
                st.markdown("**Re-ranked by the ITM head** (match probability)")
                _ranked(d.reranked, "item_reranked")
            _zeroshot_scores(d)
            _generated(d)
        st.caption(
            "Share this view: the address bar holds it "
            f"(`{links.item_href(page, run_id, item_id, tab=st.query_params.get(TAB_PARAM))}`)."
        )


def gallery(tiles: pd.DataFrame, key: str, *, lines: list[str]) -> None:
    """A grid of thumbnails, each with plain-text lines under it (`lines` names the columns
    shown) and a button that opens its item view."""
    if tiles.empty:
        st.info("No images here.")
        return
    thumbs = data.thumbnail_urls([int(i) for i in tiles["item_id"]], px=256)
    cols = st.columns(GALLERY_COLUMNS)
    for i, row in enumerate(tiles.to_dict("records")):
        item_id = int(row["item_id"])
        with cols[i % GALLERY_COLUMNS]:
            url = thumbs.get(item_id)
            if url:  # bytes, served by Streamlit's media store like any other image
                st.image(base64.b64decode(url.split(",", 1)[1]), width="stretch")
            else:
                st.caption("(image file missing)")
            for column in lines:
                value = row.get(column)
                if value is not None and value != "" and not pd.isna(value):
                    st.caption(markdown_text(str(value)))
            if st.button("View", key=f"{key}_{item_id}", icon=":material/open_in_full:"):
                open_item(item_id)
