"""Runs: queue dataset x models x tasks, a live status table, cancel / retry, failures."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mirada.dashboard import data
from mirada.domain import CANCELLABLE, RETRYABLE, Device, Dtype, RunStatus, Task, choices
from mirada.errors import MiradaError
from mirada.queue import cancel_run, enqueue, retry_run
from mirada.text_safety import markdown_text

REFRESH_SECONDS = 3
TABLE_COLUMNS = [
    "id",
    "dataset",
    "model",
    "task",
    "status",
    "progress",
    "attempts",
    "device",
    "dtype",
    "batch_size",
    "worker",
    "created",
    "finished_at",
    "error",
]

st.title("Runs")
data.ensure_database()


def _catalogue() -> list[tuple[str, str, list[str]]]:
    from mirada.vlm.catalogue import list_catalogue

    return [(e.id, e.title, sorted(e.capabilities)) for e in list_catalogue()]


def _queue_form(datasets: pd.DataFrame) -> None:
    cat = _catalogue()
    titles = {mid: f"{title} — {mid}" for mid, title, _ in cat}
    names = dict(zip(datasets["id"].astype(int), datasets["name"], strict=True))
    with st.form("runs_queue_form"):
        st.subheader("Queue runs")
        dataset_id = st.selectbox(
            "Dataset", list(names), format_func=lambda i: names[i], key="runs_dataset"
        )
        models = st.multiselect(
            "Catalogue models", list(titles), format_func=lambda m: titles[m], key="runs_models"
        )
        typed = st.text_input(
            "…or model ids, comma-separated (e.g. `open-clip:ViT-B-16/laion2b_s34b_b88k`)",
            key="runs_typed_models",
        )
        tasks = st.multiselect("Tasks", choices(Task), default=[Task.match.value], key="runs_tasks")
        c1, c2, c3 = st.columns(3)
        device = c1.selectbox("Device", choices(Device), key="runs_device")
        dtype = c2.selectbox("dtype", choices(Dtype), key="runs_dtype")
        batch = c3.number_input("Batch size", 1, 4096, 32, key="runs_batch")
        submitted = st.form_submit_button("Queue", type="primary")
    if not submitted:
        return
    model_ids = list(models) + [m.strip() for m in typed.split(",") if m.strip()]
    if not model_ids or not tasks:
        st.warning("Pick at least one model and one task.")
        return
    queued, refused = [], []
    for model_id in model_ids:
        for task in tasks:
            try:
                run_id = enqueue(
                    int(dataset_id),
                    model_id,
                    task,
                    device=device,
                    dtype=dtype,
                    batch_size=int(batch),
                )
                queued.append(f"#{run_id} {markdown_text(model_id)} · {task}")
            except MiradaError as exc:
                refused.append(f"**{markdown_text(model_id)} · {task}**: {markdown_text(exc)}")
    data.invalidate()
    if queued:
        st.success("Queued: " + ", ".join(queued))
    for msg in refused:
        st.error(msg)


@st.fragment(run_every=REFRESH_SECONDS)
def _live_table() -> None:
    notice = data.worker_notice(60)
    if notice:
        st.warning(notice, icon=":material/warning:")
    runs = data.runs_frame()
    if runs.empty:
        st.info(
            "No runs yet: queue one above, or "
            "`mirada queue --dataset NAME --model ID --task match`."
        )
        return
    counts = runs["status"].value_counts()
    st.caption(
        " · ".join(f"{s}: {int(counts.get(s, 0))}" for s in RunStatus)
        + f" — refreshes every {REFRESH_SECONDS} s"
    )
    st.dataframe(
        runs[[c for c in TABLE_COLUMNS if c in runs.columns]],
        hide_index=True,
        key="runs_table",
        column_config={
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0.0, max_value=1.0, format="percent"
            ),
            "error": st.column_config.TextColumn("error", width="medium"),
        },
    )


def _actions(runs: pd.DataFrame) -> None:
    st.subheader("Cancel, retry, inspect")
    ids = runs["id"].astype(int).tolist()
    labels = {
        int(r["id"]): f"#{r['id']} {r['model']} · {r['task']} · {r['status']}"
        for r in runs.to_dict("records")
    }
    run_id = st.selectbox("Run", ids, format_func=lambda i: labels[i], key="runs_action_run")
    if run_id is None:
        return
    row = runs[runs["id"] == run_id].iloc[0]
    c1, c2, c3 = st.columns([1, 1, 3])
    status = RunStatus(row["status"])
    if c1.button("Cancel", disabled=status not in CANCELLABLE, key="runs_cancel"):
        try:
            cancel_run(int(run_id))
            data.invalidate()
            st.toast(f"Run {run_id} cancelled")
            st.rerun()
        except MiradaError as exc:
            st.error(markdown_text(exc))
    if c2.button("Retry", disabled=status not in RETRYABLE, key="runs_retry"):
        try:
            retry_run(int(run_id))
            data.invalidate()
            st.toast(f"Run {run_id} queued again")
            st.rerun()
        except MiradaError as exc:
            st.error(markdown_text(exc))
    if status == RunStatus.succeeded:
        c3.page_link("app_pages/results.py", label="Open results", icon=":material/bar_chart:")
    info = data.live_run_info(int(run_id))
    if info is not None and info.error:
        st.error(f"**Error:** {markdown_text(info.error)}")
        if info.traceback:
            st.code(info.traceback, language="python")


datasets = data.dataset_summaries()
if datasets.empty:
    st.info(
        "**No datasets yet**, so nothing to run: import one on the Datasets page or with "
        "`mirada import PATH`."
    )
else:
    _queue_form(datasets)

st.subheader("Queue")
_live_table()
all_runs = data.runs_frame()
if not all_runs.empty:
    data.downloads(all_runs, "runs", "runs_dl")
    _actions(all_runs)
