"""User-facing errors: the message names the file, row or value and says what to do."""

from __future__ import annotations


class MiradaError(Exception):
    """An error the user can act on. The CLI prints it without a traceback and exits 2."""

    exit_code = 2


class NotFoundError(MiradaError):
    """A dataset, run or model that does not exist."""
