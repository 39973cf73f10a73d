"""Mirada dashboard entrypoint: only routes (`streamlit run dashboard/app.py`)."""

from __future__ import annotations

import streamlit as st

# An emoji favicon is drawn in the browser (a data: URL); a ":material/...:" one is fetched
# from fonts.gstatic.com, and the dashboard makes no request outside the machine.
st.set_page_config(page_title="Mirada", page_icon="👁️", layout="wide")

st.navigation(
    {
        "Data": [
            st.Page(
                "app_pages/datasets.py", title="Datasets", icon=":material/folder:", default=True
            ),
            st.Page(
                "app_pages/runs.py", title="Runs", icon=":material/play_circle:", url_path="runs"
            ),
        ],
        "Results": [
            st.Page(
                "app_pages/results.py",
                title="Results",
                icon=":material/bar_chart:",
                url_path="results",
            ),
            st.Page(
                "app_pages/compare.py",
                title="Compare",
                icon=":material/compare:",
                url_path="compare",
            ),
            st.Page(
                "app_pages/captions.py",
                title="Captions",
                icon=":material/subtitles:",
                url_path="captions",
            ),
            st.Page(
                "app_pages/hardware.py",
                title="Hardware",
                icon=":material/speed:",
                url_path="hardware",
            ),
        ],
    }
).run()
