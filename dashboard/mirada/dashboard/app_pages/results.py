"""Results of one run: metric cards with CIs, per-category accuracy, similarity heatmap,
embedding projection, zero-shot confusion, a worst-first drill-down and the hardest images.

The URL carries the selection (`?run=R&item=I&tab=…`): `item` opens the item view of one
image, and every table row, heatmap cell and projection point links to it."""

from __future__ import annotations

import streamlit as st

from mirada.dashboard import charts, data, item_view, links, probe_tab
from mirada.domain import Task
from mirada.metrics import names
from mirada.metrics.formatting import format_interval, format_metric
from mirada.metrics.names import label
from mirada.text_safety import markdown_text

CARDS_PER_ROW = 5
# Per-category metrics the chart offers, in this order (those the run stored).
CATEGORY_METRICS = (names.i2t_recall(1), names.CATEGORY_ACCURACY, names.ZEROSHOT_ACCURACY)
DRILL_TABLE_ROWS = 200
GALLERY_SIZE = 24
TABS = (
    "Per category",
    "Similarity heatmap",
    "Embeddings",
    "Zero-shot",
    "Probe",
    "Drill-down",
    "Hardest images",
)

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
siblings = data.finished_runs(task=Task.match, dataset_id=info.dataset_id)
others = [int(r) for r in siblings["id"] if int(r) != run_id]
if others:
    st.page_link(
        links.PAGE_FILES[links.COMPARE],
        label="Compare with other runs on this dataset",
        icon=":material/compare:",
        query_params={"runs": ",".join(str(r) for r in [run_id, others[0]])},
    )
href = links.item_href_expr(links.RESULTS, run_id)  # chart marks open their image


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
                ci = format_interval(r["name"], r["ci_low"], r["ci_high"])
                # "95% Wilson [..]" / "95% bootstrap [..]"
                how = r["interval"] if isinstance(r["interval"], str) else "95% CI"
                # the name as wrapping text: st.metric's own label is cut off ("Zero-shot
                # balanced …") in a card a fifth of the page wide
                st.markdown(f"**{r['label']}**", help=r["help"])
                value = format_metric(r["name"], r["value"])
                st.metric(r["label"], value, label_visibility="collapsed")
                st.caption(f"{how} {ci}" if ci else "no CI")
                if isinstance(r["note"], str):  # within chance, or a trivial R@k
                    st.caption(f":orange[:material/warning: {markdown_text(r['note'])}]")


