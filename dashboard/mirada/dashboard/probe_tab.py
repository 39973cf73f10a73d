"""The Results page's Probe tab: linear-probe and kNN accuracy of the run's image embeddings on
the dataset's categories, with intervals, per-fold figures, chance, the chosen C, confusion,
per-category recall and the images behind each wrong prediction.

Renders only: the read model is `mirada.queries.probe` (via the cached `data` layer)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mirada.dashboard import charts, data, item_view, links
from mirada.metrics.formatting import format_interval, format_metric
from mirada.metrics.names import PROBE_ACCURACY, metric_name
from mirada.queries.probe import ProbeFigure, ProbeView
from mirada.text_safety import markdown_text

MISTAKE_ROWS = 200
ALL = "All"


def _card(fig: ProbeFigure, folds: pd.DataFrame) -> None:
    st.metric(fig.label, format_metric(fig.key, fig.value), help=metric_name(fig.key).help)
    if fig.unavailable:  # the reason is above the cards
        st.caption("no figure")
        return
    ci = format_interval(fig.key, fig.ci_low, fig.ci_high)
    st.caption(f"{fig.interval or '95% CI'} {ci} · {fig.correct} of {fig.n} images")
    accs = folds.loc[folds["metric"] == fig.key, "accuracy"]
    if not accs.empty:
        st.caption("per fold: " + ", ".join(format_metric(fig.key, a) for a in accs))
    if fig.note:
        st.caption(f":orange[:material/warning: {markdown_text(fig.note)}]")
    if fig.messages:  # k capped, C fallbacks, lbfgs not converging at some C
        st.caption(markdown_text("; ".join(fig.messages)))


def _setup(view: ProbeView) -> None:
    """How the figures were made, and what chance is."""
    grid = view.c_grid
    c_range = f"{min(grid):g} to {max(grid):g} ({len(grid)} values)" if grid else "–"
    chosen = view.per_fold.dropna(subset=["chosen_c"])["chosen_c"]
    st.caption(
        f"Image embeddings after the projection, L2-normalised; {view.folds}-fold stratified "
        f"cross-validation (seed {view.seed}), every image predicted once by a model that never "
        f"saw it. Linear probe: scikit-learn logistic regression, C chosen per fold from "
        f"{c_range} on a {view.validation_fraction:.0%} validation split of the training part"
        + (f"; chosen C per fold: {', '.join(f'{c:g}' for c in chosen)}" if len(chosen) else "")
        + ". kNN: cosine similarity, the k most similar training images vote."
    )
    if view.majority_share is not None and view.uniform_chance is not None:
        largest = markdown_text(str(view.majority_category))
        st.caption(
            f"Chance: {format_metric(PROBE_ACCURACY, view.majority_share)} by always predicting "
            f"the largest category ({largest}, {view.sizes.get(str(view.majority_category))} "
            f"of {sum(view.sizes.values())} images); this is the level the cards compare "
            f"with. A uniform guess among {len(view.labels)} categories scores "
            f"{format_metric(PROBE_ACCURACY, view.uniform_chance)}."
        )


def _per_fold(view: ProbeView) -> None:
    if view.per_fold.empty:
        return
    wide = view.per_fold.pivot(index="fold", columns="label", values="accuracy")
    shown = pd.DataFrame({"fold": wide.index})
    for fig in view.figures:
        if fig.label in wide.columns:
            shown[fig.label] = [format_metric(fig.key, v) for v in wide[fig.label]]
    c = view.per_fold.dropna(subset=["chosen_c"]).set_index("fold")["chosen_c"]
    shown["probe C"] = [f"{c[f]:g}" if f in c.index else "–" for f in wide.index]
    st.dataframe(shown, hide_index=True)


def _details(run_id: int, view: ProbeView) -> None:
    figures = [f for f in view.figures if f.key in view.confusion]
    if not figures:
        return
    by_key = {f.key: f for f in figures}
    key = (
        st.segmented_control(
            "Classifier",
            list(by_key),
            default=figures[0].key,
            format_func=lambda k: by_key[k].label,
            key="results_probe_method",
        )
        or figures[0].key
    )
    label = by_key[key].label
    st.altair_chart(
        charts.confusion_matrix(
            view.confusion[key], title=f"{label}: out-of-fold predictions (rows: true category)"
        ),
        width="stretch",
    )
    recall = view.recall[view.recall["metric"] == key]
    if not recall.empty:
        st.altair_chart(
            charts.category_bars(
                recall,
                metric_label=f"{label}: recall",
                metric_key=key,
                title=f"{label}: recall per category (95% Wilson; dashed: 1/K chance)",
            ),
            width="stretch",
        )
    c1, c2 = st.columns(2)
    true = c1.selectbox("True category", [ALL, *view.labels], key="results_probe_true")
    pred = c2.selectbox("Predicted", [ALL, *view.labels], key="results_probe_pred")
    wrong = data.probe_mistakes(
        run_id,
        key,
        true=None if true == ALL else true,
        predicted=None if pred == ALL else pred,
    )
    if wrong.empty:
        st.info("No wrong predictions here.")
        return
    st.caption(
        f"{len(wrong)} wrong out-of-fold predictions; showing up to {MISTAKE_ROWS}. Click a row "
        "(or its link) to open the image."
    )
    item_view.linked_table(
        wrong,
        links.RESULTS,
        run_id,
        "results_probe_items",
        limit=MISTAKE_ROWS,
        columns=["filename", "category", "predicted"],
        config={
            "category": st.column_config.TextColumn("true category"),
            "predicted": st.column_config.TextColumn(f"{label}: predicted"),
        },
    )
    data.downloads(wrong, f"run{run_id}_{key}_mistakes", "results_probe_dl")


def render(run_id: int) -> None:
    view = data.probe_view(run_id)
    if view is None:
        st.info(
            "No linear probe or kNN: the dataset has no categories, or the run was made "
            "before Mirada computed them."
        )
        return
    if view.reason:
        st.warning(f"No probe figures: {markdown_text(view.reason)}.")
    if view.skipped:
        st.caption(
            ":orange[:material/warning: " + "; ".join(markdown_text(m) for m in view.skipped) + "]"
        )
    if view.figures:
        cols = st.columns(len(view.figures))
        for col, fig in zip(cols, view.figures, strict=True):
            with col.container(border=True):
                _card(fig, view.per_fold)
    if view.reason:
        return
    _setup(view)
    _per_fold(view)
    _details(run_id, view)
