"""Compare runs on one dataset: metrics with CIs, grouped bars, per-category differences,
pairwise significance and the images where the models disagree.

The URL carries the selection (`?runs=A,B,…`, the first the reference): links from Results
open it preselected, and each disagreeing image links to its item view."""

from __future__ import annotations

import itertools

import streamlit as st

from mirada.dashboard import charts, data, item_view, links
from mirada.domain import Task
from mirada.metrics import names
from mirada.metrics.formatting import format_metric
from mirada.metrics.names import label
from mirada.text_safety import markdown_text

BAR_METRICS = (
    names.i2t_recall(1),
    names.i2t_recall(5),
    names.t2i_recall(1),
    names.CATEGORY_ACCURACY,
    names.ZEROSHOT_ACCURACY,
    names.PROBE_ACCURACY,
    names.knn_accuracy(1),
    names.reranked(1),
)
CAPTION_BAR_METRICS = (names.BLEU_4, names.METEOR, names.ROUGE_L, names.CIDER)
DISAGREE_PAGE = 20  # disagreeing images per page of the table

st.title("Compare")
data.ensure_database()

runs = data.finished_runs()
runs = runs[runs["task"].isin([Task.match, Task.caption])]
if runs.empty:
    st.info(
        "**Nothing to compare yet.** Queue at least two match (or caption) runs on the same "
        "dataset on the Runs page, e.g. "
        "`mirada queue --dataset NAME --model hf-clip:mirada/demo-clip "
        "--model hf-clip:mirada/demo-clip-random --task match`."
    )
    st.stop()

# Runs named in the URL (?runs=A,B) choose the dataset, task and selection.
wanted = [r for r in data.query_ids("runs") if r in set(runs["id"])]
first = runs[runs["id"] == wanted[0]].iloc[0] if wanted else None
datasets = runs.drop_duplicates("dataset_id")[["dataset_id", "dataset"]]
ds_names = dict(zip(datasets["dataset_id"].astype(int), datasets["dataset"], strict=True))
ds_ids = list(ds_names)
c1, c2 = st.columns([1, 1])
dataset_id = c1.selectbox(
    "Dataset",
    ds_ids,
    index=ds_ids.index(int(first["dataset_id"])) if first is not None else 0,
    format_func=lambda i: ds_names[i],
    key="compare_dataset",
)
tasks = sorted(runs.loc[runs["dataset_id"] == dataset_id, "task"].unique())
default_task = Task.match.value if Task.match in tasks else tasks[0]
if first is not None and first["task"] in tasks:
    default_task = str(first["task"])
task = c2.segmented_control("Task", tasks, default=default_task, key="compare_task") or default_task
candidates = runs[(runs["dataset_id"] == dataset_id) & (runs["task"] == task)]
labels = dict(zip(candidates["id"].astype(int), candidates["label"], strict=True))
if len(labels) < 2:  # nothing to pick: say what is missing, not "pick two"
    (only,) = labels
    st.info(
        f"**Only one finished {task} run on {markdown_text(ds_names[dataset_id])}** "
        f"({markdown_text(labels[only])}): there is nothing to compare it with yet. Queue "
        "another model on this dataset on the Runs page, e.g. "
        f"`mirada queue --dataset NAME --model ID --task {task}`."
    )
    st.page_link(
        links.PAGE_FILES[links.page_for_task(Task(task))],
        label=f"Open {labels[only].split(' · ')[0]}",
        icon=":material/open_in_new:",
        query_params={"run": str(int(only))},
    )
    st.stop()
preselected = [r for r in wanted if r in labels] or list(labels)[:2]
chosen = st.multiselect(
    "Runs (two or more; the first is the reference)",
    list(labels),
    default=preselected,
    format_func=lambda i: labels[i],
    key="compare_runs",
)
if chosen:
    st.query_params["runs"] = ",".join(str(int(r)) for r in chosen)
else:  # an empty ?runs= would read as a malformed link
    st.query_params.pop("runs", None)
if chosen:
    cols = st.columns(min(len(chosen), 4))
    for col, rid in zip(itertools.cycle(cols), chosen, strict=False):
        col.page_link(
            links.PAGE_FILES[links.page_for_task(Task(task))],
            label=f"Open {labels[rid].split(' · ')[0]}",
            icon=":material/open_in_new:",
            query_params={"run": str(int(rid))},
        )
if len(chosen) < 2:
    st.info("Pick at least two runs of this dataset to compare.")
    st.stop()
run_ids = [int(r) for r in chosen]

st.subheader("Metrics side by side")
table = data.compare_metrics(run_ids)
if table.empty:
    st.info("These runs stored no metrics.")
    st.stop()
