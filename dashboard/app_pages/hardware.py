"""Hardware: latency, throughput and memory per model across hosts, devices, dtypes and batch
sizes (benchmark runs), and the hardware profiles they ran on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mirada.dashboard import charts, data

OPS = {"image_encode": "image encode", "text_encode": "text encode", "caption": "caption"}

st.title("Hardware")
data.ensure_database()

timings = data.query("benchmark_timings")
profiles = data.query("hardware_profiles")
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
    ops = [o for o in OPS if o in set(timings["op"])]
    pick_models = c1.multiselect("Models", models, default=models, key="hardware_models")
    pick_hosts = c2.multiselect("Hosts", hosts, default=hosts, key="hardware_hosts")
    op = c3.selectbox("Operation", ops, format_func=lambda o: OPS[o], key="hardware_op")
    sel = timings[
        timings["model"].isin(pick_models)
        & timings["host"].isin(pick_hosts)
        & (timings["op"] == op)
    ].copy()
    if sel.empty:
        st.info("No measurements match these filters.")
    else:
        sel["config"] = [
            f"{m.split(':', 1)[-1]} · {h} · {d} · {t}"
            for m, h, d, t in zip(
                sel["model"], sel["host"], sel["device"], sel["dtype"], strict=True
            )
        ]
        st.altair_chart(
            charts.latency_bars(sel, title=f"{OPS[op]}: latency per item"), width="stretch"
        )
        st.altair_chart(
            charts.throughput_lines(sel, title=f"{OPS[op]}: throughput vs batch size"),
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
            mem["memory"] = mem["memory"].map(
                {"peak_rss_mb": "peak RSS (host)", "cuda_max_allocated_mb": "CUDA max allocated"}
            )
            st.altair_chart(
                charts.memory_bars(mem, title="Peak memory at the largest batch size"),
                width="stretch",
            )
        st.dataframe(sel.drop(columns=["config"]), hide_index=True, key="hardware_table")
        data.downloads(sel.drop(columns=["config"]), "benchmarks", "hardware_dl")
    loads = data.query("load_times")
    if not loads.empty:
        st.subheader("Model load time")
        st.dataframe(
            loads[loads["model"].isin(pick_models) & loads["host"].isin(pick_hosts)],
            hide_index=True,
            key="hardware_loads",
        )

st.subheader("Hardware profiles")
if profiles.empty:
    st.info("No hardware profiles yet: each worker records its machine when it starts.")
else:
    st.dataframe(profiles, hide_index=True, key="hardware_profiles")
    data.downloads(pd.DataFrame(profiles), "hardware_profiles", "hardware_prof_dl")
