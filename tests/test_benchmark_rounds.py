"""The benchmark's rounds (issue 21 §1): rotation, when rounds stop, what a timed batch gives,
contention marked from an injected probe, and the two artifacts of real runs on tiny models.
Behaviour only: the "time" of fake contenders is made up, and no test asserts a speed."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cli_runner import run_cli
from run_helpers import work
from sqlalchemy import select

from mirada import queue
from mirada.benchmark_records import (
    Measurement,
    VariantRecord,
    contention_reason,
    dump_records,
    load_measurement,
    load_records,
)
from mirada.db import read_session
from mirada.db.models import RunArtifact
from mirada.domain import Dtype, Task
from mirada.metrics import speed
from mirada.queries.runs import run_detail
from mirada.results import MEASUREMENT_ARTIFACT, VARIANTS_ARTIFACT
from mirada.run_options import REFERENCE_VARIANT, BenchmarkRunOptions, Variant
from mirada.worker import contention
from mirada.worker.tasks import benchmark
from mirada.worker.tasks.benchmark import Timed, batch_row, stop_reason, timed_rounds
from mirada.worker.tasks.variants import Contender


def _contenders(*names: str) -> list[Contender]:
    ref = Contender("fp32", REFERENCE_VARIANT, None, {})
    return [
        ref,
        *(Contender(n, Variant(Dtype.bf16, threads=i + 1), None, {}) for i, n in enumerate(names)),
    ]


class FakeTime:
    """A clock that moves only when a contender is "timed": each call takes the next of its
    contender's made-up durations."""

    def __init__(self, durations: dict[str, Iterator[float]]) -> None:
        self.now = 0.0
        self.durations = durations
        self.order: list[str] = []

    def clock(self) -> float:
        return self.now

    def time_one(self, c: Contender) -> Timed:
        self.order.append(c.name)
        seconds = next(self.durations[c.name])
        self.now += seconds
        return Timed(seconds)


def _rounds(fake: FakeTime, live: list[Contender], **kw: Any) -> benchmark.Rounds:
    kw = {"min_rounds": 3, "max_seconds": 1e9, "started": 0.0, "where": "image_encode", **kw}
    return timed_rounds(live, fake.time_one, clock=fake.clock, **kw)


def test_each_round_times_every_contender_once_in_rotating_order() -> None:
    live = _contenders("a", "b")
    fake = FakeTime({c.name: itertools.repeat(0.1) for c in live})
    result = _rounds(fake, live, min_rounds=4)
    assert result.rounds == 4 and result.stop == "converged"
    rounds = [fake.order[i : i + 3] for i in range(0, 12, 3)]
    assert rounds == [
        ["fp32", "a", "b"],
        ["a", "b", "fp32"],
        ["b", "fp32", "a"],
        ["fp32", "a", "b"],
    ]
    assert rounds == [[live[i].name for i in speed.round_order(3, r)] for r in range(4)]


def test_rounds_stop_at_convergence_not_before_the_minimum() -> None:
    live = _contenders("bf16")
    steady = FakeTime({c.name: itertools.repeat(0.2) for c in live})
    assert _rounds(steady, live, min_rounds=5).rounds == 5  # converged from round 2 on
    # noisy at first, then steady: stops once every CI is within the target
    noisy = [0.1, 0.3, 0.1, 0.3]
    settling = FakeTime({c.name: itertools.chain(noisy, itertools.repeat(0.2)) for c in live})
    result = _rounds(settling, live, min_rounds=2)
    assert result.stop == "converged" and result.rounds > 4
    seconds = [[t.seconds for t in calls] for calls in result.calls.values()]
    assert all(speed.converged(s) for s in seconds)
    assert not all(speed.converged(s[:-1]) for s in seconds)  # one round sooner was not


def test_rounds_stop_at_the_budget_and_the_cap() -> None:
    live = _contenders("bf16")

    def never() -> FakeTime:  # 0.1 and 1.0 in turn: never within ±5%
        return FakeTime({c.name: itertools.cycle([0.1, 1.0]) for c in live})

    budget = _rounds(never(), live, max_seconds=10.0)
    # rounds take 0.2 and 2.0 "seconds" in turn: 9.2 after nine, 11.0 after ten
    assert budget.stop == "budget" and budget.rounds == 10
    capped = _rounds(never(), live, max_rounds=7)
    assert capped.stop == "cap" and capped.rounds == 7
    # the minimum is a floor even when the budget is long gone (warm-up took it all)
    late = _rounds(never(), live, min_rounds=4, max_seconds=1.0, started=-100.0)
    assert late.stop == "budget" and late.rounds == 4
    assert stop_reason(3, 0.0, [[0.1, 1.0]], min_rounds=3, max_seconds=5.0) is None


