"""Results of one run: metric cards with CIs, per-category accuracy, similarity heatmap,
embedding projection, zero-shot confusion and a worst-first drill-down."""

from __future__ import annotations

import streamlit as st

from mirada.dashboard import charts, data
from mirada.domain import Task
from mirada.metrics.names import label
from mirada.text_safety import markdown_text

CARDS_PER_ROW = 5
DRILL_TABLE_ROWS = 200

st.title("Results")
data.ensure_database()

run_id, info = data.pick_finished_run(
    Task.match,
    "Run",
    "results_run",
    "**No finished match runs yet.** Queue one on the Runs page (or "
    "`mirada queue --dataset NAME --model ID --task match`) and start a worker with "
    "`mirada worker`. Caption runs are shown on the Captions page.",
)
st.caption(
    f"**{markdown_text(info.model)}** on **{markdown_text(info.dataset)}** · "
    f"device {info.device} · {info.dtype} · batch {info.batch_size} · finished {info.finished_at}"
)


def _cards() -> None:
    head = data.headline_metrics(run_id)
    if head.empty:
        st.info("This run stored no headline metrics.")
        return
    cards = head.to_dict("records")
    for start in range(0, len(cards), CARDS_PER_ROW):
        cols = st.columns(CARDS_PER_ROW)
        for col, r in zip(cols, cards[start : start + CARDS_PER_ROW], strict=False):
            with col.container(border=True):
                ci = data.fmt_ci(r["ci_low"], r["ci_high"], r["kind"])
                st.metric(r["label"], data.fmt_value(r["value"], r["kind"]), help=r["help"])
                st.caption(ci or "no CI")


def _categories() -> None:
    per = data.category_metrics(run_id)
    if per.empty:
        st.info("No per-category metrics: the dataset has no categories.")
        return
    metric = "i2t_recall@1"
    sub = per[per["metric"] == metric]
    st.altair_chart(
        charts.bars_with_ci(
            sub,
            x="category",
            title=f"{label(metric)} per category (95% bootstrap CI)",
            x_title="category",
        ),
        width="stretch",
    )
    data.downloads(per, f"run{run_id}_per_category", "results_cat_dl")


def _heatmap() -> None:
    view = data.similarity_view(run_id)
    if view.mode == "none":
        st.info("This run stored no embeddings, so there is no similarity matrix.")
        return
    if view.mode == "full":
        assert view.cells is not None and view.image_bounds is not None
        assert view.caption_bounds is not None
        st.altair_chart(
            charts.heatmap_full(
                view.cells,
                view.image_bounds,
                view.caption_bounds,
                title=f"Cosine similarity: {view.n_images} images × {view.caption_note}",
            ),
            width="stretch",
        )
        st.caption("Rows and columns are ordered by category; white lines separate categories.")
        return
    st.caption(
        f"{view.n_images:,} images × {view.n_captions:,} captions is too large to draw "
        "cell by cell: the block heatmap shows the mean similarity for each pair of categories; "
        "pick a block below to see its images and captions."
    )
    blocks = view.blocks
    assert blocks is not None  # mode "blocks"
    st.altair_chart(
        charts.heatmap_blocks(blocks, title="Mean cosine similarity by category"),
        width="stretch",
    )
    cats = view.categories
    c1, c2, c3 = st.columns(3)
    img_cat = c1.selectbox("Image category", cats, key="results_slice_img")
    cap_cat = c2.selectbox(
        "Caption category", cats, index=cats.index(img_cat), key="results_slice_cap"
    )
    n_in_cat = int(blocks.loc[blocks["image_category"] == img_cat, "images"].iloc[0])
    start = c3.number_input(
        "First image", 0, max(0, n_in_cat - 1), 0, step=60, key="results_slice_offset"
    )
    cells = data.similarity_slice(run_id, img_cat, cap_cat, max_images=60, offset=int(start))
    if cells.empty:
        st.info("Nothing in this slice.")
    else:
        st.altair_chart(
            charts.heatmap_slice(
                cells, title=f"Slice: {img_cat} images (from #{start}) × {cap_cat} captions"
            ),
            width="stretch",
        )


