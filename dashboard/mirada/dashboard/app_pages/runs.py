"""Runs: the live queue first (failed runs stand out, each finished run links to the page that
shows it), cancel / retry / inspect, and the queue form (which models have their weights here)
in an expander below."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from mirada.dashboard import data, links
from mirada.domain import CANCELLABLE, RETRYABLE, Device, Dtype, RunStatus, Task, choices
from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.formatting import format_value
from mirada.queries.runs import RUNS_FRAME_COLUMNS, StageSplit
from mirada.queue import cancel_run, enqueue, retry_run
from mirada.text_safety import markdown_text

REFRESH_SECONDS = 3
TABLE_COLUMNS = [
    *RUNS_FRAME_COLUMNS,  # runs_frame's own columns first, in its order
    "dtype",
    "batch_size",
    "worker",
    "created",
    "finished_at",
    "error",
    "open",
]
SPLIT_LABELS = {names.IMAGE_ENCODE: "Images", names.CAPTION: "Images, captioning"}
STATUS_COLOURS = {  # background of the status cell: failures stand out
    RunStatus.failed: "background-color: rgba(255, 75, 75, 0.25)",
    RunStatus.cancelled: "background-color: rgba(255, 170, 0, 0.2)",
    RunStatus.succeeded: "background-color: rgba(33, 195, 84, 0.15)",
}

st.title("Runs")
data.ensure_database()


def _catalogue() -> list[tuple[str, str, list[str]]]:
    from mirada.vlm.catalogue import list_catalogue

    return [(e.id, e.title, sorted(e.capabilities)) for e in list_catalogue()]


def _model_label(model_id: str, title: str, here: bool) -> str:
    where = "weights on this machine" if here else "weights not here: mirada models pull"
    return f"{title} — {model_id} ({where})"


def _queue_form(datasets: pd.DataFrame) -> None:
    cat = _catalogue()
    here = data.weights_here(tuple(mid for mid, _, _ in cat))
    titles = {mid: _model_label(mid, title, here.get(mid, False)) for mid, title, _ in cat}
    names = dict(zip(datasets["id"].astype(int), datasets["name"], strict=True))
    missing = sum(not v for v in here.values())
    with st.form("runs_queue_form"):
        st.caption(
            f"{len(here) - missing} of {len(here)} catalogue models have their weights on this "
            "machine; a run of one that has not fails until they are pulled "
            "(`mirada models pull ID`, needs internet)."
        )
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
                    Task(task),  # widget values: the vocabularies' own strings
                    device=Device(device),
                    dtype=Dtype(dtype),
                    batch_size=int(batch),
                )
                queued.append(f"#{run_id} {markdown_text(model_id)} · {task}")
            except MiradaError as exc:
                refused.append(f"- **{markdown_text(model_id)} · {task}**: {markdown_text(exc)}")
    data.invalidate()
    if queued:
        st.success("Queued: " + ", ".join(queued))
    if refused:  # one message for every impossible pair, not one box each
        st.error(f"Not queued ({len(refused)}):\n\n" + "\n".join(refused))


def _styled(runs: pd.DataFrame) -> Styler:
    """The table with a link to each finished run's page and the status cell coloured."""
    shown = runs[[c for c in TABLE_COLUMNS if c in runs.columns and c != "open"]].copy()
    shown["open"] = [
        links.run_href(t, int(i)) if s == RunStatus.succeeded else None
        for i, t, s in zip(runs["id"], runs["task"], runs["status"], strict=True)
    ]
    return shown.style.map(lambda s: STATUS_COLOURS.get(s, ""), subset=["status"])


