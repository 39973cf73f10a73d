"""Cached, typed access to the read models for the pages.

The queries live in `mirada.queries.*` (tested without Streamlit). Each function here is one
of them wrapped by `cached`: same signature and return type, so pages call them directly and
editors follow the call. Results are cached with `st.cache_data(ttl=...)` keyed by the database
URL (pointing MIRADA_HOME elsewhere never serves stale results); the engine with
`st.cache_resource`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from mirada import export, projections
from mirada.config import get_settings
from mirada.dashboard import links
from mirada.db import get_engine
from mirada.domain import Task
from mirada.errors import MiradaError
from mirada.queries import (
    captions,
    common,
    compare,
    datasets,
    hardware,
    images,
    probe,
    results,
    runs,
    similarity,
)
from mirada.queries.common import RunInfo
from mirada.text_safety import json_safe, markdown_text

RESULTS_TTL = 300  # finished runs do not change
LIVE_TTL = 2  # run status and progress

P = ParamSpec("P")
R = TypeVar("R")
_CACHES: list[Any] = []  # every cached query, for invalidate()


def db_url() -> str:
    return get_settings().database_url


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return get_engine(url)


def ensure_database() -> None:
    """Open (and migrate) the database once per URL; stop the page with advice if it fails."""
    try:
        url = db_url()
    except MiradaError as exc:  # a bad MIRADA_HOME or MIRADA_DATABASE_URL: its one line
        st.error(markdown_text(str(exc)))
        st.stop()
    try:
        _engine(url)
    except Exception as exc:  # any connection/migration failure: tell the user, not a traceback
        st.error(
            f"Cannot open the database at {markdown_text(url)}: "
            f"{markdown_text(f'{type(exc).__name__}: {exc}')}\n\n"
            "Check MIRADA_HOME / MIRADA_DATABASE_URL, or run `mirada datasets` to initialise it."
        )
        st.stop()


def cached(ttl: int, *, spinner: str | bool = False) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a query in `st.cache_data(ttl)` with the database URL as the first key part."""

    def wrap(query: Callable[P, R]) -> Callable[P, R]:
        def call(url: str, *args: Any, **kwargs: Any) -> R:
            return query(*args, **kwargs)

        # Streamlit keys a cache by the function's module, qualified name and source; every
        # `call` has the same source, so the name must tell the queries (and TTLs) apart.
        call.__qualname__ = f"{query.__module__}.{query.__qualname__}@{ttl}"
        store = st.cache_data(ttl=ttl, show_spinner=spinner)(call)
        _CACHES.append(store)

        @functools.wraps(query)
        def cached_query(*args: P.args, **kwargs: P.kwargs) -> R:
            return store(db_url(), *args, **kwargs)

        return cached_query

    return wrap


results_cache = cached(RESULTS_TTL)
live_cache = cached(LIVE_TTL)

# Datasets page
dataset_summaries = results_cache(datasets.dataset_summaries)
dataset_categories = results_cache(datasets.dataset_categories)
dataset_item_count = results_cache(datasets.dataset_item_count)
dataset_gallery = results_cache(datasets.dataset_gallery)
category_counts = results_cache(datasets.category_counts)

# Runs page (live: status and progress change while it is open)
runs_frame = live_cache(runs.runs_frame)
worker_notice = live_cache(runs.worker_notice)
live_run_info = live_cache(common.run_info)
stage_splits = results_cache(runs.stage_splits)  # final once the run succeeded

# Pickers and headers
finished_runs = results_cache(common.finished_runs)
run_info = results_cache(common.run_info)

# Results page
run_metrics = results_cache(results.run_metrics)
headline_metrics = results_cache(results.headline_metrics)
category_metrics = results_cache(results.category_metrics)
run_items = results_cache(results.run_items)
zeroshot_confusion = results_cache(results.zeroshot_confusion)
probe_view = results_cache(probe.probe_view)
probe_mistakes = results_cache(probe.probe_mistakes)
item_drilldown = results_cache(results.item_drilldown)
hardest_items = results_cache(results.hardest_items)
similarity_view = results_cache(similarity.similarity_view)
similarity_slice = results_cache(similarity.similarity_slice)
embedding_kinds = results_cache(similarity.embedding_kinds)
projection = cached(RESULTS_TTL, spinner="Projecting embeddings…")(projections.projection_frame)

# Compare page
compare_metrics = results_cache(compare.compare_metrics)
compare_categories = results_cache(compare.compare_categories)
pairwise_significance = results_cache(compare.pairwise_significance)
disagreements = results_cache(compare.disagreements)

# Captions page
caption_corpus = results_cache(captions.caption_corpus)
generation_options = results_cache(captions.generation_options)
caption_table = results_cache(captions.caption_table)
hardest_captions = results_cache(captions.hardest_captions)
caption_notes = captions.caption_notes  # constants: nothing to cache

# Thumbnails in tables and galleries (Results, Captions, Compare)
thumbnail_urls = results_cache(images.thumbnail_urls)

