"""The main journey on the pages (issue 23 §1): import, then queue runs on the new dataset,
follow them in the Runs table, then read the hardest (wrong) images of a finished run."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
from dashboard_seed import Seeded
from streamlit.testing.v1 import AppTest
from test_pages import open_page, texts

from mirada.domain import Task
from mirada.metrics.formatting import MISSING
from mirada.text_safety import markdown_text


def _shapes_zip(tmp_path: Path) -> bytes:
    from mirada.demo.synthetic import write_demo_dataset

    src = write_demo_dataset(tmp_path / "shapes", split="demo", n=6)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"shapes/{f.name}")
    return buffer.getvalue()


def _submit(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_an_import_previews_the_new_dataset_and_says_what_next(
    seeded_copy: Seeded, tmp_path: Path
) -> None:
    at = open_page("datasets")
    at.file_uploader(key="datasets_upload_0").set_value(
        ("shapes.zip", _shapes_zip(tmp_path), "application/zip")
    )
    at.text_input(key="datasets_name").input("my shapes")
    _submit(at, "Import")
    from mirada.queries.datasets import dataset_summaries

    summaries = dataset_summaries()
    new_id = int(summaries.loc[summaries["name"] == "my shapes", "id"].iloc[0])
    assert new_id != seeded_copy.dataset_id
    (done,) = [s.value for s in at.success if "Imported" in s.value]
    assert "**Next:** queue runs on it" in done and "mirada worker" in done
    assert f"mirada queue --dataset {new_id} --model ID --task match" in done
    for table in at.dataframe:  # no cell a grid would draw as "None"
        assert not table.value.isna().any().any()
    # the preview shows the new dataset, with the way on to the Runs page's form
    assert at.selectbox(key="datasets_selected").value == new_id
    assert at.metric[0].value == "6"
    (link,) = [p for p in at.get("page_link") if p.proto.label == "Queue runs on this dataset"]
    assert (link.proto.page, link.proto.query_string) == ("runs", f"dataset={new_id}")
    # the uploader is a fresh, empty one: the zip is not offered for a second import
    keys = [u.key for u in at.file_uploader]
    assert keys == ["datasets_upload_1"] and not at.file_uploader[0].value
    # that link opens the queue form unfolded, on the new dataset
    runs = open_page("runs", dataset=new_id)
    assert runs.selectbox(key="runs_dataset").value == new_id
    assert next(e for e in runs.expander if e.label == "Queue runs").proto.expanded


def test_a_failed_import_keeps_the_files_and_shows_no_next_step(
    seeded_env: Seeded, tmp_path: Path
) -> None:
    at = open_page("datasets")
    at.file_uploader(key="datasets_upload_0").set_value(
        ("captions.csv", b"filename,caption\nmissing.png,no such image\n", "text/csv")
    )
    _submit(at, "Import")
    assert any("Nothing was imported" in e.value for e in at.error)
    assert not at.success and [u.key for u in at.file_uploader] == ["datasets_upload_0"]


def _options(at: AppTest, task: str) -> list[str]:
    return list(at.multiselect(key=f"runs_models_{task}").options)


def test_the_queue_form_offers_only_models_that_can_run_the_task(seeded_env: Seeded) -> None:
    from mirada.queries.runs import task_refusal
    from mirada.vlm.catalogue import list_catalogue

    at = open_page("runs")
    offered: dict[str, set[str]] = {}
    for task in Task:
        at.segmented_control(key="runs_task").set_value(task.value).run()
        assert not at.exception
        assert [b.label for b in at.button if b.label.startswith("Queue ")] == [
            f"Queue {task} runs"
        ]
        # options are labelled "title — id (where the weights are)"
        offered[task] = {
            e.id for e in list_catalogue() if any(f" — {e.id} (" in o for o in _options(at, task))
        }
        assert len(offered[task]) == len(_options(at, task))
        for entry in list_catalogue():
            assert (entry.id in offered[task]) == (task_refusal(entry.id, task) is None)
    catalogue = {e.id: e for e in list_catalogue()}
    assert "blip-caption:mirada/demo-blip" not in offered[Task.match]
    assert "hf-clip:mirada/demo-clip" not in offered[Task.caption]
    presets = {i for i, e in catalogue.items() if e.latency_only}
    assert presets and presets <= offered[Task.benchmark]  # random weights: benchmark only
    assert not presets & (offered[Task.match] | offered[Task.caption])
    # a typed model that cannot run the task is refused in plain words, nothing queued
    at.segmented_control(key="runs_task").set_value("caption").run()
    at.text_input(key="runs_typed_models").input("hf-clip:mirada/demo-clip, hf-clip:random:x")
    _submit(at, "Queue caption runs")
    (refused,) = [w.value.replace("\\", "") for w in at.warning if "Not queued" in w.value]
    first, second = refused.split("\n- ")[1:]  # Markdown-escaped: compared without escapes
    assert first == (
        "hf-clip:mirada/demo-clip cannot caption images: that takes a model that can write "
        "captions, and this one can only embed images and captions. It can run: match, "
        "benchmark."
    )
    assert second.startswith("invalid model id 'hf-clip:random:x'")
    # the id parser's list of valid forms, once, as plain text
    assert [c.value.splitlines()[0] for c in at.code] == ["valid model ids:"]
    assert not at.success


def test_queueing_links_each_new_run_and_inspects_the_first(seeded_copy: Seeded) -> None:
    at = open_page("runs")
    at.segmented_control(key="runs_task").set_value("benchmark").run()
    chosen = ["hf-clip:mirada/demo-clip-random", "hf-clip:random:clip-vit-b-32"]
    for model in chosen:
        at.multiselect(key="runs_models_benchmark").select(model)
    _submit(at, "Queue benchmark runs")
    (queued,) = [s.value for s in at.success]
    assert queued.startswith("Queued 2 run(s)")
    runs = [p for p in at.get("page_link") if p.proto.label.startswith("#")]
    ids = [int(p.proto.label.split()[0].lstrip("#")) for p in runs]
    assert [p.proto.label for p in runs] == [  # the model id Markdown-escaped: shown as typed
        f"#{i} {markdown_text(m)} · benchmark" for i, m in zip(ids, chosen, strict=True)
    ]
    assert [(p.proto.page, p.proto.query_string) for p in runs] == [
        ("runs", f"run={i}") for i in ids
    ]
    # the inspector moved to the first new run, and the URL says so
    assert at.selectbox(key="runs_action_run").value == ids[0]
    assert at.query_params["run"] == str(ids[0])
    # a confirmation link opens that run in the inspector
    linked = open_page("runs", run=ids[1])
    assert linked.selectbox(key="runs_action_run").value == ids[1]
    # picking another run keeps the URL in step, so a reload shows the same run
    linked.selectbox(key="runs_action_run").select(ids[0]).run()
    assert linked.query_params["run"] == str(ids[0])
    assert linked.selectbox(key="runs_action_run").value == ids[0]


def _column_config(at: AppTest) -> dict[str, dict]:
    columns = json.loads(at.dataframe[0].proto.columns)
    return {str(k): v for k, v in columns.items()}


def test_the_runs_table_reads_whole(seeded_copy: Seeded) -> None:
    from mirada.queue import claim_next, register_worker

    worker, _ = register_worker("t", "host", 1, [], ["cpu"], None)
    running = claim_next(worker, ["cpu"], [])  # the seed's queued run: no phase reported yet
    assert running is not None
    at = open_page("runs")
    table = at.dataframe[0].value
    assert list(table.columns)[:7] == [
        "open", "id", "status", "progress", "task", "model", "duration"
    ]  # fmt: skip
    # no cell reads None or nan: unset text is "–", every run has a link
    for column in table.columns:
        assert not table[column].isna().any(), column
        assert not table[column].astype(str).isin(["None", "nan", "NaN", ""]).any(), column
    by_id = table.set_index("id")
    assert by_id.loc[running.id, "status"] == "running"
    assert by_id.loc[running.id, ["phase", "time_left"]].tolist() == [MISSING, MISSING]
    assert by_id.loc[running.id, "duration"].endswith(" s")  # so far
    failed = seeded_copy.runs["failed"]
    assert by_id.loc[failed, "open"] == f"runs?run={failed}"  # its error, in the inspector
    clip = seeded_copy.runs["clip"]
    assert by_id.loc[clip, "open"] == f"results?run={clip}"
    assert by_id.loc[clip, "duration"] != MISSING  # a finished run shows how long it took
    # a full bar is not drawn in the theme's primary colour (red); phases are not cut
    config = _column_config(at)
    progress = next(v for v in config.values() if v.get("label") == "progress")
    assert progress["type_config"]["color"] not in (None, "red", "primary")
    phase = next(v for v in config.values() if v.get("label") == "phase")
    from mirada.domain import Phase

    assert phase["width"] >= 7 * max(len(p.value) for p in Phase)


def test_hardest_images_shows_only_wrong_ones_and_counts_them(seeded_env: Seeded) -> None:
    from mirada.queries.results import run_items

    run_id = seeded_env.runs["clip_random"]
    items = run_items(run_id)
    wrong = items[items["correct"].eq(False)]
    assert 24 < len(wrong) < len(items)  # the seed has both kinds, and more than a gallery
    at = open_page("results", run=run_id, tab="Hardest images")
    shown = texts(at)
    assert f"**{len(wrong)} image(s) have a wrong top-1 caption**; the 24 hardest" in shown
    # tiles fill a 6-column grid row by row; the element tree lists it column by column
    in_columns = [
        int(c.value.rsplit(" · rank ", 1)[1]) for c in at.caption if " · rank " in c.value
    ]
    assert len(in_columns) == 24 == len(at.get("image"))
    ranks = [in_columns[(i % 6) * 4 + i // 6] for i in range(24)]
    assert min(ranks) > 1 and ranks == sorted(ranks, reverse=True)
    assert ranks[0] == wrong["rank"].max()
    # the category filter counts that category's wrong images
    category = str(wrong["category"].iloc[0])
    at.selectbox(key="results_hardest_cat").select(category).run()
    in_cat = wrong[wrong["category"] == category]
    assert f"**{len(in_cat)} image(s) in {category} have a wrong top-1 caption**" in texts(at)


def test_hardest_images_says_when_none_is_wrong(seeded_copy: Seeded) -> None:
    from sqlalchemy import update

    from mirada.db import write_session
    from mirada.db.models import ItemResult
    from mirada.queries.results import run_items

    run_id = seeded_copy.runs["clip"]
    items = run_items(run_id)
    category = str(items["category"].iloc[0])
    ids = [int(i) for i in items.loc[items["category"] == category, "item_id"]]
    with write_session() as s:  # as if the model got every image of that category right
        s.execute(
            update(ItemResult)
            .where(ItemResult.run_id == run_id, ItemResult.item_id.in_(ids))
            .values(correct=True, rank=1)
        )
    at = open_page("results", run=run_id, tab="Hardest images")
    at.selectbox(key="results_hardest_cat").select(category).run()
    assert not at.exception
    assert f"No wrong images in {category}" in texts(at)
    assert not at.get("image")


def test_view_scrolls_the_item_into_sight_and_its_link_keeps_the_tab(
    seeded_env: Seeded,
) -> None:
    run_id = seeded_env.runs["clip_random"]
    at = open_page("results", run=run_id, tab="Hardest images")
    assert not at.get("html")
    view = next(b for b in at.button if b.label == "View")
    view.click().run()
    assert not at.exception
    item = at.query_params["item"]
    (script,) = [h.proto.body for h in at.get("html")]
    assert "scrollIntoView" in script and ".st-key-item_view" in script
    assert at.subheader[0].value.startswith("Image: ")
    share = f"results?run={run_id}&item={item}&tab=Hardest%20images"
    assert any(share in c.value for c in at.caption), texts(at)
    at.run()  # any later rerun leaves the page where the reader scrolled it
    assert not at.get("html") and at.subheader[0].value.startswith("Image: ")


def test_queries_hardest_items_are_the_wrong_ones(seeded_env: Seeded) -> None:
    from mirada.queries.results import hardest_items, run_items

    run_id = seeded_env.runs["clip_random"]
    items = run_items(run_id)
    every = hardest_items(run_id, limit=None)
    assert len(every) == int(items["correct"].eq(False).sum())
    assert every["correct"].eq(False).all()
    ranks = pd.to_numeric(every["rank"])
    assert ranks.is_monotonic_decreasing and (ranks > 1).all()
    assert hardest_items(run_id, limit=5).equals(every.head(5))
