"""Runs: the live queue first (failed runs stand out, each run links to the page that shows
it), cancel / retry / inspect, and the queue form (one task at a time, offering the models
that can run it, and which have their weights here) in an expander below.

The URL carries the selection: `?run=R` is the run the inspector shows (the queue's
confirmation links there), `?dataset=D` the dataset the queue form starts on (the Datasets
page's "Queue runs on this dataset" links there)."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from mirada.dashboard import data, links
from mirada.domain import CANCELLABLE, RETRYABLE, Device, Dtype, Phase, RunStatus, Task, choices
from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.formatting import MISSING, format_value
from mirada.queries.runs import TASK_WORDS, StageSplit, models_for_task, task_refusal
from mirada.queue import cancel_run, enqueue, retry_run
from mirada.text_safety import markdown_text

REFRESH_SECONDS = 3
RUN_PARAM = "run"  # the run the inspector shows
DATASET_PARAM = "dataset"  # the dataset the queue form starts on
ACTION_KEY = "runs_action_run"
QUEUED_KEY = "runs_just_queued"  # [(run id, model id, task)] queued by the form, shown once
# The link, what a run is and how far it got first: in view without scrolling beside a long
# model id; the rest after. A running run's phase and time left are also in its banner above
# the table. runs_frame's `elapsed` is not shown: `duration` is the same for running runs.
TABLE_COLUMNS = [
    "open",
    "id",
    "status",
    "progress",
    "task",
    "model",
    "duration",
    "dataset",
    "phase",
    "time_left",
    "attempts",
    "device",
    "dtype",
    "batch_size",
    "worker",
    "created",
    "finished_at",
    "error",
]
NUMBER_COLUMNS = {"id", "progress", "attempts", "batch_size"}  # the rest is text: "–" if unset
# Wide enough for the longest phase (a grid column cuts its text at its width): ~7 px a
# character of the grid's font, plus the cell's padding.
PHASE_WIDTH = 7 * max(len(p.value) for p in Phase) + 16
SPLIT_LABELS = {names.IMAGE_ENCODE: "Images", names.CAPTION: "Images, captioning"}
STATUS_COLOURS = {  # background of the status cell: failures stand out
    RunStatus.failed: "background-color: rgba(255, 75, 75, 0.25)",
    RunStatus.cancelled: "background-color: rgba(255, 170, 0, 0.2)",
    RunStatus.succeeded: "background-color: rgba(33, 195, 84, 0.15)",
}

st.title("Runs")
data.ensure_database()


def _model_label(title: str, model_id: str, here: bool) -> str:
    where = "weights on this machine" if here else "weights not here: mirada models pull"
    return f"{title} — {model_id} ({where})"


def _task_picker() -> Task:
    """The task to queue, outside the form so that the model list follows it."""
    picked = st.segmented_control(
        "Task",
        choices(Task),
        default=Task.match.value,
        key="runs_task",
        format_func=lambda t: f"{t}: {TASK_WORDS.get(Task(t), t)}",
        help="The models offered below are those that can run this task.",
    )
    return Task(picked or Task.match.value)  # a widget value: the vocabulary's own string


def _queue_form(datasets: pd.DataFrame, wanted: int | None) -> None:
    """The form for one task; `wanted` is the dataset it starts on (from the URL)."""
    task = _task_picker()
    able, unable = models_for_task(task)
    here = data.weights_here(tuple(m.id for m in able))
    titles = {m.id: _model_label(m.title, m.id, here.get(m.id, False)) for m in able}
    ds_names = dict(zip(datasets["id"].astype(int), datasets["name"], strict=True))
    ds_ids = list(ds_names)
    missing = sum(not v for v in here.values())
    with st.form("runs_queue_form"):
        st.caption(
            f"{len(able)} catalogue models can {TASK_WORDS.get(task, f'run {task}')}"
            + (f" ({len(unable)} others cannot, so they are not listed)" if unable else "")
            + f"; {len(able) - missing} of them have their weights on this machine. A run of "
            "one that has not fails until they are pulled (`mirada models pull ID`, needs "
            "internet)."
        )
        dataset_id = st.selectbox(
            "Dataset",
            ds_ids,
            index=ds_ids.index(wanted) if wanted in ds_ids else 0,
            format_func=lambda i: ds_names[i],
            key="runs_dataset",
        )
        models = st.multiselect(
            "Catalogue models",
            list(titles),
            format_func=lambda m: titles[m],
            key=f"runs_models_{task}",  # the options differ per task
        )
        typed = st.text_input(
            "…or model ids, comma-separated (e.g. `open-clip:ViT-B-16/laion2b_s34b_b88k`)",
            key="runs_typed_models",
        )
        c1, c2, c3 = st.columns(3)
        device = c1.selectbox("Device", choices(Device), key="runs_device")
        dtype = c2.selectbox("dtype", choices(Dtype), key="runs_dtype")
        batch = c3.number_input("Batch size", 1, 4096, 32, key="runs_batch")
        submitted = st.form_submit_button(f"Queue {task} runs", type="primary")
    if submitted:
        model_ids = list(models) + [m.strip() for m in typed.split(",") if m.strip()]
        _queue(int(dataset_id), list(dict.fromkeys(model_ids)), task, device, dtype, int(batch))
    _confirmation()


def _queue(
    dataset_id: int, model_ids: list[str], task: Task, device: str, dtype: str, batch: int
) -> None:
    """Queue `task` for each model, and say in plain words why a model cannot run it. When
    some were queued: keep the outcome for the confirmation, point the inspector at the first
    new run and rerun (the table and the inspector are drawn above the form)."""
    if not model_ids:
        st.warning("Pick at least one model.")
        return
    queued: list[tuple[int, str, str]] = []
    refused: list[str] = []
    for model_id in model_ids:
        why = task_refusal(model_id, task)
        if why is None:
            try:
                run_id = enqueue(
                    dataset_id,
                    model_id,
                    task,
                    device=Device(device),  # widget values: the vocabularies' own strings
                    dtype=Dtype(dtype),
                    batch_size=batch,
                )
            except MiradaError as exc:  # a dataset deleted meanwhile, a dtype the task refuses
                why = str(exc)
            else:
                queued.append((run_id, model_id, str(task)))
                continue
        refused.append(why)
    st.session_state[QUEUED_KEY] = (queued, refused)
    if queued:
        data.invalidate()
        st.query_params[RUN_PARAM] = str(queued[0][0])
        st.rerun()


def _confirmation() -> None:
    """What the form just did (shown once): each queued run a link to it in the inspector,
    then one message for every model that could not run the task."""
    queued, refused = st.session_state.pop(QUEUED_KEY, ([], []))
    if queued:
        st.success(f"Queued {len(queued)} run(s); open one to follow it:", icon=":material/check:")
        for run_id, model_id, task in queued:
            st.page_link(
                links.PAGE_FILES[links.RUNS],
                label=f"#{run_id} {markdown_text(model_id)} · {task}",  # labels are Markdown
                icon=":material/arrow_upward:",
                query_params={RUN_PARAM: str(run_id)},
            )
    if refused:
        # a malformed id's message goes on with the list of valid forms: shown once, as is
        lines = "\n".join(f"- {markdown_text(why.splitlines()[0])}" for why in refused)
        st.warning(f"Not queued ({len(refused)}):\n\n{lines}")
        details = dict.fromkeys("\n".join(why.splitlines()[1:]) for why in refused)
        for detail in details:
            if detail:
                st.code(detail, language=None)


def open_links(runs: pd.DataFrame) -> list[str]:
    """Where each run's "open" goes: a succeeded run's results page, any other run this
    page's inspector (its error, cancel, retry)."""
    return [
        links.run_href(Task(t), int(i))
        if s == RunStatus.succeeded
        else links.href(links.RUNS, **{RUN_PARAM: int(i)})
        for i, t, s in zip(runs["id"], runs["task"], runs["status"], strict=True)
    ]