@st.fragment(run_every=REFRESH_SECONDS)
def _live_table() -> None:
    notice = data.worker_notice(60)
    if notice:
        st.warning(notice, icon=":material/warning:")
    runs = data.runs_frame()
    if runs.empty:
        st.info(
            "No runs yet: queue one below, or "
            "`mirada queue --dataset NAME --model ID --task match`."
        )
        return
    counts = runs["status"].value_counts()
    st.caption(
        " · ".join(f"{s}: {int(counts.get(s, 0))}" for s in RunStatus)
        + f" — refreshes every {REFRESH_SECONDS} s"
    )
    for r in runs[runs["status"] == RunStatus.running].head(5).to_dict("records"):
        parts = [
            f"{r['progress']:.0%}",
            r.get("phase") or "starting",
            f"{r['elapsed']} elapsed" if r.get("elapsed") else None,
            f"{r['time_left']} left" if r.get("time_left") else None,
        ]
        st.info(
            f"**Run #{int(r['id'])}** {markdown_text(r['model'])} · {r['task']}: "
            + " · ".join(markdown_text(p) for p in parts if p),
            icon=":material/progress_activity:",
        )
    failed = runs[runs["status"] == RunStatus.failed]
    if not failed.empty:
        st.error(
            f"{len(failed)} run(s) failed: "
            + ", ".join(f"#{i}" for i in failed["id"].head(10))
            + (" …" if len(failed) > 10 else "")
            + ". Pick one under *Cancel, retry, inspect* for its message.",
            icon=":material/error:",
        )
    st.dataframe(
        _styled(runs),
        hide_index=True,
        key="runs_table",
        column_config={
            "open": st.column_config.LinkColumn(
                "open", display_text="open ↗", help="The page that shows this run"
            ),
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0.0, max_value=1.0, format="percent"
            ),
            "error": st.column_config.TextColumn("error", width="medium"),
            "phase": st.column_config.TextColumn("phase", help="What a running run does now"),
            "time_left": st.column_config.TextColumn(
                "time left",
                help="Estimate for a running run: elapsed time × work left / work done "
                "(model loading counts into the pace, so early estimates run high)",
            ),
        },
    )


def split_text(split: StageSplit) -> str:
    """'Images: decode wait 0.40 s, model 3.60 s (10.0% waiting on input)'."""
    seconds, share = names.MetricKind.seconds, names.MetricKind.proportion
    label = SPLIT_LABELS.get(split.op, names.OPERATIONS.get(split.op, split.op))
    return (
        f"{label}: decode wait {format_value(seconds, split.decode_wait_s)}, "
        f"model {format_value(seconds, split.model_s)} "
        f"({format_value(share, split.waiting_share)} waiting on input)"
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
        page = links.page_for_task(Task(row["task"]))
        c3.page_link(
            links.PAGE_FILES[page],
            label=links.TASK_LABELS[page],
            icon=":material/bar_chart:",
            query_params={"run": str(int(run_id))},
        )
        # which stage a slow run was slow in (runs that recorded it; older runs say nothing)
        for split in data.stage_splits(int(run_id)):
            st.caption(
                split_text(split),
                help="Decode wait: time the model waited for the next batch of decoded, "
                "preprocessed images (the input pipeline's time its compute did not hide). "
                "Model: time in the model's forward passes.",
            )
    info = data.live_run_info(int(run_id))
    if info is not None and info.error:
        if info.expected_failure:  # e.g. weights missing: the message says what to do
            st.warning(
                f"**Cannot run yet:** {markdown_text(info.error)}", icon=":material/warning:"
            )
        else:
            st.error(f"**Error:** {markdown_text(info.error)}", icon=":material/error:")
        if info.traceback:
            with st.expander("Traceback", expanded=not info.expected_failure):
                st.code(info.traceback, language="python")


st.subheader("Queue")
_live_table()
all_runs = data.runs_frame()
if not all_runs.empty:
    data.downloads(all_runs, "runs", "runs_dl")
    _actions(all_runs)

datasets = data.dataset_summaries()
if datasets.empty:
    st.info(
        "**No datasets yet**, so nothing to run: import one on the Datasets page or with "
        "`mirada import PATH`."
    )
else:
    with st.expander("Queue runs", expanded=all_runs.empty, icon=":material/add:"):
        _queue_form(datasets)
