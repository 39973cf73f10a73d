"""Load the model only when a task needs it, timing the load."""

from __future__ import annotations

import time
from typing import Any

from mirada.domain import DEFAULT_SEED
from mirada.run_options import RunOptions
from mirada.vlm.base import VLMAdapter


class LazyModel:
    """A run's model, loaded on first use. A fully cached re-run never loads it.

    `for_run` applies what the run recorded when it was queued: the id to load (local paths
    absolute), the fingerprint its files must match and the seed of random weights."""

    def __init__(
        self,
        model_id: str,
        device: str,
        dtype: str,
        *,
        seed: int = DEFAULT_SEED,
        model_files: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self.seed = seed
        self.model_files = model_files  # expected fingerprint of local files; None: unchecked
        self._checked = False
        self._adapter: VLMAdapter | None = None
        self.load_seconds: float | None = None
        self.identity: dict[str, Any] | None = None  # file-based cache identity, if known

    def for_run(self, options: RunOptions) -> None:
        self.model_id = options.resolved_model_id or self.model_id
        self.model_files = options.model_files
        self.seed = options.seed
        self._checked = False

    @property
    def loaded(self) -> bool:
        return self._adapter is not None

    def check_files(self) -> None:
        """Refuse local files other than those the run was queued with (once per run); before
        anything reads them, the embedding cache's identity included."""
        if not self._checked:
            from mirada.vlm.local_files import check_pinned

            check_pinned(self.model_id, self.model_files)
            self._checked = True

    def get(self) -> VLMAdapter:
        if self._adapter is None:
            from mirada.vlm.registry import load_adapter

            self.check_files()
            t0 = time.perf_counter()
            self._adapter = load_adapter(
                self.model_id, device=self.device, dtype=self.dtype, seed=self.seed
            )
            self.load_seconds = time.perf_counter() - t0
        return self._adapter

    def fingerprint(self) -> dict[str, Any] | None:
        if self._adapter is not None:
            return self._adapter.fingerprint().as_dict()
        # Everything came from the embedding cache: record what identified the model.
        return {**self.identity, "loaded": False} if self.identity else None

    def resolved_device(self) -> str | None:
        return self._adapter.device if self._adapter is not None else None
