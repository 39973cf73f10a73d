"""The dashboard's read models, tested without Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from dashboard_seed import Seeded, second_caption_run

from mirada import projections
from mirada.queries import (
    captions,
    common,
    compare,
    datasets,
    hardware,
    images,
    results,
    runs,
    similarity,
)


def test_dataset_summaries_and_gallery(seeded_env: Seeded) -> None:
    df = datasets.dataset_summaries()
    row = df.iloc[0]
    assert (row["images"], row["captions"], row["categories"]) == (120, 240, 4)
    cats = datasets.dataset_categories(seeded_env.dataset_id)
    assert cats == sorted(cats) and len(cats) == 4
    gallery = datasets.dataset_gallery(seeded_env.dataset_id, category=cats[0], limit=5)
    assert len(gallery) == 5 and set(gallery["category"]) == {cats[0]}
    assert all(len(c) == 2 for c in gallery["captions"])
    counts = datasets.category_counts(seeded_env.dataset_id)
    assert counts["images"].sum() == 120 and counts["captions"].sum() == 240


def test_runs_and_worker_notice(seeded_env: Seeded) -> None:
    frame = runs.runs_frame()
    assert set(frame["status"]) == {"queued", "failed", "succeeded"}
    assert frame.loc[frame["status"] == "succeeded", "progress"].eq(1.0).all()
    notice = runs.worker_notice(60)
    assert notice is not None and "mirada worker" in notice
    failed = common.run_info(seeded_env.runs["failed"])
    assert failed is not None and failed.traceback is not None
    assert "Traceback" in failed.traceback


def test_headline_metrics_with_cis(seeded_env: Seeded) -> None:
    head = results.headline_metrics(seeded_env.runs["blip"])
    names = set(head["name"])
    assert {"i2t_recall@1", "t2i_recall@5", "mrr", "category_accuracy"} <= names
    assert "i2t_recall@1_reranked" in names and "zeroshot_accuracy" in names
    r1 = head.set_index("name").loc["i2t_recall@1"]
    assert r1["ci_low"] <= r1["value"] <= r1["ci_high"]
    assert (r1["label"], r1["kind"]) == ("Image→text R@1", "proportion")
    assert "i2t_recall@1" in r1["help"]
    per = results.category_metrics(seeded_env.runs["clip"])
    assert len(per[per["metric"] == "i2t_recall@1"]) == 4


def test_run_items_worst_first(seeded_env: Seeded) -> None:
    items = results.run_items(seeded_env.runs["clip_random"])
    assert len(items) == 120
    correct = items["correct"].astype(bool).to_numpy()
    assert not correct.all() and correct.any()
    first_ok = int(np.argmax(correct))
    assert not correct[:first_ok].any() and correct[first_ok:].all()
    wrong_ranks = items["rank"].to_numpy()[:first_ok]
    assert (np.diff(wrong_ranks) <= 0).all()


def test_similarity_full_and_blocks(seeded_env: Seeded) -> None:
    rid = seeded_env.runs["clip"]
    full = similarity.similarity_view(rid)
    assert full.mode == "full" and full.cells is not None and full.image_bounds is not None
    assert len(full.cells) == 120 * 120  # 240 captions -> first caption per image
    assert full.image_bounds["end"].iloc[-1] == 120
    cats = full.cells.drop_duplicates("image")["image_category"].tolist()
    assert cats == sorted(cats)  # ordered by category
    blocks = similarity.similarity_view(rid, max_images=50)
    assert blocks.mode == "blocks" and blocks.blocks is not None and len(blocks.blocks) == 16
    # block mean == brute-force mean of the cells
    allcells = similarity.similarity_view(rid, max_cells=10**6).cells
    assert allcells is not None
    a = blocks.categories[0]
    brute = allcells[(allcells.image_category == a) & (allcells.caption_category == a)]
    block = blocks.blocks.query("image_category == @a and caption_category == @a")
    assert abs(brute["score"].mean() - block["mean_score"].iloc[0]) < 1e-4
    sl = similarity.similarity_slice(rid, a, a, max_images=10)
    assert sl["image"].nunique() == 10


def test_confusion_and_drilldown(seeded_env: Seeded) -> None:
    conf = results.zeroshot_confusion(seeded_env.runs["clip"])
    assert conf is not None and conf["count"].sum() == 120
    item = int(results.run_items(seeded_env.runs["blip"])["item_id"].iloc[0])
    d = results.item_drilldown(seeded_env.runs["blip"], item)
    assert d is not None and len(d.top) == 5 and len(d.true_captions) == 2
    assert d.reranked is not None and len(d.reranked) > 0
    assert d.top["score"].is_monotonic_decreasing
    assert d.top["own caption"].dtype == bool


def test_captions(seeded_env: Seeded) -> None:
    rid = seeded_env.runs["caption"]
    table = captions.caption_table(rid)
    assert len(table) == 120 and table["degenerate"].any()
    assert table["CIDEr"].notna().any()
    corpus = captions.caption_corpus(rid)
    assert list(corpus["metric"][:7]) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR",
                                          "ROUGE-L", "CIDEr"]  # fmt: skip
    meteor = corpus.set_index("metric").loc["METEOR"]
    assert meteor["value"] is not None or meteor["unavailable"]
    share = corpus.set_index("metric").loc["degenerate_share"]
    assert share["label"] == "Degenerate captions" and "degeneration" in share["implementation"]
    assert "IDF" in captions.caption_notes().cider


def test_compare(seeded_env: Seeded) -> None:
    ids = [seeded_env.runs["clip"], seeded_env.runs["clip_random"]]
    table = compare.compare_metrics(ids)
    assert set(table["run_id"]) == set(ids)
    r1 = table[table["metric"] == "i2t_recall@1"]
    assert set(r1["label"]) == {"Image→text R@1"}  # the Results page's name for it
    sig = compare.pairwise_significance(ids)
    assert {"i2t_recall@1", "category_accuracy"} <= set(sig["metric"])  # every headline one
    row = sig[sig["metric"] == "i2t_recall@1"].iloc[0]
    assert row["test"] == "mcnemar_exact" and "95% CI" in row["sentence"]
    assert row["ci_low"] <= row["difference"] <= row["ci_high"]
    assert (row["n"], row["only_a"], row["only_b"], row["problem"]) == (120, 0, 0, None)
    dis = compare.disagreements(ids)
    assert not dis.empty and {"filename", "category"} <= set(dis.columns)
    diffs = compare.compare_categories(ids, "i2t_recall@1")
    assert (diffs[diffs["run_id"] == ids[0]]["difference"] == 0).all()


def test_hardware(seeded_env: Seeded) -> None:
    runs = {r.run_id: r for r in hardware.benchmark_runs()}
    old = runs[seeded_env.runs["bench_cpu"]]  # timings only: one record rebuilt from them
    assert old.from_timings and old.host == "lab-cpu" and old.load_s == 3.2
    (record,) = old.records
    image = sorted(
        (b for b in record.batches if b.op == "image_encode"), key=lambda b: b.batch_size
    )
    assert [b.batch_size for b in image] == [1, 8]
    assert all(b.latency_p95_ms >= b.latency_p50_ms for b in image)
    gpu = runs[seeded_env.runs["bench_gpu"]]
    assert gpu.host == "gpu-box" and gpu.device == "cuda" and gpu.gpu == "NVIDIA A100 80GB"
    assert all(b.cuda_max_allocated_mb is not None for b in gpu.records[0].batches)
    new = runs[seeded_env.runs["bench_rounds"]]
    assert not new.from_timings and [r.name for r in new.records] == ["fp32", "bf16", "fp16"]
    assert new.measurement is not None and new.contention is None
    assert runs[seeded_env.runs["bench_contended"]].contention is not None
    profiles = hardware.hardware_profiles()
    assert len(profiles) == 2
    assert profiles.set_index("hostname").loc["gpu-box", "gpu_memory_gb"] == 80.0


def test_projection_stored_and_reused(seeded_copy: Seeded) -> None:
    rid = seeded_copy.runs["clip"]
    status = projections.projection_status(rid, "pca", "joint")
    assert status.total == 360 and status.auto and not status.stored
    first = projections.get_projection(rid, "pca", "joint")
    assert first.xy.shape == (360, 2) and not first.subsampled
    assert projections.projection_status(rid, "pca", "joint").stored
    again = projections.get_projection(rid, "pca", "joint")
    assert again.cached and np.allclose(again.xy, first.xy)
    df, facts = projections.projection_frame(rid, "pca", "joint")
    assert set(df["kind"]) == {"image", "text"} and facts.shown == 360
    assert (df["category"] != common.NO_CATEGORY).all() and df["text"].str.len().gt(0).all()
    sub = projections.get_projection(rid, "pca", "image", max_points=50)
    assert sub.subsampled and sub.xy.shape == (50, 2)
    assert np.array_equal(projections.subsample_index(120, 50), sub.index)


def test_empty_database(empty_env: object) -> None:
    assert datasets.dataset_summaries().empty
    assert runs.runs_frame().empty
    assert common.finished_runs().empty
    assert hardware.overview().empty and not hardware.recommendations()
    assert hardware.hardware_profiles().empty
    assert common.run_info(1) is None
    assert results.run_items(1).empty
    assert results.item_drilldown(1, 1) is None
    assert similarity.similarity_view(1).mode == "none"
    assert isinstance(captions.caption_table(1), pd.DataFrame)
    assert compare.pairwise_significance([1, 2]).empty


def test_compare_caption_runs_through_the_report_aligner(seeded_copy: Seeded) -> None:
    other = second_caption_run(seeded_copy, drop_cider_of_first=False)
    sig = compare.pairwise_significance([seeded_copy.runs["caption"], other])
    assert list(sig["metric"]) == ["CIDEr", "BLEU-4"]
    assert sig["problem"].isna().all()
    assert (sig["test"] == "paired_bootstrap").all() and (sig["n"] == 120).all()
    assert (sig["difference"] == 0).all()  # the same captions


def test_missing_score_is_reported_not_dropped(seeded_copy: Seeded) -> None:
    other = second_caption_run(seeded_copy, drop_cider_of_first=True)
    sig = compare.pairwise_significance([seeded_copy.runs["caption"], other]).set_index("metric")
    cider = sig.loc["CIDEr"]
    assert cider["problem"] == "per-image CIDEr scores are missing for some items"
    assert pd.isna(cider["difference"]) and pd.isna(cider["n"])  # no numbers from 119 items
    assert pd.isna(sig.loc["BLEU-4", "problem"]) and sig.loc["BLEU-4", "n"] == 120


def test_items_carry_caption_text_and_hardest_first(seeded_env: Seeded) -> None:
    rid = seeded_env.runs["clip_random"]  # a random model: many wrong, ranks spread out
    items = results.run_items(rid)
    caps = common.caption_frame(seeded_env.dataset_id)
    texts = set(caps["text"])
    assert "top1_caption_id" not in items.columns  # text, not ids
    assert items["top1_caption"].isin(texts).all() and items["true_caption"].isin(texts).all()
    first = caps.drop_duplicates("item_id").set_index("item_id")["text"]
    assert (items["true_caption"] == items["item_id"].map(first)).all()
    hard = results.hardest_items(rid, limit=10)
    assert len(hard) == 10 and hard["rank"].is_monotonic_decreasing
    assert hard["rank"].iloc[0] == items["rank"].max()
    star = results.hardest_items(rid, category="star", limit=5)
    assert set(star["category"]) == {"star"}
    assert star["rank"].iloc[0] == items.loc[items["category"] == "star", "rank"].max()


def test_hardest_captions(seeded_env: Seeded) -> None:
    rid = seeded_env.runs["caption"]
    worst = captions.hardest_captions(rid, limit=8)
    table = captions.caption_table(rid)
    assert len(worst) == 8 and worst["CIDEr"].is_monotonic_increasing
    assert worst["CIDEr"].iloc[0] == table["CIDEr"].min()
    bad = captions.hardest_captions(rid, degenerate_only=True, limit=500)
    assert len(bad) == int(table["degenerate"].sum()) and bad["degenerate"].all()
    circle = captions.hardest_captions(rid, category="circle", limit=500)
    assert len(circle) == int((table["category"] == "circle").sum())


def test_thumbnail_urls(seeded_env: Seeded) -> None:
    import base64
    import io

    from PIL import Image

    ids = results.run_items(seeded_env.runs["clip"])["item_id"].head(3).tolist()
    urls = images.thumbnail_urls([*ids, 10**9])  # an unknown id is left out
    assert sorted(urls) == sorted(ids)
    for url in urls.values():
        assert url.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
            assert max(im.size) <= images.TABLE_THUMB_PX
    assert images.thumbnail_urls([]) == {}


def test_chart_rows_carry_their_item(seeded_copy: Seeded) -> None:
    rid = seeded_copy.runs["clip"]
    view = similarity.similarity_view(rid)
    assert view.cells is not None
    items = common.item_frame(seeded_copy.dataset_id).set_index("item_id")
    sample = view.cells.sample(20, random_state=0)
    assert (items.loc[sample["item_id"], "filename"].to_numpy() == sample["filename"]).all()
    df, _ = projections.projection_frame(rid, "pca", "joint")
    assert (df["item_id"] > 0).all()
    img = df[df["kind"] == "image"]
    assert (items.loc[img["item_id"], "filename"].to_numpy() == img["filename"]).all()


def test_expected_failure() -> None:
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1\n'
    assert common.is_expected_failure(tb + "mirada.errors.ModelUnavailableError: no weights\n")
    assert not common.is_expected_failure(tb + "RuntimeError: CUDA out of memory")
    assert not common.is_expected_failure(None) and not common.is_expected_failure("")
