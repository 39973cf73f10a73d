"""Every dashboard page under AppTest, on the seeded database and on an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_seed import Seeded, second_caption_run
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "dashboard/mirada/dashboard/app.py")
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


def open_page(name: str, **params: object) -> AppTest:
    """Open a page as its URL would, query parameters (?run=2&item=17) included."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGES[name])
    for key, value in params.items():
        at.query_params[key] = str(value)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [TITLES[name]]
    return at


def submit_form(at: AppTest) -> None:
    next(b for b in at.button if b.label.startswith("Queue ")).click()
    at.run()


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


def test_delete_of_a_dataset_already_gone_shows_the_error(seeded_copy: Seeded) -> None:
    """Two tabs: the dataset is deleted in one; confirming in the other says so, no traceback."""
    from mirada.datasets import delete_dataset
    from mirada.queries.datasets import dataset_summaries

    at = open_page("datasets")
    (dataset_id,) = dataset_summaries()["id"].tolist()
    name = str(dataset_summaries()["name"].iloc[0])
    at.text_input(key=f"datasets_delete_confirm_{dataset_id}").input(name).run()
    delete_dataset(dataset_id)
    at.button(key=f"datasets_delete_{dataset_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"no dataset with id {dataset_id}" in e.value for e in at.error), texts(at)


def test_runs_page(seeded_env: Seeded) -> None:
    at = open_page("runs")
    assert any("No worker is running" in w.value for w in at.warning)
    assert "mirada worker" in texts(at)
    assert len(at.dataframe) >= 1
    # failed runs stand out: a banner names them, the status cell is coloured
    assert any(f"#{seeded_env.runs['failed']}" in e.value for e in at.error if "failed" in e.value)
    table = at.dataframe[0].value
    assert table.columns[0] == "open"  # the link first (test_journey: the whole table)
    by_id = table.set_index("id")
    assert (
        by_id.loc[seeded_env.runs["caption"], "open"]
        == f"captions?run={seeded_env.runs['caption']}"
    )
    assert by_id.loc[seeded_env.runs["failed"], "open"] == f"runs?run={seeded_env.runs['failed']}"
    # the queue form sits in an expander below the live queue and says where weights are
    assert [e.label for e in at.expander][-1] == "Queue runs"
    assert "have their weights on this machine" in texts(at)
    # a failed run (a bug, not a missing file) shows its error and full traceback, unfolded
    at.selectbox(key="runs_action_run").select(seeded_env.runs["failed"]).run()
    assert any("CUDA out of memory" in e.value for e in at.error)
    assert any("Traceback" in c.value for c in at.code)
    # the caption task offers captioners only (test_journey: every task, and typed ids)
    at.segmented_control(key="runs_task").set_value("caption").run()
    assert not at.exception
    assert not any("hf-clip:" in o for o in at.multiselect(key="runs_models_caption").options)


def test_runs_page_queues_and_cancels(seeded_copy: Seeded) -> None:
    at = open_page("runs")
    at.segmented_control(key="runs_task").set_value("benchmark").run()
    at.multiselect(key="runs_models_benchmark").select("hf-clip:mirada/demo-clip-random")
    submit_form(at)
    assert any(s.value.startswith("Queued 1 run(s)") for s in at.success)
    at = open_page("runs")
    run_id = at.selectbox(key="runs_action_run").options[0]
    at.selectbox(key="runs_action_run").select_index(0).run()
    at.button(key="runs_cancel").click().run()
    assert not at.exception
    from mirada.queue import run_status

    assert run_status(int(str(run_id).split()[0].lstrip("#"))) == "cancelled"


@pytest.mark.parametrize(
    ("key", "page", "label"),
    [
        ("clip", "results", "Open results"),
        ("caption", "captions", "Open captions"),
        ("bench_cpu", "hardware", "Open hardware"),
    ],
)
def test_open_results_goes_to_the_page_of_the_task(
    seeded_env: Seeded, key: str, page: str, label: str
) -> None:
    at = open_page("runs")
    run_id = seeded_env.runs[key]
    at.selectbox(key="runs_action_run").select(run_id).run()
    (link,) = at.get("page_link")
    assert (link.proto.label, link.proto.page) == (label, page)
    assert link.proto.query_string == f"run={run_id}"


def test_expected_failure_shows_its_message_and_folds_the_traceback(seeded_copy: Seeded) -> None:
    from mirada.queue import claim_next, enqueue, fail_run, register_worker

    message = "model hf-clip:x/y is not available offline: no weights in the cache"
    run_id = enqueue(seeded_copy.dataset_id, "hf-clip:mirada/demo-clip", "benchmark")
    worker, _ = register_worker("t", "host", 1, [], ["cpu"], None)
    while (claimed := claim_next(worker, ["cpu"], [])) is not None and claimed.id != run_id:
        pass
    fail_run(run_id, worker, message, f"Traceback (most recent call last):\n"
             f"mirada.errors.ModelUnavailableError: {message}\n")  # fmt: skip
    at = open_page("runs")
    at.selectbox(key="runs_action_run").select(run_id).run()
    assert any(
        "Cannot run yet" in w.value and "not available offline" in w.value for w in at.warning
    )
    assert not any("not available offline" in e.value for e in at.error)
    (fold,) = [e for e in at.expander if e.label == "Traceback"]
    assert not fold.proto.expanded and "ModelUnavailableError" in fold.code[0].value


def test_results_page(seeded_copy: Seeded) -> None:
    at = open_page("results")  # stores the PCA projection it draws: a private copy
    labels = [m.label for m in at.metric]
    assert "Image→text R@1" in labels and "MRR" in labels
    assert len(at.tabs) == 7
    # the tab is in the URL; only the open tab is drawn
    for tab, n in [("Per category", 1), ("Similarity heatmap", 1), ("Embeddings", 1),
                   ("Zero-shot", 1), ("Probe", 0), ("Drill-down", 0),
                   ("Hardest images", 0)]:  # fmt: skip
        at = open_page("results", tab=tab)
        assert charts(at) == n, tab
    assert at.query_params["tab"] == "Hardest images"
    assert 0 < len(at.get("image")) <= 24  # the wrong images, hardest first (test_journey)
    # the heatmap's cells and the projection's points open their image
    at = open_page("results", tab="Similarity heatmap", run=seeded_copy.runs["clip"])
    spec = at.get("vega_lite_chart")[0].proto.spec
    assert f"results?run={seeded_copy.runs['clip']}&item=" in spec and '"href"' in spec
    assert '"title": "file"' in spec and '"title": "image"' not in spec
    at = open_page("results", tab="Drill-down")
    table = at.dataframe[0].value
    assert table["thumbnail"].str.startswith("data:image/jpeg;base64,").all()
    run = at.query_params["run"]
    assert (table["view"] == [f"results?run={run}&item={i}" for i in table["item_id"]]).all()
    assert "top1_caption" in table.columns and "top1_caption_id" not in table.columns
    at = open_page("results", run=seeded_copy.runs["clip"], item=5)
    at.selectbox(key="results_run").select(seeded_copy.runs["blip"]).run()
    assert not at.exception
    assert "Re-ranked R@1 (ITM)" in [m.label for m in at.metric]
    assert "item" not in at.query_params  # another run: its image is not this one's
    at = open_page("results", run=seeded_copy.runs["blip"], item=5)
    assert any(m.value.startswith("**Re-ranked by the ITM head") for m in at.markdown)
    assert any(m.value == "**Reference captions**" for m in at.markdown)


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
    at = open_page("results", tab="Similarity heatmap")
    assert any("too large to draw" in c.value for c in at.caption)
    assert charts(at) == 2  # block heatmap + slice replace the full heatmap
    assert "&item=" in at.get("vega_lite_chart")[1].proto.spec  # slice cells open their image


def test_item_view_of_a_match_run(seeded_env: Seeded) -> None:
    from mirada.queries.common import caption_frame
    from mirada.queries.results import run_items

    run_id = seeded_env.runs["clip_random"]
    worst = run_items(run_id).iloc[0]  # wrong top-1: its own caption ranked low
    item_id = int(worst["item_id"])
    at = open_page("results", run=run_id, item=item_id)
    assert at.query_params["run"] == str(run_id) and at.query_params["item"] == str(item_id)
    assert at.subheader[0].value == "Image: " + worst["filename"].replace("_", "\\_").replace(
        ".", "\\."
    )
    assert len(at.get("image")) == 1  # the image, large
    shown = texts(at)
    assert f"**Category:** {worst['category']}" in shown
    assert f"**Top-1: wrong** · first correct caption at rank **{worst['rank']}**" in shown
    assert "**Zero-shot class:**" in shown
    refs = caption_frame(seeded_env.dataset_id)
    for ref in refs.loc[refs["item_id"] == item_id, "text"]:
        assert f"- {ref}" in shown
    top = at.dataframe[0].value
    assert list(top["rank"]) == [1, 2, 3, 4, 5] and top["score"].is_monotonic_decreasing
    assert not top["own caption"].iloc[0]  # the top-1 caption is not one of its own
    # closing removes the item from the URL
    at.button(key="item_close").click().run()
    assert "item" not in at.query_params and not at.exception
    assert not any(s.value.startswith("Image: ") for s in at.subheader)


def test_item_view_of_a_caption_run(seeded_env: Seeded) -> None:
    from mirada.queries.captions import caption_table

    run_id = seeded_env.runs["caption"]
    table = caption_table(run_id)
    row = table[table["degenerate"]].iloc[0]
    at = open_page("captions", run=run_id, item=int(row["item_id"]))
    assert at.subheader[0].value.startswith("Image: ")
    assert [t.value for t in at.text] == [row["generated"]]  # plain text, not Markdown
    scores = at.dataframe[0].value.set_index("key")["value"]
    assert scores["CIDEr"] == pytest.approx(row["CIDEr"])
    assert any(w.value.startswith("**Degenerate caption:**") for w in at.warning)
    # the gallery (worst CIDEr first) and the table link to the same view
    assert len(at.get("image")) == 1 + 18
    linked = at.dataframe[-1].value
    assert linked["view"].iloc[0] == f"captions?run={run_id}&item={linked['item_id'].iloc[0]}"


def test_compare_reads_the_runs_in_the_url(seeded_env: Seeded) -> None:
    a, b = seeded_env.runs["clip_random"], seeded_env.runs["clip"]
    at = open_page("compare", runs=f"{a},{b}")
    assert at.multiselect(key="compare_runs").value == [a, b]
    assert at.query_params["runs"] == f"{a},{b}"
    assert [p.proto.query_string for p in at.get("page_link")] == [f"run={a}", f"run={b}"]
    dis = at.dataframe[-1].value
    assert dis["thumbnail"].str.startswith("data:image/").all()
    assert dis["view"].iloc[0] == f"results?run={a}&item={dis['item_id'].iloc[0]}"


def test_one_number_reads_the_same_on_results_and_compare(seeded_env: Seeded) -> None:
    """The Results card and the Compare table show a recall the same way (format_metric)."""
    a, b = seeded_env.runs["clip_random"], seeded_env.runs["clip"]
    card = next(m for m in open_page("results", run=b).metric if m.label == "Image→text R@1")
    assert card.value.endswith("%")
    table = open_page("compare", runs=f"{a},{b}").dataframe[0].value
    (row,) = table[table["key"] == "i2t_recall@1"].to_dict("records")
    cell = next(v for k, v in row.items() if str(k).startswith(f"#{b} "))  # run_label
    assert cell.startswith(card.value + " [")  # "96.7% [91.7, 98.7]"


def test_results_links_to_compare(seeded_env: Seeded) -> None:
    at = open_page("results", run=seeded_env.runs["clip"])
    (link,) = at.get("page_link")
    assert link.proto.page == "compare"
    assert link.proto.query_string.startswith(f"runs={seeded_env.runs['clip']}%2C")


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
    assert charts(at) == 1 and len(at.dataframe) == 1 and len(at.table) == 1  # corpus: a table
    at.toggle(key="captions_only_degenerate").set_value(True).run()
    assert not at.exception


def test_hardware_page(seeded_env: Seeded) -> None:
    at = open_page("hardware")
    assert charts(at) == 3  # latency (log axis), throughput, speed-up against accuracy
    assert [h.value for h in at.subheader] == ["What should I use?", "Details", "Hardware profiles"]
    at.multiselect(key="hardware_hosts").set_value(["gpu-box"]).run()
    assert not at.exception and charts(at) == 3
    assert len(at.dataframe) >= 3