wide = table.assign(
    shown=[
        format_metric(key, v, lo, hi)
        for key, v, lo, hi in zip(
            table["metric"], table["value"], table["ci_low"], table["ci_high"], strict=True
        )
    ]
).pivot_table(index=["label", "metric"], columns="run", values="shown", aggfunc="first", sort=False)
st.dataframe(
    charts.table_text(wide.reset_index().rename(columns={"metric": "key"})),
    hide_index=True,
    key="compare_table",
    height=charts.table_height(len(wide)),  # every metric in view, no scrolling inside
    column_config={
        "label": st.column_config.TextColumn("metric"),
        "key": st.column_config.TextColumn("key", help="The metric's key in JSON and CSV"),
    },
)
st.caption(
    "Recalls and accuracies in percent, MRR and caption scores as fractions, as on the Results "
    "page; brackets are 95% intervals: Wilson score intervals for recalls and accuracies, "
    "percentile bootstrap over images for MRR and caption scores."
)
data.downloads(table, "compare_metrics", "compare_dl")

is_match = task == Task.match
run_names = dict(zip(table["run_id"].astype(int), table["run"], strict=False))
run_pairs = [(r, run_names[r]) for r in run_ids if r in run_names]  # picker order, run colours
bars = table[table["metric"].isin(BAR_METRICS if is_match else CAPTION_BAR_METRICS)]
if not bars.empty:
    st.altair_chart(
        charts.bars_with_ci(
            bars,
            x="label",
            color="run",
            title="Grouped by metric (95% interval whiskers where stored)",
            percent=is_match,
            x_title="metric",
            y_title="value (%)" if is_match else "score",
            runs=run_pairs,
            key="metric",
        ),
        width="stretch",
    )

if is_match:
    st.subheader("Per-category differences")
    diffs = data.compare_categories(run_ids, names.i2t_recall(1))
    others = diffs[diffs["run_id"] != run_ids[0]]
    if others.empty:
        st.info("No per-category metrics (the dataset has no categories).")
    else:
        st.altair_chart(
            charts.difference_bars(
                others,
                title=f"{label(names.i2t_recall(1))} minus {labels[run_ids[0]].split(' · ')[0]}",
                runs=run_pairs[1:],  # the reference has no bars: not in the legend
            ),
            width="stretch",
        )

st.subheader("Is the difference significant?")
sig = data.pairwise_significance(run_ids)
if sig.empty:
    st.info("No per-item results to pair up.")
else:
    st.caption(
        "Per-image outcomes aligned by item id; each difference is the later run minus the "
        "earlier (the reference first), as in the chart above. Correct/incorrect: exact McNemar "
        "test, with a paired-bootstrap 95% CI of the difference in points. Per-image caption "
        "scores: paired bootstrap for both."
    )
    untested: dict[str, list[str]] = {}  # why not tested -> metric labels
    for r in sig.to_dict("records"):
        if isinstance(r["problem"], str):  # the aligner refused: say so, never drop it
            a, b, problem = (markdown_text(r[k]) for k in ("a", "b", "problem"))
            st.warning(f"**{r['label']}** ({a} vs {b}) not compared: {problem}")
        elif isinstance(r["untested"], str):
            pair = f"{r['a']} vs {r['b']}: " if len(run_ids) > 2 else ""
            untested.setdefault(pair + r["untested"], []).append(r["label"])
        else:
            icon = ":material/check_circle:" if r["significant"] else ":material/remove:"
            st.markdown(f"{icon} **{r['label']}** — {markdown_text(r['sentence'])}")
    for why, metrics in untested.items():  # one line per reason, not one per metric
        st.caption(f"**{markdown_text(', '.join(metrics))}**: {markdown_text(why)}")
    data.downloads(sig, "compare_significance", "compare_sig_dl")

if is_match:
    st.subheader("Images where the models disagree")
    dis = data.disagreements(run_ids)
    if dis.empty:
        st.info("The runs agree on every image (top-1 correct or not).")
    else:
        st.caption(
            f"{len(dis)} image(s) where at least one run is right and another wrong. Each links "
            f"to its item view in the reference run ({labels[run_ids[0]].split(' · ')[0]})."
        )
        pages = -(-len(dis) // DISAGREE_PAGE)
        page = 1
        if pages > 1:
            page = int(
                st.number_input(
                    f"Page (of {pages}, {DISAGREE_PAGE} images each)",
                    min_value=1,
                    max_value=pages,
                    value=1,
                    key="compare_disagree_page",
                )
            )
        part = dis.iloc[(page - 1) * DISAGREE_PAGE : page * DISAGREE_PAGE]
        shown = item_view.linked_frame(part, links.RESULTS, run_ids[0], limit=DISAGREE_PAGE)
        st.dataframe(
            shown,
            hide_index=True,
            key="compare_disagree",
            # every row of the page in view, no scrolling inside a sliver
            height=charts.table_height(len(shown), item_view.TABLE_ROW_HEIGHT),
            row_height=item_view.TABLE_ROW_HEIGHT,
            column_order=[c for c in shown.columns if c != "item_id"],
            column_config=item_view.link_columns(),
        )
        data.downloads(dis, "compare_disagreements", "compare_dis_dl")