def _projection() -> None:
    kinds = data.embedding_kinds(run_id)
    if not {"image", "text"} <= set(kinds):
        st.info("This run stored no embeddings to project.")
        return
    c1, c2 = st.columns(2)
    method = c1.segmented_control(
        "Method",
        ["pca", "tsne"],
        default="pca",
        key="results_proj_method",
        format_func=lambda m: {"pca": "PCA", "tsne": "t-SNE"}[m],
    )
    kind = c2.segmented_control(
        "Embeddings", ["image", "text", "joint"], default="image", key="results_proj_kind"
    )
    method = method or "pca"
    kind = kind or "image"
    status = data.projection_status(run_id, method, kind)
    if not (status.stored or status.auto):
        name = "t-SNE" if method == "tsne" else "PCA"
        st.info(
            f"The {name} projection of {status.total:,} {kind} embeddings is not stored yet. "
            "Computing it takes a while on large runs; it is stored with the run afterwards."
        )
        if not st.button(f"Compute the {name} projection", key="results_proj_compute"):
            return
    points, facts = data.projection(run_id, method, kind)
    note = f"{facts.shown:,} points"
    if facts.subsampled:
        note = (
            f"t-SNE on a random subsample of {facts.shown:,} of {facts.total:,} points "
            "(seed 0), to keep it fast"
        )
    st.altair_chart(
        charts.projection_scatter(
            points, title=f"{'t-SNE' if method == 'tsne' else 'PCA'} of {kind} embeddings"
        ),
        width="stretch",
    )
    st.caption(note + ". Hover a point for its category and caption.")


def _confusion() -> None:
    conf = data.zeroshot_confusion(run_id)
    if conf is None or conf.empty:
        st.info("No zero-shot confusion matrix (the dataset needs at least two categories).")
        return
    st.altair_chart(
        charts.confusion_matrix(conf, title="Zero-shot classification (rows: true class)"),
        width="stretch",
    )
    data.downloads(conf, f"run{run_id}_zeroshot_confusion", "results_conf_dl")


def _drilldown() -> None:
    items = data.run_items(run_id)
    if items.empty:
        st.info("This run stored no per-image results.")
        return
    wrong = int((items["correct"] == False).sum())  # noqa: E712 - pandas element-wise
    st.caption(f"Sorted worst first: {wrong} of {len(items)} images have a wrong top-1 caption.")
    st.dataframe(items.head(DRILL_TABLE_ROWS), hide_index=True, key="results_items", height=260)
    data.downloads(items, f"run{run_id}_items", "results_items_dl")
    ids = items["item_id"].astype(int).tolist()
    labels = {
        int(r["item_id"]): f"{r['filename']} · {'✓' if r['correct'] else '✗'} rank {r['rank']}"
        for r in items.to_dict("records")
    }
    item_id = st.selectbox(
        "Image (worst first)", ids, format_func=lambda i: labels[i], key="results_item"
    )
    if item_id is None:
        return
    d = data.item_drilldown(run_id, int(item_id))
    if d is None:
        return
    from mirada.datasets import image_path

    left, right = st.columns([1, 2])
    with left:
        path = image_path(d.sha256, d.ext)
        if path.exists():
            st.image(str(path), width="stretch")
        category = markdown_text(d.category or "none")
        st.markdown(f"**{markdown_text(d.filename)}** · category {category}")
        verdict = "correct" if d.correct else "wrong"
        st.markdown(f"Top-1: **{verdict}** (own caption at rank {d.rank})")
        if d.zeroshot_pred is not None:
            st.markdown(f"Zero-shot prediction: {markdown_text(d.zeroshot_pred)}")
    with right:
        st.markdown("**True captions**")
        for cap in d.true_captions:
            st.markdown(f"- {markdown_text(cap)}")
        st.markdown("**Model's top-5 captions** (cosine)")
        st.dataframe(d.top, hide_index=True, key="results_top5")
        if d.reranked is not None:
            st.markdown("**Re-ranked by the ITM head** (match probability)")
            st.dataframe(d.reranked, hide_index=True, key="results_reranked")
        if d.generated is not None:
            st.markdown(f"**Generated caption:** {markdown_text(d.generated.text)}")
            st.json({"scores": d.generated.scores, "flags": d.generated.flags}, expanded=False)


st.subheader("Headline metrics")
_cards()
metrics = data.run_metrics(run_id)
data.downloads(metrics, f"run{run_id}_metrics", "results_metrics_dl")

tabs = st.tabs(["Per category", "Similarity heatmap", "Embeddings", "Zero-shot", "Drill-down"])
with tabs[0]:
    _categories()
with tabs[1]:
    _heatmap()
with tabs[2]:
    _projection()
with tabs[3]:
    _confusion()
with tabs[4]:
    _drilldown()
