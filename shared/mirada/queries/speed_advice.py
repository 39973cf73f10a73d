""" "What should I use?": the fastest variant that costs no task accuracy, from one benchmark
run's variant records (`mirada.benchmark_records`). Pure: `mirada show` and the Hardware page
both ask `advise`, so they never give different answers about the same run.

The rules, in the user's terms:
- a variant qualifies when its speed-up CI lies above 1 (a measured speed-up, not noise), and
- every task metric's difference CI lies above -tolerance points (default 1: "no more than one
  point worse, with 95% confidence"); a variant without task metrics (the dataset has no
  captions or categories) falls back to the minimum cosine to the reference, and says so;
- the fastest qualifying variant (by its paired speed-up) wins; else the reference, with why;
- a run measured under CPU contention gives no recommendation, only the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mirada.benchmark_records import Interval, Measurement, VariantRecord, contention_reason
from mirada.metrics.formatting import MISSING, format_value
from mirada.metrics.names import MetricKind, label

DEFAULT_TOLERANCE = 1.0  # points a task metric may lose (the CI's lower bound)
DEFAULT_COSINE = 0.999  # min cosine to the reference, where no task metric was measured
GENERIC_CONTENTION = "measured under CPU contention; re-run on an idle machine"


class Outcome(StrEnum):
    variant = "variant"  # a faster variant qualifies
    reference = "reference"  # none does: use the reference
    withheld = "withheld"  # measured under contention: no advice
    single = "single"  # only one configuration measured: nothing to choose from


@dataclass(frozen=True)
class Verdict:
    """One non-reference variant against the rules."""

    variant: str
    ok: bool
    why: str
    speedup: float | None = None
    basis: str | None = None  # "task metrics" or "cosine" (what judged its accuracy)


@dataclass(frozen=True)
class Advice:
    outcome: Outcome
    variant: str | None  # what to use (None when withheld)
    summary: str  # one sentence saying what and why
    verdicts: tuple[Verdict, ...] = ()
    speedup: float | None = None
    speedup_ci: Interval | None = None


def times(value: float | None, ci: Interval | None = None) -> str:
    """A speed-up as people read it: `2.10× [1.95, 2.26]` (`–` when missing)."""
    if value is None:
        return MISSING
    return f"{value:.2f}×" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci is not None else "")


def signed(points: float) -> str:
    """A difference in points with its sign, one decimal: `+0.4`, `−1.2` (a real minus)."""
    rounded = round(points, 1) + 0.0  # no "-0.0"
    return f"{'−' if rounded < 0 else '+'}{abs(rounded):.1f}"


def points(delta: float | None, ci: Interval | None = None) -> str:
    """A task-metric difference: `−0.8 [−2.1, +0.4]` (`–` when missing)."""
    if delta is None:
        return MISSING
    return signed(delta) + (f" [{signed(ci[0])}, {signed(ci[1])}]" if ci is not None else "")


def interval(kind: MetricKind, value: float | None, ci: Interval | None) -> str:
    """`123.4 [120.1, 126.7]`: a value and its CI as `format_value` writes each number."""
    text = format_value(kind, value, unit=False)
    if text == MISSING or ci is None:
        return text
    return (
        f"{text} [{format_value(kind, ci[0], unit=False)}, {format_value(kind, ci[1], unit=False)}]"
    )


def contended_reason(
    records: Sequence[VariantRecord], measurement: Measurement | None
) -> str | None:
    """Why this run's numbers cannot carry a recommendation, or None when it was quiet (or
    never checked: runs measured before contention was recorded)."""
    if measurement is not None and measurement.contended:
        if measurement.reason:
            return measurement.reason
        if measurement.other_cpu_share is not None:
            return contention_reason(measurement.other_cpu_share)
        return GENERIC_CONTENTION
    if any(r.contended for r in records):
        return GENERIC_CONTENTION
    return None


def reference_of(records: Sequence[VariantRecord]) -> VariantRecord:
    return next((r for r in records if r.reference), records[0])


def speedup_of(record: VariantRecord) -> tuple[float | None, Interval | None]:
    """The paired speed-up and its CI (older records: the unpaired ratio, no CI)."""
    if record.speedup is not None:
        return record.speedup, record.speedup_ci
    return record.speedup_vs_fp32, None


def worst_task_metric(record: VariantRecord) -> tuple[str, float | None] | None:
    """(metric key, its difference CI's lower bound) of the task metric closest to losing
    accuracy; a metric without a CI counts as the worst (nothing bounds it). None without
    task metrics."""
    if not record.task_metrics:
        return None
    lows = {
        key: (m.delta_ci[0] if m.delta_ci is not None else None)
        for key, m in record.task_metrics.items()
    }
    unbounded = [k for k, v in lows.items() if v is None]
    if unbounded:
        return unbounded[0], None
    key = min(lows, key=lambda k: lows[k] or 0.0)
    return key, lows[key]


def judge(
    record: VariantRecord, reference: VariantRecord, *, tolerance: float, cosine: float
) -> Verdict:
    name = record.name
    if not record.available:
        return Verdict(name, False, f"{name}: unavailable ({record.unavailable_reason or '?'})")
    speed, ci = speedup_of(record)
    if speed is None:
        return Verdict(name, False, f"{name}: no speed-up measured")
    shown = times(speed, ci)
    if ci is None:
        why = f"{name}: speed-up {shown} has no CI (measured before interleaved rounds; re-run)"
        return Verdict(name, False, why, speed)
    if ci[0] <= 1.0:
        why = f"{name}: speed-up {shown} is not above 1 with 95% confidence"
        return Verdict(name, False, why, speed)
    worst = worst_task_metric(record)
    if worst is not None:
        key, low = worst
        if low is None:
            why = f"{name}: {label(key)} difference has no CI"
            return Verdict(name, False, why, speed, "task metrics")
        if low < -tolerance:
            why = (
                f"{name}: {label(key)} may drop by up to {signed(-low).lstrip('+')} points "
                f"(CI lower bound {signed(low)}; tolerance {tolerance:g})"
            )
            return Verdict(name, False, why, speed, "task metrics")
        why = (
            f"{name}: {shown} the speed of {reference.name}; every task metric stays within "
            f"{tolerance:g} point(s) (lowest CI bound: {label(key)} {signed(low)})"
        )
        return Verdict(name, True, why, speed, "task metrics")
    agreement = record.min_cosine_to_fp32
    if agreement is None:
        why = f"{name}: no task metrics and no cosine agreement to judge its accuracy by"
        return Verdict(name, False, why, speed)
    if agreement < cosine:
        why = f"{name}: min cosine to {reference.name} {agreement:.6f} < {cosine:g}"
        return Verdict(name, False, why, speed, "cosine")
    why = (
        f"{name}: {shown} the speed of {reference.name}; no task metrics on this dataset, so "
        f"judged by cosine agreement (min {agreement:.6f} ≥ {cosine:g})"
    )
    return Verdict(name, True, why, speed, "cosine")


def advise(
    records: Sequence[VariantRecord],
    measurement: Measurement | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    cosine: float = DEFAULT_COSINE,
) -> Advice:
    """The advice one run's records give (see the module docstring for the rules)."""
    if not records:
        return Advice(Outcome.single, None, "nothing was measured")
    reason = contended_reason(records, measurement)
    if reason is not None:
        return Advice(Outcome.withheld, None, f"no recommendation: {reason}")
    reference = reference_of(records)
    others = [r for r in records if r is not reference]
    if not others:
        return Advice(
            Outcome.single,
            reference.name,
            f"only {reference.name} was measured: queue the benchmark with --variants "
            "(e.g. fp32,bf16) to compare precisions",
        )
    verdicts = tuple(judge(r, reference, tolerance=tolerance, cosine=cosine) for r in others)
    passing = [v for v in verdicts if v.ok]
    if passing:
        best = max(passing, key=lambda v: v.speedup or 0.0)
        record = next(r for r in others if r.name == best.variant)
        speed, ci = speedup_of(record)
        return Advice(Outcome.variant, best.variant, f"use {best.why}", verdicts, speed, ci)
    return Advice(
        Outcome.reference,
        reference.name,
        f"use {reference.name} (the reference): " + "; ".join(v.why for v in verdicts),
        verdicts,
        1.0,
    )
