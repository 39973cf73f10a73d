"""Hardware: latency, throughput and memory per model across hosts, devices, dtypes and batch
sizes (benchmark runs), and the hardware profiles they ran on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mirada.dashboard import charts, data
from mirada.metrics.names import (
    BENCHMARK_STATS,
    CAPTION,
    CUDA_MAX_ALLOCATED_MB,
    IMAGE_ENCODE,
    LOAD_SECONDS,
    OPERATIONS,
    PEAK_RSS_MB,
    TEXT_ENCODE,
    TIMING_STATS,
)
from mirada.queries.common import short_model
from mirada.queries.hardware import recommend
from mirada.text_safety import markdown_text

OP_UNITS = {IMAGE_ENCODE: "images/s", TEXT_ENCODE: "texts/s", CAPTION: "captions/s"}

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
    latency_only = set(timings.loc[timings["latency_only"].astype(bool), "model"])
    model = c1.selectbox(
        "Model",
        models,
        key="hardware_model",
        format_func=lambda m: short_model(m) + (" [latency only]" if m in latency_only else ""),
    )
    pick_hosts = c2.multiselect("Hosts", hosts, default=hosts, key="hardware_hosts")
    threshold = c3.number_input(
        "Agreement threshold (min cosine to fp32)",
        min_value=0.0,
        max_value=1.0,
        value=0.999,
        step=0.0005,
        format="%.4f",
        key="hardware_threshold",
        help="The fastest variant whose minimum cosine to fp32 eager stays at or above this.",
    )
    sel = timings[(timings["model"] == model) & timings["host"].isin(pick_hosts)].copy()
    if bool(sel["latency_only"].any()):
        st.warning(
            "**Latency only:** this model has random weights at the real model's size; its "
            "speed and memory are the real model's, its outputs mean nothing."
        )
    summary = data.variant_summary()
    summary = summary[(summary["model"] == model) & summary["host"].isin(pick_hosts)]
    if sel.empty:
        st.info("No measurements match these filters.")
    else:
        sel["config"] = [
            f"{h} · {d} · {v}"
            for h, d, v in zip(sel["host"], sel["device"], sel["variant"], strict=True)
        ]
        st.caption(
            "Bars are the median (p50) time per item over the timed batches; whiskers reach "
            "the 95th percentile. Hover for the number of timed batches."
        )
        for op in [o for o in OPERATIONS if o in set(sel["op"])]:
            part = sel[sel["op"] == op]
            unit = OP_UNITS[op]
            st.subheader(OPERATIONS[op])
            st.altair_chart(
                charts.latency_by_batch(part, title=f"{OPERATIONS[op]}: latency per item (ms)"),
                width="stretch",
            )
            st.altair_chart(
                charts.throughput_by_batch(
                    part, title=f"{OPERATIONS[op]}: throughput vs batch size", unit=unit
                ),
                width="stretch",
            )
        mem = sel.melt(
            id_vars=["config", "op", "batch_size"],
            value_vars=[PEAK_RSS_MB, CUDA_MAX_ALLOCATED_MB],
            var_name="memory",
            value_name="mb",
        ).dropna(subset=["mb"])
        mem = mem[mem["batch_size"] == mem.groupby("config")["batch_size"].transform("max")]
        mem = mem.drop_duplicates(["config", "memory"])
        if not mem.empty:
            mem["memory"] = mem["memory"].map(lambda stat: TIMING_STATS[stat][0])
            st.altair_chart(
                charts.memory_bars(mem, title="Peak memory at the largest batch size (MB)"),
                width="stretch",
            )
    st.subheader("What should I use?")
    if summary.empty:
        st.info(
            "No variant runs for this model yet. Queue one with e.g. `mirada queue --task "
            "benchmark --variants fp32,bf16 ...` to compare precisions and their agreement."
        )
    else:
        best = recommend(summary, float(threshold))
        for key, _rows in summary.groupby(["host", "device"], sort=True):
            host, device = str(key[0]), str(key[1])
            row = best[(best["host"] == host) & (best["device"] == device)]
            where = f"**{markdown_text(host)}** ({markdown_text(device)})"
            if row.empty:
                st.markdown(f"On {where}: no variant keeps min cosine ≥ {threshold:.4f}; use fp32.")
                continue
            r = row.iloc[0]
            st.markdown(
                f"On {where}: use **{markdown_text(r['variant'])}**: "
                f"{r['speed']:.1f} {markdown_text(r['unit'])}, min cosine to fp32 "
                f"{r['min_cosine_to_fp32']:.6f} (run {int(r['run_id'])})."
            )
        points = summary[summary["available"]].copy()
        points["speed"] = points["images_per_s"].fillna(points["captions_per_s"])
        points = points.dropna(subset=["speed", "min_cosine_to_fp32"])
        if not points.empty:
            st.altair_chart(
                charts.speed_vs_agreement(
                    points, title="Speed vs agreement per variant", threshold=float(threshold)
                ),
                width="stretch",
            )
        st.dataframe(summary, hide_index=True, key="hardware_variants")
    if not sel.empty:
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
            loads[(loads["model"] == model) & loads["host"].isin(pick_hosts)],
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