def table_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The Runs table: TABLE_COLUMNS in order, every unset text cell "–" (a grid draws a
    missing value as "None")."""
    shown = runs.assign(open=open_links(runs))
    shown = shown[[c for c in TABLE_COLUMNS if c in shown.columns]].copy()
    for column in shown.columns.difference(sorted(NUMBER_COLUMNS)):
        shown[column] = shown[column].astype(object).where(shown[column].notna(), MISSING)
    return shown


def _styled(runs: pd.DataFrame) -> Styler:
    """The table with the status cell coloured."""
    return table_frame(runs).style.map(lambda s: STATUS_COLOURS.get(s, ""), subset=["status"])


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
            f"{r['elapsed']} elapsed" if isinstance(r.get("elapsed"), str) else None,
            f"{r['time_left']} left" if isinstance(r.get("time_left"), str) else None,
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
                "open",
                display_text="open ↗",
                pinned=True,
                help="A succeeded run: the page that shows its results. Any other run: its "
                "error, cancel and retry, below.",
            ),
            "id": st.column_config.NumberColumn("id", pinned=True, format="%d"),
            # one colour for every row: the theme's primary colour (the default) is red, and
            # a succeeded run's full bar must not read as a failure
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0.0, max_value=1.0, format="percent", color="blue"
            ),
            "phase": st.column_config.TextColumn(
                "phase", width=PHASE_WIDTH, help="What a running run does now"
            ),
            "duration": st.column_config.TextColumn(
                "duration",
                help="A finished run: start to finish (its last attempt). A running run: "
                "so far. Measured on the database's clock.",
            ),
            "time_left": st.column_config.TextColumn(
                "time left",
                help="Estimate for a running run: elapsed time × work left / work done "
                "(model loading counts into the pace, so early estimates run high)",
            ),
            "batch_size": st.column_config.NumberColumn("batch", format="%d"),
            "finished_at": st.column_config.TextColumn("finished"),
            "error": st.column_config.TextColumn("error", width="medium"),
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


def _pick_run(runs: pd.DataFrame) -> int | None:
    """The inspector's run: the one in the URL (`?run=R`, set by the queue's confirmation
    links and by picking here), else the newest."""
    ids = runs["id"].astype(int).tolist()
    labels = {
        int(r["id"]): f"#{r['id']} {r['model']} · {r['task']} · {r['status']}"
        for r in runs.to_dict("records")
    }
    wanted = data.query_id(RUN_PARAM)
    if wanted in ids:
        st.session_state[ACTION_KEY] = wanted
    elif wanted is not None:
        st.info(f"Run {wanted} is not in the queue (deleted?); showing the newest.")
        st.query_params.pop(RUN_PARAM, None)

    def remember() -> None:  # before the rerun, so the URL above agrees with the pick
        st.query_params[RUN_PARAM] = str(st.session_state[ACTION_KEY])

    return st.selectbox(
        "Run", ids, format_func=lambda i: labels[i], key=ACTION_KEY, on_change=remember
    )


def _actions(runs: pd.DataFrame) -> None:
    st.subheader("Cancel, retry, inspect")
    run_id = _pick_run(runs)
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
    wanted = data.query_id(DATASET_PARAM)
    unfold = all_runs.empty or wanted is not None or QUEUED_KEY in st.session_state
    with st.expander("Queue runs", expanded=unfold, icon=":material/add:"):
        _queue_form(datasets, wanted)