def _categories() -> None:
    per = data.category_metrics(run_id)
    if per.empty:
        st.info("No per-category metrics: the dataset has no categories.")
        return
    offered = [m for m in CATEGORY_METRICS if m in set(per["metric"])]
    offered = offered or list(dict.fromkeys(per["metric"]))  # a run with other metrics only
    metric = (
        st.segmented_control(
            "Metric",
            offered,
            default=offered[0],
            format_func=label,
            key="results_cat_metric",
            help="Image→text R@1, category accuracy (top-1 caption from the same category) or "
            "zero-shot accuracy (class prompts), per category.",
        )
        or offered[0]
    )
    sub = per[per["metric"] == metric]
    interval = sub["interval"].dropna()
    how = f"{interval.iloc[0]} interval" if not interval.empty else "interval"
    st.altair_chart(
        charts.category_bars(
            sub,
            metric_label=label(metric),
            metric_key=metric,
            title=f"{label(metric)} per category ({how}; dashed: chance)",
        ),
        width="stretch",
    )
    notes = sub.dropna(subset=["note"])
    if not notes.empty:
        pairs = zip(notes["category"], notes["note"], strict=True)
        lines = [f"{markdown_text(c)}: {markdown_text(n)}" for c, n in pairs]
        st.caption(":orange[:material/warning: " + "; ".join(lines) + "]")
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
                href=href,
            ),
            width="stretch",
        )
        st.caption(
            "Rows and columns are ordered by category; white lines separate categories. "
            "Click a cell to open its image."
        )
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
                cells,
                title=f"Slice: {img_cat} images (from #{start}) × {cap_cat} captions",
                href=href,
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
            points,
            title=f"{'t-SNE' if method == 'tsne' else 'PCA'} of {kind} embeddings",
            method=method,
            explained=facts.explained,
            href=href,
        ),
        width="stretch",
    )
    st.caption(note + ". Hover a point for its category and caption; click it to open its image.")


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
    # verdicts as ✓/✗ text: a greyed checkbox beside the row-select one read as a control
    verdicts = {c: items[c].map(charts.verdict) for c in ("correct", "category_correct")}
    st.caption(
        f"Sorted worst first: {wrong} of {len(items)} images have a wrong top-1 caption. "
        f"Showing the first {min(len(items), DRILL_TABLE_ROWS)}; click a row (or its link) to "
        "open the image."
    )
    item_view.linked_table(
        items.assign(**verdicts),  # the downloads below keep True/False
        links.RESULTS,
        run_id,
        "results_items",
        limit=DRILL_TABLE_ROWS,
        height=600,
        # short verdicts first, the two wrapping captions last: on a narrow screen only the
        # end of a caption column can fall past the edge, never a verdict
        columns=[
            "filename",
            "category",
            "correct",
            "rank",
            "score",
            "category_correct",
            "zeroshot_pred",
            "top1_caption",
            "true_caption",
        ],
        config={
            "correct": st.column_config.TextColumn(
                "top-1", width=56, help="✓ when the top-1 caption is one of the image's own"
            ),
            "rank": st.column_config.NumberColumn(
                "rank",
                width=56,
                help="Rank of the image's best own caption among all captions",
            ),
            "score": st.column_config.NumberColumn("score", format="%.3f", width=64),
            # medium and wrapping (rows are tall): two large columns pushed the last ones
            # out of view
            "top1_caption": st.column_config.TextColumn("model's top-1 caption", width="medium"),
            "true_caption": st.column_config.TextColumn("a reference caption", width="medium"),
            "zeroshot_pred": st.column_config.TextColumn("zero-shot class", width="small"),
            "category_correct": st.column_config.TextColumn(
                "same category",
                width=64,
                help="✓ when the top-1 caption belongs to an image of the same category",
            ),
        },
    )
    # the file is `mirada export RUN --format csv` (one schema), not the table shown above
    data.downloads(data.export_table(run_id, "items"), f"run{run_id}_items", "results_items_dl")


def _hardest() -> None:
    cats = data.dataset_categories(info.dataset_id)
    category = st.selectbox("Category", ["All", *cats], key="results_hardest_cat")
    chosen = None if category == "All" else category
    wrong = data.hardest_items(run_id, category=chosen, limit=None)  # all: to count them
    where = "" if chosen is None else f" in {markdown_text(chosen)}"
    if wrong.empty:
        st.info(f"No wrong images{where}: every image's top-1 caption is one of its own.")
        return
    tiles = wrong.head(GALLERY_SIZE)
    st.caption(
        f"**{len(wrong)} image(s){where} have a wrong top-1 caption**"
        + (f"; the {len(tiles)} hardest are shown" if len(tiles) < len(wrong) else ", shown")
        + " hardest first (their own caption ranked lowest). Under each: the rank of its "
        "first correct caption and the caption the model ranked first."
    )
    tiles = tiles.assign(
        where=[f"{f} · rank {r}" for f, r in zip(tiles["filename"], tiles["rank"], strict=True)],
        # no line rather than "top-1: nan" when the run kept no top-k for an image
        picked=[f"top-1: {t}" if isinstance(t, str) else "" for t in tiles["top1_caption"]],
    )
    item_view.gallery(tiles, "results_hardest", lines=["where", "picked"])


wanted_item = item_view.selected_item()
if wanted_item is not None:
    item_view.item_view(links.RESULTS, run_id, wanted_item)

st.subheader("Headline metrics")
_cards()
# every metric row, overall and per category: `mirada export RUN --format csv --table metrics`
data.downloads(data.export_table(run_id, "metrics"), f"run{run_id}_metrics", "results_metrics_dl")

tabs = st.tabs(list(TABS), key="tab", bind="query-params")  # the URL keeps the tab
renders = (
    _categories,
    _heatmap,
    _projection,
    _confusion,
    lambda: probe_tab.render(run_id),
    _drilldown,
    _hardest,
)
for tab, render in zip(tabs, renders, strict=True):
    if tab.open:
        with tab:
            render()
