"""Issue 13 on the pages: the item view lists each class's zero-shot cosine, the Captions page
explains corpus METEOR and which scores have a CI, the Runs page shows a running run's phase."""

from __future__ import annotations

from dashboard_seed import Seeded
from test_pages import open_page, texts


def test_item_view_lists_zeroshot_scores(seeded_env: Seeded) -> None:
    from mirada.queries.results import run_items

    run_id = seeded_env.runs["clip_random"]
    item_id = int(run_items(run_id).iloc[0]["item_id"])
    at = open_page("results", run=run_id, item=item_id)
    assert not at.exception
    assert "**Zero-shot scores per class** (cosine, best first)" in texts(at)
    table = next(d.value for d in at.dataframe if "cosine" in d.value.columns)
    assert table["cosine"].is_monotonic_decreasing and len(table) >= 2


def test_captions_page_explains_meteor_and_intervals(seeded_env: Seeded) -> None:
    at = open_page("captions")
    assert not at.exception
    shown = texts(at)
    assert "fragmentation penalty" in shown
    assert "have no confidence interval" in shown
