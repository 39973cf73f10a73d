"""Contention from /proc/stat: other processes' share of this process's CPUs (the arithmetic on
made-up counters; the real probe only reads them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirada.benchmark_records import CONTENDED_CPU_SHARE
from mirada.worker import contention
from mirada.worker.contention import Snapshot, busy_seconds, window

STAT = """cpu  900 0 300 5000 100 0 0 0 0 0
cpu0 100 10 50 1000 20 5 5 10 7 0
cpu1 200 0 100 2000 40 0 0 0 0 0
cpu2 400 0 100 1500 30 0 0 0 0 0
intr 123456 0 0
ctxt 987654
"""


def test_busy_jiffies_of_the_affinity_cpus_only() -> None:
    # user+nice+system+irq+softirq+steal; idle, iowait and guest (inside user) left out
    assert busy_seconds(STAT, {0}, 100) == pytest.approx((100 + 10 + 50 + 5 + 5 + 10) / 100)
    assert busy_seconds(STAT, {1, 2}, 100) == pytest.approx((300 + 500) / 100)
    # the aggregate "cpu" line and CPUs outside the set are not counted
    assert busy_seconds(STAT, {0, 1, 2}, 100) == pytest.approx((180 + 300 + 500) / 100)
    assert busy_seconds(STAT, {7}, 100) is None  # none of ours listed: unknown, not idle


def _snap(wall: float, own: float, busy: float | None, cpus: int = 2) -> Snapshot:
    return Snapshot(wall=wall, own_cpu=own, busy=busy, cpus=cpus, load=0.5 + wall)


def test_other_share_is_busy_time_less_our_own_over_capacity() -> None:
    # 10 s on 2 CPUs: 14 busy seconds, 9 of them ours -> others used 5 of 20
    w = window(_snap(0, 1, 100), _snap(10, 10, 114))
    assert w.seconds == 10 and w.other_cpu_share == pytest.approx(0.25)
    assert w.load_before == 0.5 and w.load_after == 10.5
    assert w.contended and 0.25 >= CONTENDED_CPU_SHARE
    quiet = window(_snap(0, 0, 100), _snap(10, 9.5, 110))  # 0.5 s of others: 2.5%
    assert quiet.other_cpu_share == pytest.approx(0.025) and not quiet.contended


def test_share_is_clipped_and_unknown_without_proc_stat() -> None:
    # jiffies are coarse: our CPU time can read above the CPUs' busy time
    assert window(_snap(0, 0, 100), _snap(1, 1.5, 101)).other_cpu_share == 0.0
    assert window(_snap(0, 0, 0), _snap(1, 0, 50)).other_cpu_share == 1.0
    unknown = window(_snap(0, 0, None), _snap(10, 5, None))
    assert unknown.other_cpu_share is None and not unknown.contended


def test_the_real_probe_reads_this_machine() -> None:
    before = contention.snapshot()
    after = contention.snapshot()
    assert after.wall >= before.wall and after.own_cpu >= before.own_cpu
    assert before.cpus >= 1
    w = window(before, after)
    assert w.other_cpu_share is None or 0.0 <= w.other_cpu_share <= 1.0


def test_a_missing_proc_stat_gives_no_share(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(contention, "PROC_STAT", tmp_path / "absent")
    assert contention.snapshot().busy is None
