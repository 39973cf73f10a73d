"""Hardware: "how fast is it on my hardware?". First one table of every model x host x variant
(throughput and speed-up with CIs, latency, load time, added memory, the accuracy cost,
contention), then "What should I use?" at the user's tolerance, then the details of one model
(latency on one log axis, throughput against batch size, speed against accuracy, machines
compared, the input pipeline). `?run=N` (every benchmark run's link) opens its model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mirada.dashboard import charts, data, hardware_charts, links
from mirada.domain import Task
from mirada.metrics.names import LATENCY_P50_MS, LOAD_S, OPERATIONS
from mirada.queries.common import short_model
from mirada.queries.hardware import OP_UNITS
from mirada.queries.hardware_tables import (
    cross_host_display,
    input_pipeline_rows,
    overview_display,
)
from mirada.queries.speed_advice import DEFAULT_COSINE, DEFAULT_TOLERANCE, Outcome
from mirada.text_safety import markdown_text

# "Sort by" choices: (overview column, descending)
SORTS = {
    "model, host, run": (None, False),
    "throughput (fastest first)": ("throughput", True),
    "speed-up (largest first)": ("speedup", True),
    "latency p50 (lowest first)": (LATENCY_P50_MS, False),
    "accuracy Δ (smallest loss first)": ("accuracy_ci_low", True),
    "load time (shortest first)": (LOAD_S, False),
}

st.title("Hardware")
data.ensure_database()

overview = data.hardware_overview()
profiles = data.hardware_profiles()
if overview.empty:
    st.info(
        "**No benchmark results yet.** Queue a benchmark run, e.g. "
        "`mirada queue --dataset NAME --model hf-clip:mirada/demo-clip --task benchmark "
        "--variants fp32,bf16 --batch-sizes 1,8,32`, and start `mirada worker` on "
        "each machine you want to compare."
    )
else:
    st.caption(
        "Every benchmark run, one row per variant: throughput and speed-up with their 95% CIs "
        "at the largest batch size of the speed operation, latency per item, load time, the "
        "memory a variant adds, and what it costs in task accuracy (the task metric whose "
        "difference to the reference has the lowest CI bound, in points)."
    )
    wanted = data.query_id("run")
    linked = overview[overview["run_id"] == wanted] if wanted else overview.iloc[0:0]
    if wanted and linked.empty:
        st.info(f"Run {wanted} is not a benchmark run with results; showing every run.")
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    models = sorted(overview["model"].unique())
    pick_models = c1.multiselect(
        "Models", models, default=models, key="hardware_models", format_func=short_model
    )
    hosts = sorted(overview["host"].unique())
    pick_hosts = c2.multiselect("Hosts", hosts, default=hosts, key="hardware_hosts")
    devices = sorted(overview["device"].unique())
    pick_devices = c3.multiselect("Devices", devices, default=devices, key="hardware_devices")
    sort = c4.selectbox("Sort by", list(SORTS), key="hardware_sort")
    sel = overview[
        overview["model"].isin(pick_models)
        & overview["host"].isin(pick_hosts)
        & overview["device"].isin(pick_devices)
    ]
    column, descending = SORTS[sort]
    if column is not None:
        sel = sel.sort_values(column, ascending=not descending, na_position="last", kind="stable")
    if sel.empty:
        st.info("No measurements match these filters.")
    else:
        shown = overview_display(sel)
        shown["run"] = [links.run_href(Task.benchmark, int(i)) for i in shown.pop("run_id")]
        st.dataframe(
            shown,
            hide_index=True,
            key="hardware_overview",
            column_config={
                "run": st.column_config.LinkColumn(
                    "run", display_text=r"run=(\d+)", help="Open this run's model below"
                ),
                "contended": st.column_config.TextColumn(
                    "contended",
                    help="yes: other processes used the CPUs while it was measured, so its "
                    "numbers give no recommendation. –: measured before contention was checked.",
                ),
                "process RSS (MB)": st.column_config.TextColumn(
                    "process RSS (MB)",
                    help="The whole worker process's peak resident memory (what older runs "
                    "recorded); 'added peak' is what the variant itself adds.",
                ),
            },
        )
        data.downloads(sel, "hardware_overview", "hardware_dl")
        contended = sel.dropna(subset=["contention_reason"]).drop_duplicates("run_id")
        for r in contended.to_dict("records"):
            st.warning(
                f"**Run {int(r['run_id'])}** ({markdown_text(short_model(r['model']))} on "
                f"{markdown_text(r['host'])}): {markdown_text(r['contention_reason'])}",
                icon=":material/warning:",
            )

    st.subheader("What should I use?")
    c1, c2 = st.columns(2)
    tolerance = c1.number_input(
        "Tolerance (points of task accuracy)",
        min_value=0.0,
        max_value=100.0,
        value=DEFAULT_TOLERANCE,
        step=0.5,
        key="hardware_tolerance",
        help="A variant qualifies when every task metric's difference CI stays above minus "
        "this many points and its speed-up CI lies above 1.",
    )
    cosine = c2.number_input(
        "Cosine threshold (secondary: only where no task metric was measured)",
        min_value=0.0,
        max_value=1.0,
        value=DEFAULT_COSINE,
        step=0.0005,
        format="%.4f",
        key="hardware_cosine",
        help="Datasets without captions or categories have no task metric: such a variant "
        "qualifies when its minimum cosine to the reference is at least this.",
    )
    advice_shown = 0
    for rec in data.recommendations(float(tolerance), float(cosine)):
        if (
            rec.model not in pick_models
            or rec.host not in pick_hosts
            or rec.device not in pick_devices
        ):
            continue
        advice_shown += 1
        where = (
            f"**{markdown_text(short_model(rec.model))}** on **{markdown_text(rec.host)}** "
            f"({markdown_text(rec.device)}), run {rec.run_id}"
        )
        text = f"{where}: {markdown_text(rec.advice.summary)}"
        if rec.advice.outcome == Outcome.withheld:
            st.warning(text, icon=":material/block:")
        else:
            st.markdown(text)
        for note in rec.notes:
            st.caption(markdown_text(note))
    if not advice_shown:
        st.info("No benchmark runs match these filters.")

    st.subheader("Details")
    detail_models = pick_models or models
    default = linked["model"].iloc[0] if not linked.empty else detail_models[0]
    model = st.selectbox(
        "Model",
        detail_models,
        index=detail_models.index(default) if default in detail_models else 0,
        key="hardware_model",
        format_func=short_model,
    )
    if bool(overview.loc[overview["model"] == model, "latency_only"].any()):
        st.warning(
            "**Latency only:** this model has random weights at the real model's size; its "
            "speed and memory are the real model's, its outputs mean nothing."
        )
    det = data.hardware_detail(model)
    det = det[det["host"].isin(pick_hosts) & det["device"].isin(pick_devices)]
    ops = [o for o in OPERATIONS if o in set(det["op"])]
    if not ops:
        st.info("No measurements of this model match these filters.")
    else:
        op = st.selectbox("Operation", ops, key="hardware_op", format_func=lambda o: OPERATIONS[o])
        part = det[det["op"] == op]
        st.caption(
            "Each run is its own series (run · host · variant), so repeated measurements of one "
            "configuration show side by side rather than merged."
        )
        st.altair_chart(
            hardware_charts.latency_log(part, title=f"{OPERATIONS[op]}: latency per item"),
            width="stretch",
        )
        st.altair_chart(
            hardware_charts.throughput_ci(
                part, title=f"{OPERATIONS[op]}: throughput against batch size", unit=OP_UNITS[op]
            ),
            width="stretch",
        )
    mine = overview[
        (overview["model"] == model)
        & overview["host"].isin(pick_hosts)
        & overview["device"].isin(pick_devices)
        & overview["available"]
        & ~overview["reference"]
    ].copy()
    mine["label"] = [
        f"run {int(r)} · {h} · {v}"
        for r, h, v in zip(mine["run_id"], mine["host"], mine["variant"], strict=True)
    ]
    costed = mine.dropna(subset=["speedup", "accuracy_delta"])
    by_cosine = mine.dropna(subset=["speedup", "min_cosine_to_fp32"])
    if not costed.empty:
        st.altair_chart(
            hardware_charts.speed_vs_accuracy(
                costed,
                title="Speed-up against accuracy cost (lowest task metric)",
                x="accuracy_delta",
                x_title="accuracy difference to the reference (points, 95% CI)",
                rule=-float(tolerance),
                low="accuracy_ci_low",
                high="accuracy_ci_high",
            ),
            width="stretch",
        )
    elif not by_cosine.empty:
        st.altair_chart(
            hardware_charts.speed_vs_accuracy(
                by_cosine,
                title="Speed-up against agreement (no task metrics measured)",
                x="min_cosine_to_fp32",
                x_title="min cosine to the reference (1 = identical)",
                rule=float(cosine),
            ),
            width="stretch",
        )
    cross = data.cross_host()
    cross = cross[cross["model"] == model]
    if not cross.empty:
        st.markdown("**Across machines:** the same model and variant on two hosts")
        st.dataframe(cross_host_display(cross), hide_index=True, key="hardware_cross")
    pipeline = input_pipeline_rows(data.benchmark_runs(), model)
    if not pipeline.empty:
        st.markdown("**Input pipeline:** decoding and preprocessing the dataset's files")
        st.dataframe(pipeline, hide_index=True, key="hardware_input")

st.subheader("Hardware profiles")
if profiles.empty:
    st.info("No hardware profiles yet: each worker records its machine when it starts.")
else:
    st.dataframe(
        charts.table_text(profiles.astype(object)).astype(str),
        hide_index=True,
        key="hardware_profiles",
    )
    data.downloads(pd.DataFrame(profiles), "hardware_profiles", "hardware_prof_dl")
