"""Cached access to the read models for the pages.

Queries live in `mirada.queries.dashboard` (tested without Streamlit); this module only
caches them: `st.cache_resource` for the engine, `st.cache_data(ttl=...)` for query results,
keyed by the database URL so pointing MIRADA_HOME elsewhere never serves stale results.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from mirada import projections
from mirada.config import get_settings
from mirada.db import get_engine
from mirada.queries import dashboard as q

RESULTS_TTL = 300  # finished runs do not change
LIVE_TTL = 2  # run status and progress


def db_url() -> str:
    return get_settings().database_url


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return get_engine(url)


def ensure_database() -> None:
    """Open (and migrate) the database once per URL; stop the page with advice if it fails."""
    try:
        _engine(db_url())
    except Exception as exc:  # any connection/migration failure: tell the user, not a traceback
        st.error(
            f"Cannot open the database at `{db_url()}`: {type(exc).__name__}: {exc}\n\n"
            "Check MIRADA_HOME / MIRADA_DATABASE_URL, or run `mirada datasets` to initialise it."
        )
        st.stop()


@st.cache_data(ttl=RESULTS_TTL, show_spinner=False)
def _query(url: str, name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(q, name)(*args, **kwargs)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def _live(url: str, name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(q, name)(*args, **kwargs)


def query(name: str, *args: Any, **kwargs: Any) -> Any:
    """A cached call of `mirada.queries.dashboard.<name>(*args, **kwargs)`."""
    return _query(db_url(), name, *args, **kwargs)


def live(name: str, *args: Any, **kwargs: Any) -> Any:
    """Like `query`, with a short TTL for run status."""
    return _live(db_url(), name, *args, **kwargs)


@st.cache_data(ttl=RESULTS_TTL, show_spinner="Projecting embeddings…")
def _projection(
    url: str, run_id: int, method: str, kind: str
) -> tuple[pd.DataFrame, dict[str, int | bool]]:
    return projections.projection_frame(run_id, method, kind)


def projection(run_id: int, method: str, kind: str) -> tuple[pd.DataFrame, dict[str, int | bool]]:
    return _projection(db_url(), run_id, method, kind)


def projection_status(run_id: int, method: str, kind: str) -> dict[str, int | bool]:
    """Uncached (two small reads): is the projection stored, or cheap enough to compute now?"""
    return projections.projection_status(run_id, method, kind)


def invalidate() -> None:
    """Forget cached query results (after a write: enqueue, cancel, import, delete)."""
    _query.clear()
    _live.clear()
    _projection.clear()


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def json_bytes(df: pd.DataFrame) -> bytes:
    return df.to_json(orient="records", indent=2, default_handler=str).encode("utf-8")


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


def fmt_value(value: float | None, kind: str = "share") -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value * 100:.1f}%" if kind == "share" else f"{value:.3f}"


def fmt_ci(low: float | None, high: float | None, kind: str = "share") -> str:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    if kind == "share":
        return f"95% CI [{low * 100:.1f}, {high * 100:.1f}]"
    return f"95% CI [{low:.3f}, {high:.3f}]"


def pick_finished_run(
    task: str, label: str, key: str, empty_hint: str, *, param: str = "run"
) -> tuple[int, dict[str, Any]]:
    """A picker over the finished runs of `task` (newest first, honours ?run=ID in the URL).

    Stops the page with `empty_hint` when there is none. Returns (run id, run_info)."""
    runs = query("finished_runs", task=task)
    if runs.empty:
        st.info(empty_hint)
        st.stop()
    ids = runs["id"].astype(int).tolist()
    labels = dict(zip(ids, runs["label"], strict=True))
    wanted = st.query_params.get(param)
    index = 0
    if wanted is not None and wanted.isdigit() and int(wanted) in ids:
        index = ids.index(int(wanted))
    chosen = st.selectbox(label, ids, index=index, format_func=lambda i: labels[i], key=key)
    if chosen is None:
        st.stop()
    st.query_params[param] = str(chosen)
    return int(chosen), query("run_info", chosen)