# Hardware page
benchmark_runs = results_cache(hardware.benchmark_runs)
hardware_overview = results_cache(hardware.overview)
hardware_detail = results_cache(hardware.detail)
cross_host = results_cache(hardware.cross_host)
recommendations = results_cache(hardware.recommendations)
hardware_profiles = results_cache(hardware.hardware_profiles)


@st.cache_data(ttl=60, show_spinner=False)
def weights_here(model_ids: tuple[str, ...]) -> dict[str, bool]:
    """{model id: its weights are on this machine} (file checks, as `mirada models` does)."""
    from mirada.vlm.registry import available_offline

    out = {}
    for model_id in model_ids:
        try:
            out[model_id] = available_offline(model_id)
        except MiradaError:
            out[model_id] = False
    return out


def projection_status(run_id: int, method: str, kind: str) -> projections.ProjectionStatus:
    """Uncached (two small reads): is the projection stored, or cheap enough to compute now?"""
    return projections.projection_status(run_id, method, kind)


def invalidate() -> None:
    """Forget cached query results (after a write: enqueue, cancel, import, delete)."""
    for store in _CACHES:
        store.clear()


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The table as CSV by the CLI export's cell rules (`mirada.export.write_csv`): booleans
    true/false, missing values empty, every text cell and header safe from formulas."""
    frame = df.astype(object).where(df.notna(), None)
    rows = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
    return export.write_csv([str(c) for c in frame.columns], rows).encode("utf-8")


def _export_table(run_id: int, table: str) -> pd.DataFrame:
    """Table `table` (`mirada.export.CSV_TABLES`) of a run exactly as `mirada export RUN
    --format csv --table TABLE` writes it: the downloads of a run's per-image results and
    metrics use it, so the dashboard and the CLI share one schema (README, "CSV export")."""
    columns, rows = export.run_table(run_id, table)
    return pd.DataFrame(rows, columns=columns, dtype=object)  # ints stay ints, None stays None


export_table = results_cache(_export_table)


def json_bytes(df: pd.DataFrame) -> bytes:
    text = df.to_json(orient="records", indent=2, default_handler=str)
    return json_safe(text).encode("utf-8")  # DEL is ASCII, so force_ascii leaves it raw


def downloads(df: pd.DataFrame, stem: str, key: str) -> None:
    """CSV and JSON download buttons for a table, side by side."""
    c1, c2, _ = st.columns([1, 1, 4])
    c1.download_button(
        "Download CSV",
        csv_bytes(df),
        f"{stem}.csv",
        "text/csv",
        key=f"{key}_csv",
        icon=":material/download:",
    )
    c2.download_button(
        "Download JSON",
        json_bytes(df),
        f"{stem}.json",
        "application/json",
        key=f"{key}_json",
        icon=":material/download:",
    )


def pick_finished_run(
    task: Task, label: str, key: str, empty_hint: str, *, param: str = "run"
) -> tuple[int, RunInfo]:
    """A picker over the finished runs of `task` (newest first, honours ?run=ID in the URL).

    Stops the page with `empty_hint` when there is none. Returns (run id, its RunInfo)."""
    done = finished_runs(task=task)
    if done.empty:
        st.info(empty_hint)
        st.stop()
    ids = done["id"].astype(int).tolist()
    labels = dict(zip(ids, done["label"], strict=True))
    in_url = param in st.query_params
    wanted = query_id(param)
    index = 0
    if wanted in ids:
        index = ids.index(wanted)
    elif wanted is not None:
        st.info(f"Run {wanted} is not a finished {task.value} run; showing the newest.")
    chosen = st.selectbox(label, ids, index=index, format_func=lambda i: labels[i], key=key)
    if chosen is None:
        st.stop()
    if in_url and wanted != chosen:
        st.query_params.pop("item", None)  # an image of the run the URL named, not this one
    st.query_params[param] = str(chosen)
    info = run_info(int(chosen))
    if info is None:  # deleted since the picker was read
        st.stop()
    return int(chosen), info


def _url_notice(exc: links.BadUrlParam, name: str) -> None:
    """Show why URL parameter `name` was ignored, once: it leaves the URL, so the next rerun
    (any widget) and a copied link no longer carry it."""
    st.warning(markdown_text(str(exc)), icon=":material/link_off:")
    st.query_params.pop(name, None)


def query_id(name: str) -> int | None:
    """The id in URL parameter `name` (links.url_id); None when absent or malformed, and a
    malformed one gets a one-line notice, so the page shows its default view."""
    try:
        return links.url_id(st.query_params.get(name), name)
    except links.BadUrlParam as exc:
        _url_notice(exc, name)
        return None


def query_ids(name: str) -> list[int]:
    """The ids in URL parameter `name` (links.url_ids, `?runs=3,5`); [] when absent or
    malformed, with a one-line notice for a malformed one."""
    try:
        return links.url_ids(st.query_params.get(name), name)
    except links.BadUrlParam as exc:
        _url_notice(exc, name)
        return []
