"""Hardware: latency, throughput and memory per model across hosts, devices, dtypes and batch
sizes (benchmark runs), and the hardware profiles they ran on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mirada.dashboard import charts, data
from mirada.metrics.names import BENCHMARK_STATS, LOAD_SECONDS, OPERATIONS, TIMING_STATS
from mirada.queries.common import short_model

# Benchmark columns under their label, with the description and stored key as tooltip.
STAT_COLUMNS = {
    stat: st.column_config.NumberColumn(
        TIMING_STATS[stat][0], help=f"{TIMING_STATS[stat][1]} Key: `<op>_{stat}`.", format="%.2f"
    )
    for stat in BENCHMARK_STATS
}
LOAD_COLUMN = st.column_config.NumberColumn(
    LOAD_SECONDS.label, help=LOAD_SECONDS.help, format="%.2f"
)

st.title("Hardware")
data.ensure_database()

timings = data.benchmark_timings()
profiles = data.hardware_profiles()
if timings.empty:
    st.info(
        "**No benchmark results yet.** Queue a benchmark run, e.g. "
        "`mirada queue --dataset NAME --model hf-clip:mirada/demo-clip --task benchmark "
        "--batch-sizes 1,8,32`, and start `mirada worker` on "
        "each machine you want to compare."
    )
else:
    c1, c2, c3 = st.columns(3)
    models = sorted(timings["model"].unique())
    hosts = sorted(timings["host"].unique())
    ops = [o for o in OPERATIONS if o in set(timings["op"])]
    pick_models = c1.multiselect("Models", models, default=models, key="hardware_models")
    pick_hosts = c2.multiselect("Hosts", hosts, default=hosts, key="hardware_hosts")
    op = c3.selectbox("Operation", ops, format_func=lambda o: OPERATIONS[o], key="hardware_op")
    sel = timings[
        timings["model"].isin(pick_models)
        & timings["host"].isin(pick_hosts)
        & (timings["op"] == op)
    ].copy()
    if sel.empty:
        st.info("No measurements match these filters.")
    else:
        sel["config"] = [
            f"{short_model(m)} · {h} · {d} · {t}"
            for m, h, d, t in zip(
                sel["model"], sel["host"], sel["device"], sel["dtype"], strict=True
            )
        ]
        st.altair_chart(
            charts.latency_bars(sel, title=f"{OPERATIONS[op]}: latency per item"),
            width="stretch",
        )
        st.altair_chart(
            charts.throughput_lines(sel, title=f"{OPERATIONS[op]}: throughput vs batch size"),
            width="stretch",
        )
        mem = sel.melt(
            id_vars=["config", "batch_size"],
            value_vars=["peak_rss_mb", "cuda_max_allocated_mb"],
            var_name="memory",
            value_name="mb",
        ).dropna(subset=["mb"])
        mem = mem[mem["batch_size"] == mem.groupby("config")["batch_size"].transform("max")]
        if not mem.empty:
            mem["memory"] = mem["memory"].map(lambda stat: TIMING_STATS[stat][0])
            st.altair_chart(
                charts.memory_bars(mem, title="Peak memory at the largest batch size"),
                width="stretch",
            )
        st.dataframe(
            sel.drop(columns=["config"]),
            hide_index=True,
            key="hardware_table",
            column_config=STAT_COLUMNS,
        )
        data.downloads(sel.drop(columns=["config"]), "benchmarks", "hardware_dl")
    loads = data.load_times()
    if not loads.empty:
        st.subheader("Model load time")
        st.dataframe(
            loads[loads["model"].isin(pick_models) & loads["host"].isin(pick_hosts)],
            hide_index=True,
            key="hardware_loads",
            column_config={LOAD_SECONDS.key: LOAD_COLUMN},
        )

st.subheader("Hardware profiles")
if profiles.empty:
    st.info("No hardware profiles yet: each worker records its machine when it starts.")
else:
    st.dataframe(profiles, hide_index=True, key="hardware_profiles")
    data.downloads(pd.DataFrame(profiles), "hardware_profiles", "hardware_prof_dl")
