"""The Runs page shows where a run's image time went (decode wait against model time), for
runs that recorded it; older runs say nothing."""

from __future__ import annotations

from dashboard_seed import Seeded
from test_pages import open_page

from mirada.metrics import names
from mirada.queue import claim_next, enqueue, finish_run, register_worker
from mirada.results import RunResults, TimingValue


def _finished_match_with_split(seeded: Seeded, wait: float, model: float) -> int:
    run_id = enqueue(seeded.dataset_id, "hf-clip:mirada/demo-clip", "match")
    worker, _ = register_worker("split", "host", 1, [], ["cpu"], None)
    while (claimed := claim_next(worker, ["cpu"], [])) is not None and claimed.id != run_id:
        pass  # the seed's own queued run goes first
    timings = [
        TimingValue(names.timing_key(names.IMAGE_ENCODE, names.PER_S), 250.0, "items/s"),
        TimingValue(names.timing_key(names.IMAGE_ENCODE, names.DECODE_WAIT_S), wait, "s"),
        TimingValue(names.timing_key(names.IMAGE_ENCODE, names.MODEL_S), model, "s"),
    ]
    assert finish_run(
        run_id,
        worker,
        RunResults(timings=timings),
        hardware_profile_id=None,
        model_fingerprint=None,
        resolved_device=None,
    )
    return run_id


def _captions(run_id: int) -> list[str]:
    at = open_page("runs")
    at.selectbox(key="runs_action_run").select(run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return [c.value for c in at.caption]


def test_a_match_run_shows_its_decode_and_model_split(seeded_copy: Seeded) -> None:
    run_id = _finished_match_with_split(seeded_copy, wait=0.4, model=3.6)
    shown = [c for c in _captions(run_id) if c.startswith("Images:")]
    assert shown == ["Images: decode wait 0.40 s, model 3.60 s (10.0% waiting on input)"]


def test_an_older_match_run_says_nothing_about_it(seeded_env: Seeded) -> None:
    captions = _captions(seeded_env.runs["clip"])  # seeded without the split
    assert not any("decode wait" in c for c in captions)