def test_a_failing_variant_is_dropped_and_the_reference_failing_ends_the_run() -> None:
    live = _contenders("bf16")
    fake = FakeTime({c.name: itertools.repeat(0.1) for c in live})

    def flaky(c: Contender) -> Timed:
        if c.name == "bf16" and len(fake.order) > 3:
            raise RuntimeError("out of memory\nmore")
        return fake.time_one(c)

    result = timed_rounds(
        live,
        flaky,
        min_rounds=4,
        max_seconds=1e9,
        started=0.0,
        where="caption at batch 8",
        clock=fake.clock,
    )
    assert list(result.calls) == ["fp32"] and len(result.calls["fp32"]) == 4
    assert live[1].unavailable == "caption at batch 8: RuntimeError: out of memory"

    def broken(c: Contender) -> Timed:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        timed_rounds(_contenders(), broken, min_rounds=1, max_seconds=1, started=0, where="x")


def test_a_batch_row_pairs_rounds_and_adds_weights_to_activations() -> None:
    ref = [Timed(0.2, cpu_seconds=0.4, threads=2, peak_rss=2**30) for _ in range(6)]
    fast = [
        Timed(s, cpu_seconds=s, threads=2, activation_bytes=3 * 2**20, peak_rss=2**30)
        for s in (0.1, 0.1, 0.1, 0.1, 0.1, 0.4)
    ]
    row = batch_row(
        "image_encode",
        8,
        fast,
        reference=ref,
        first_call_s=1.0,
        weights_bytes=10 * 2**20,
        activation_bytes=5 * 2**20,
    )
    assert row.repeats == 6 and row.batch_seconds == (0.1,) * 5 + (0.4,)
    assert row.speedup == 2.0  # the median of the per-round ratios 0.2/0.1 (one round 0.5)
    assert row.speedup_ci is not None and row.speedup_ci[0] <= 2.0 <= row.speedup_ci[1]
    assert row.throughput_per_s == pytest.approx(8 * 6 / 0.9)
    assert row.latency_p50_ms == pytest.approx(0.1 * 1000 / 8)
    assert row.cpu_efficiency == 0.5  # one of two threads busy
    assert row.added_peak_mb == 15.0  # weights + the most any call added (warm-up's 5 MB)
    assert row.peak_rss_mb == 1024 and row.converged is False
    own = batch_row("image_encode", 8, ref, on_cpu=False)
    assert own.speedup is None and own.cpu_efficiency is None and own.added_peak_mb is None
    assert own.converged is True and own.latency_p50_ci is not None


# --- real runs on the tiny CLIP ------------------------------------------------------------


def _artifacts(run_id: int) -> tuple[list[VariantRecord], Measurement]:
    with read_session() as s:
        blobs = dict(
            s.execute(
                select(RunArtifact.name, RunArtifact.data).where(RunArtifact.run_id == run_id)
            ).all()
        )
    return load_records(blobs[VARIANTS_ARTIFACT]), load_measurement(blobs[MEASUREMENT_ARTIFACT])


def _queue(dataset: int, model: str, **options: Any) -> int:
    options = {
        "batch_sizes": [2, 4],
        "warmup_batches": 1,
        "timed_batches": 6,
        "max_seconds": 0.5,
        **options,
    }
    return queue.enqueue(
        dataset, model, Task.benchmark, options=BenchmarkRunOptions.from_dict(options)
    )


