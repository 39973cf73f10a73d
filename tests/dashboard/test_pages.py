"""Every dashboard page under AppTest, on the seeded database and on an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_seed import Seeded, second_caption_run
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = {
    "datasets": "app_pages/datasets.py",
    "runs": "app_pages/runs.py",
    "results": "app_pages/results.py",
    "compare": "app_pages/compare.py",
    "captions": "app_pages/captions.py",
    "hardware": "app_pages/hardware.py",
}
TITLES = {
    "datasets": "Datasets",
    "runs": "Runs",
    "results": "Results",
    "compare": "Compare",
    "captions": "Captions",
    "hardware": "Hardware",
}
EMPTY_HINTS = {
    "datasets": "mirada import PATH",
    "runs": "No datasets yet",
    "results": "No finished match runs yet",
    "compare": "Nothing to compare yet",
    "captions": "No finished caption runs yet",
    "hardware": "No benchmark results yet",
}


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGES[name])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [TITLES[name]]
    return at


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def texts(at: AppTest) -> str:
    parts = [*at.info, *at.warning, *at.error, *at.success, *at.markdown, *at.caption]
    return "\n".join(str(p.value) for p in parts)


@pytest.mark.parametrize("name", list(PAGES))
def test_empty_database_pages(empty_env: Path, name: str) -> None:
    at = open_page(name)
    assert EMPTY_HINTS[name] in texts(at)


def test_datasets_page(seeded_env: Seeded) -> None:
    at = open_page("datasets")
    assert len(at.dataframe) >= 1 and charts(at) == 1
    assert [m.label for m in at.metric] == ["Images", "Captions", "Categories"]
    assert at.metric[0].value == "120"
    # one gallery page of thumbnails with file name and category (Markdown-escaped user text)
    tiles = [m.value for m in at.markdown if m.value.startswith("**demo\\_")]
    assert len(tiles) == 24
    at.selectbox(key="datasets_gallery_cat_1").select("star").run()
    assert not at.exception
    tiles = [m.value for m in at.markdown if m.value.startswith("**demo\\_")]
    assert tiles and all(m.endswith("** · star") for m in tiles)
    labels = [b.label for b in at.get("download_button")]
    assert "Download CSV" in labels and "Download JSON" in labels


def test_runs_page(seeded_env: Seeded) -> None:
    at = open_page("runs")
    assert any("No worker is running" in w.value for w in at.warning)
    assert "mirada worker" in texts(at)
    assert len(at.dataframe) >= 1
    # a failed run shows its error and full traceback
    at.selectbox(key="runs_action_run").select(seeded_env.runs["failed"]).run()
    assert any("CUDA out of memory" in e.value for e in at.error)
    assert any("Traceback" in c.value for c in at.code)
    # queueing a caption task with a CLIP model is refused with a readable message
    at.multiselect(key="runs_models").select("hf-clip:mirada/demo-clip")
    at.multiselect(key="runs_tasks").set_value(["caption"])
    at.button[0].click()  # the form's submit button
    at.run()
    assert not at.exception
    assert any("cannot run task 'caption'" in e.value for e in at.error)


def test_runs_page_queues_and_cancels(seeded_copy: Seeded) -> None:
    at = open_page("runs")
    at.multiselect(key="runs_models").select("hf-clip:mirada/demo-clip-random")
    at.multiselect(key="runs_tasks").set_value(["benchmark"])
    at.button[0].click()
    at.run()
    assert any(s.value.startswith("Queued: #") for s in at.success)
    at = open_page("runs")
    run_id = at.selectbox(key="runs_action_run").options[0]
    at.selectbox(key="runs_action_run").select_index(0).run()
    at.button(key="runs_cancel").click().run()
    assert not at.exception
    from mirada.queue import run_status

    assert run_status(int(str(run_id).split()[0].lstrip("#"))) == "cancelled"


def test_results_page(seeded_copy: Seeded) -> None:
    at = open_page("results")  # stores the PCA projection it draws: a private copy
    labels = [m.label for m in at.metric]
    assert "Image→text R@1" in labels and "MRR" in labels
    # category bars, heatmap, projection, confusion matrix
    assert charts(at) == 4
    assert len(at.tabs) == 5
    at.selectbox(key="results_run").select(seeded_copy.runs["blip"]).run()
    assert not at.exception
    assert "Re-ranked R@1 (ITM)" in [m.label for m in at.metric]
    assert any("Re-ranked" in m.value for m in at.markdown)
    assert any(m.value.startswith("**True captions") for m in at.markdown)


def test_results_page_blocks_for_large_runs(
    seeded_copy: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.dashboard import data
    from mirada.queries import similarity

    original = similarity.similarity_view
    monkeypatch.setattr(
        data,
        "similarity_view",
        data.cached(data.RESULTS_TTL)(lambda rid, **kw: original(rid, max_images=50)),
    )
    at = open_page("results")
    assert any("too large to draw" in c.value for c in at.caption)
    assert charts(at) == 5  # block heatmap + slice replace the full heatmap


def test_compare_page(seeded_env: Seeded) -> None:
    at = open_page("compare")
    assert charts(at) == 2
    sentences = [m.value for m in at.markdown if " vs " in m.value]
    assert any("95% CI" in s and "p = " in s for s in sentences)
    assert len(at.dataframe) == 2  # metrics side by side + disagreements


def test_compare_page_reports_a_refused_comparison(seeded_copy: Seeded) -> None:
    other = second_caption_run(seeded_copy, drop_cider_of_first=True)
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGES["compare"])
    at.run()
    at.segmented_control(key="compare_task").set_value("caption").run()
    at.multiselect(key="compare_runs").set_value([seeded_copy.runs["caption"], other]).run()
    assert not at.exception, [e.value for e in at.exception]
    # the aligner's message, Markdown-escaped: renders as "per-image CIDEr scores are missing"
    refused = r"per\-image CIDEr scores are missing"
    assert any(refused in w.value for w in at.warning), texts(at)
    assert any("**BLEU-4** — " in m.value and "p = " in m.value for m in at.markdown)


def test_captions_page(seeded_env: Seeded) -> None:
    at = open_page("captions")
    assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"} <= {m.label for m in at.metric}
    assert any("IDF" in i.value for i in at.info)
    assert charts(at) == 1 and len(at.dataframe) == 2
    at.toggle(key="captions_only_degenerate").set_value(True).run()
    assert not at.exception


def test_hardware_page(seeded_env: Seeded) -> None:
    at = open_page("hardware")
    assert charts(at) == 3  # latency, throughput, memory
    at.multiselect(key="hardware_hosts").set_value(["gpu-box"]).run()
    assert not at.exception and charts(at) == 3
    assert len(at.dataframe) >= 2
