"""Validation problems and the error that carries them, so the user sees a row-by-row report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mirada.errors import MiradaError

# Enough for a useful report, small enough to read in a terminal or a dashboard panel.
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: `where` names the file/row, `message` says what to fix."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message}


class DatasetImportError(MiradaError):
    """The import was rejected; nothing was written. `.problems` lists up to MAX_PROBLEMS."""

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        total: int | None = None,
        dataset: str | None = None,
        can_skip: bool = False,
    ) -> None:
        self.problems = list(problems)[:MAX_PROBLEMS]
        self.total = max(total or 0, len(problems))
        self.dataset = dataset
        self.can_skip = can_skip
        super().__init__(self._summary())

    def _summary(self) -> str:
        target = f"dataset {self.dataset!r}" if self.dataset else "the dataset"
        noun = "problem" if self.total == 1 else "problems"
        lines = [f"cannot import {target}: {self.total} {noun}, nothing was imported"]
        lines += [f"  - {p}" for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"  ... and {self.total - len(self.problems)} more")
        if self.can_skip:
            lines.append(
                "Fix these and import again, or pass --lenient to skip the bad rows/images."
            )
        return "\n".join(lines)


class ProblemLog:
    """Collects skippable problems while parsing and checking images.

    Structural problems (unsafe zip, missing caption column, ...) are raised at once instead,
    because nothing after them can be trusted.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def full(self) -> bool:
        """True once the report is as long as we would show; strict mode stops costly work."""
        return len(self.problems) >= MAX_PROBLEMS


def fatal(where: str, message: str, *, dataset: str | None = None) -> DatasetImportError:
    """A one-problem rejection that --lenient cannot skip."""
    return DatasetImportError([Problem(where, message)], dataset=dataset)
