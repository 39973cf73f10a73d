"""The plain result records metric builders return and `mirada.results` stores.

They live in the metrics layer so that metric code never imports storage: `mirada.results`
re-exports them next to the function that writes them to the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class IntervalMethod(StrEnum):
    """How a stored interval was computed (the `interval_method` in a metric's details)."""

    wilson = "wilson"  # Wilson score interval of a binomial proportion
    bootstrap = "bootstrap"  # percentile bootstrap over images

    @property
    def label(self) -> str:
        return "Wilson" if self is IntervalMethod.wilson else "bootstrap"


@dataclass(frozen=True)
class MetricValue:
    """One metric row: category None is the whole dataset; ci_low/ci_high a 95% interval.

    details (metrics.report): n, interval_method (an IntervalMethod value; rows stored before
    it existed were all bootstrap), and where defined chance (what a random model scores),
    chance_basis ("for 4 classes") and trivial (why any model scores 100%).
    """

    name: str
    value: float | None
    category: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class ItemOutcome:
    """A match run's result for one image (item)."""

    item_id: int
    correct: bool | None = None
    rank: int | None = None
    score: float | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class CaptionOutcome:
    """A caption run's generated caption for one image, with its scores and flags."""

    item_id: int
    text: str
    scores: dict[str, Any] | None = None
    flags: dict[str, Any] | None = None
