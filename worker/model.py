"""Load the model only when a task needs it, timing the load."""

from __future__ import annotations

import time
from typing import Any

from mirada.vlm.base import VLMAdapter


class LazyModel:
    """A run's model, loaded on first use. A fully cached re-run never loads it."""

    def __init__(self, model_id: str, device: str, dtype: str) -> None:
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self._adapter: VLMAdapter | None = None
        self.load_seconds: float | None = None
        self.identity: dict[str, Any] | None = None  # file-based cache identity, if known

    @property
    def loaded(self) -> bool:
        return self._adapter is not None

    def get(self) -> VLMAdapter:
        if self._adapter is None:
            from mirada.vlm.registry import load_adapter

            t0 = time.perf_counter()
            self._adapter = load_adapter(self.model_id, device=self.device, dtype=self.dtype)
            self.load_seconds = time.perf_counter() - t0
        return self._adapter

    def fingerprint(self) -> dict[str, Any] | None:
        if self._adapter is not None:
            return self._adapter.fingerprint().as_dict()
        # Everything came from the embedding cache: record what identified the model.
        return {**self.identity, "loaded": False} if self.identity else None

    def resolved_device(self) -> str | None:
        return self._adapter.device if self._adapter is not None else None
