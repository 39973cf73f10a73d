"""How busy the machine was with other work while a benchmark measured: CPU time other
processes used on this process's CPUs, the load average, and what the machine is.

Other work is read from /proc/stat: the busy jiffies of the CPUs this process may run on
(os.sched_getaffinity; a container may see all the host's CPUs in /proc/stat but run on a
few), minus this process's own CPU time over the same interval. Its share of the interval's
capacity (CPUs x wall time) is `other_cpu_share`; a measurement is contended at
benchmark_records.CONTENDED_CPU_SHARE. Where /proc/stat is missing (macOS, Windows) the share
is None and nothing is called contended.

The benchmark takes a `Probe` (a callable giving a `Snapshot`), so tests fake contention with
made-up snapshots instead of busy loops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from mirada.benchmark_records import CONTENDED_CPU_SHARE

PROC_STAT = Path("/proc/stat")
# /proc/stat cpuN fields: user nice system idle iowait irq softirq steal guest guest_nice.
# Busy is everything but idle and iowait; guest time is already counted in user and nice.
# Steal (a hypervisor running another guest on this CPU) is other work too.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


@dataclass(frozen=True)
class Snapshot:
    """The counters at one instant."""

    wall: float  # time.perf_counter()
    own_cpu: float  # this process's CPU seconds, all threads (time.process_time())
    busy: float | None  # busy CPU seconds of `cpus` since boot; None where unreadable
    cpus: int  # CPUs this process may run on
    load: float | None  # 1-minute load average


Probe = Callable[[], Snapshot]


@dataclass(frozen=True)
class Window:
    """What happened between two snapshots."""

    seconds: float
    other_cpu_share: float | None  # 0-1; None where /proc/stat is unreadable
    load_before: float | None
    load_after: float | None

    @property
    def contended(self) -> bool:
        return self.other_cpu_share is not None and self.other_cpu_share >= CONTENDED_CPU_SHARE


def busy_seconds(stat_text: str, cpus: Collection[int], ticks_per_s: float) -> float | None:
    """Busy seconds since boot of the CPUs numbered `cpus`, from /proc/stat's text; None when
    none of them is listed."""
    total = 0
    found = False
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        if int(name[3:]) not in cpus:
            continue
        fields = [int(x) for x in rest.split()]
        total += sum(fields[i] for i in _BUSY_FIELDS if i < len(fields))
        found = True
    return total / ticks_per_s if found else None


def window(before: Snapshot, after: Snapshot) -> Window:
    """Other processes' share of the CPUs between two snapshots: their busy time (all busy
    time less this process's own) over CPUs x wall time, clipped to [0, 1] (jiffies are
    coarse: a short window can read a little below zero or above one)."""
    seconds = after.wall - before.wall
    share: float | None = None
    if before.busy is not None and after.busy is not None and seconds > 0:
        other = (after.busy - before.busy) - (after.own_cpu - before.own_cpu)
        share = min(1.0, max(0.0, other / (after.cpus * seconds)))
    return Window(seconds, share, before.load, after.load)


def snapshot() -> Snapshot:
    """The real counters of this machine (the default Probe)."""
    cpus = _affinity()
    busy: float | None = None
    try:
        busy = busy_seconds(PROC_STAT.read_text(), cpus, os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):  # no /proc (macOS, Windows) or no sysconf name
        busy = None
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    return Snapshot(time.perf_counter(), time.process_time(), busy, len(cpus), load)


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (None where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return None


def gpu_clocks_mhz(timeout: float = 5.0) -> dict[str, float] | None:
    """Current SM and memory clocks of CUDA device 0, in MHz, if readable: nvidia-smi (local,
    time-limited), else torch.cuda.clock_rate (needs pynvml; SM only); None otherwise."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            out = subprocess.run(
                [
                    smi,
                    "--query-gpu=clocks.sm,clocks.mem",
                    "--format=csv,noheader,nounits",
                    "--id=0",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            ).stdout
            sm, mem = (float(x) for x in out.strip().splitlines()[0].split(","))
            return {"sm": sm, "memory": mem}
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    try:
        import torch

        return {"sm": float(torch.cuda.clock_rate())}
    except Exception:  # pynvml missing, or no NVML on this machine
        return None
