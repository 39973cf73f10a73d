"""Errors of the model layer; all are MiradaErrors, so the CLI prints them without a traceback."""

from __future__ import annotations

from mirada.errors import MiradaError, NotFoundError


class ModelIdError(MiradaError):
    """A model id that does not parse (unknown family, malformed, unknown option)."""


class ModelUnavailableError(NotFoundError):
    """The weights are not on this machine; the message says where we looked and how to get them."""


class DeviceUnavailableError(MiradaError):
    """A device (cuda/mps) was asked for that this machine does not have."""