def test_plain_and_variant_runs_store_both_artifacts(dataset: int, models: dict[str, str]) -> None:
    plain = _queue(dataset, models["clip"])
    paired = _queue(dataset, models["clip"], variants="fp32,bf16")
    assert work() == 2
    for run_id, names in ((plain, ["fp32"]), (paired, ["fp32", "bf16"])):
        recs, m = _artifacts(run_id)
        assert [r.name for r in recs] == names and recs[0].reference
        for r in recs:
            assert r.available and r.rounds is not None and r.rounds >= 6
            assert r.weights_mb is not None and r.weights_mb > 0
            assert r.added_peak_mb is not None and r.added_peak_mb >= r.weights_mb
            assert r.contended == m.contended and r.speedup_ci is not None
            rows = {(b.op, b.batch_size): b for b in r.batches}
            assert set(rows) == {
                (op, bs) for op in ("image_encode", "text_encode") for bs in (2, 4)
            }
            # the record's rates and intervals are its largest batch's
            big = rows[("image_encode", 4)]
            assert (r.images_per_s, r.images_per_s_ci) == (big.throughput_per_s, big.throughput_ci)
            assert r.texts_per_s_ci == rows[("text_encode", 4)].throughput_ci
            for (_, bs), b in rows.items():
                assert b.repeats >= 6 and len(b.batch_seconds) == b.repeats
                assert b.cpu_efficiency is not None and b.latency_p50_ci is not None
                assert (b.speedup is None) == r.reference  # 6 rounds: a median CI
                # the same batches give the CI (absent only where it is unbounded)
                ci = speed.throughput(b.batch_seconds, bs).ci
                assert ci is not None
                assert b.throughput_ci == (ci if ci[1] != float("inf") else None)
        assert m.min_rounds == 6 and m.max_seconds == 0.5
        assert m.target_rel_ci == speed.TARGET_REL_CI
        assert m.threads is not None and m.cpus is not None and m.seconds is not None
        assert m.gpu_name is None and m.gpu_clocks_mhz is None  # a CPU run
        if m.other_cpu_share is not None:
            assert m.contended == (m.reason is not None)
        # rounds end at convergence or the budget, unknown in advance: the bar still ends full
        progress = run_detail(run_id)["progress"]
        assert progress["total"] > 0 and progress["done"] == progress["total"]
    bf16 = _artifacts(paired)[0][1]
    assert bf16.speedup == bf16.speedup_vs_fp32 and bf16.weights_mb is not None
    fp32 = _artifacts(paired)[0][0]
    assert fp32.weights_mb is not None and bf16.weights_mb < fp32.weights_mb  # half the bytes

    shown = json.loads(run_cli("show", str(paired), "--json").stdout)
    assert [v["name"] for v in shown["variants"]] == ["fp32", "bf16"]
    for v in shown["variants"]:
        assert v["images_per_s"] > 0 and v["min_cosine_to_fp32"] is not None


def _probe(busy_share: float) -> contention.Probe:
    """Snapshots 2 s apart on 2 CPUs, others busy for `busy_share` of them."""
    ticks = itertools.count()

    def probe() -> contention.Snapshot:
        i = next(ticks)
        return contention.Snapshot(
            wall=2.0 * i, own_cpu=0.0, busy=4.0 * busy_share * i, cpus=2, load=1.0 + i
        )

    return probe


@pytest.mark.parametrize("share", [0.5, 0.0])
def test_an_injected_probe_marks_the_run_contended(
    dataset: int, models: dict[str, str], monkeypatch: pytest.MonkeyPatch, share: float
) -> None:
    execute = functools.partial(benchmark.execute, probe=_probe(share))
    monkeypatch.setattr(benchmark, "execute", execute)
    run_id = _queue(dataset, models["clip"], variants="bf16", batch_sizes=[2])
    assert work() == 1
    recs, m = _artifacts(run_id)
    assert m.other_cpu_share == share and m.load_before == 1.0 and m.load_after > 1.0
    assert m.contended is (share > 0) and all(r.contended is (share > 0) for r in recs)
    assert m.reason == (contention_reason(share) if share else None)


def test_an_unbounded_interval_is_stored_as_null() -> None:
    # two batches far apart: the t interval's half-width exceeds the mean time
    row = batch_row("image_encode", 4, [Timed(0.01), Timed(1.0)])
    assert row.throughput_ci is not None and row.throughput_ci[1] == float("inf")
    (stored,) = load_records(dump_records([VariantRecord("fp32", Dtype.fp32, batches=(row,))]))
    assert stored.batches[0].throughput_ci is None
    assert stored.batches[0].batch_seconds == (0.01, 1.0)


def test_fast_decode_is_a_variant_fed_by_its_own_decoder(
    dataset: int, models: dict[str, str]
) -> None:
    run_id = _queue(dataset, models["clip"], variants="fp32+fast_decode", batch_sizes=[4])
    assert work() == 1
    (ref, fast), m = _artifacts(run_id)
    assert fast.name == "fp32+fast_decode" and fast.fast_decode and not ref.fast_decode
    pipeline = m.input_pipeline
    assert pipeline is not None and pipeline.bound in ("input", "model")
    assert pipeline.model_images_per_s == ref.images_per_s  # the reference's model-only rate
    assert ref.decode_images_per_s == pipeline.per_core_images_per_s
    # the tiny CLIP's image processor (resize, crop, normalise) is one it reproduces
    assert fast.available, fast.unavailable_reason
    assert fast.decode_images_per_s == pipeline.fast_decode_per_core_images_per_s
    assert fast.images_per_s is not None and fast.speedup is not None
    # same weights, other pixels: the embeddings differ a little, not wholly
    assert fast.min_cosine_to_fp32 is not None and 0.5 < fast.min_cosine_to_fp32 <= 1.0
