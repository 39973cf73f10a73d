"""Load the model only when a task needs it, timing the load."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mirada.domain import DEFAULT_SEED, Device, Dtype
from mirada.queue import ClaimedRun
from mirada.vlm.base import LoadedModel


@dataclass(frozen=True)
class ModelRequest:
    """What to load, as the run was queued: one typed value from the claimed run to the loader
    (in this process, or in Ray's model actors)."""

    model_id: str  # local paths absolute (pinned when the run was queued)
    device: Device
    dtype: Dtype
    seed: int = DEFAULT_SEED  # of randomly initialised weights
    model_files: str | None = None  # expected fingerprint of local files; None: unchecked

    @classmethod
    def for_run(cls, run: ClaimedRun, device: Device) -> ModelRequest:
        """The run's model on `device` (the worker resolved auto): the id, files and seed the
        run recorded when queued."""
        o = run.options
        return cls(o.resolved_model_id or run.model_id, device, run.dtype, o.seed, o.model_files)

    def check_files(self) -> None:
        """Refuse local files other than those the run was queued with."""
        from mirada.vlm.local_files import check_pinned

        check_pinned(self.model_id, self.model_files)

    def load(self) -> LoadedModel:
        """The model as requested (in this process, or in a Ray model actor)."""
        from mirada.vlm.registry import load_adapter

        _quiet_library_progress()
        return load_adapter(self.model_id, device=self.device, dtype=self.dtype, seed=self.seed)


def _quiet_library_progress() -> None:
    """Silence transformers' own "Loading weights" bars: the worker shows one progress bar per
    run (or none with --no-progress), and a second bar interleaved with it garbles the line.
    Loading time is still measured and stored (`load_seconds`)."""
    import importlib.util

    if importlib.util.find_spec("transformers") is not None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


class LazyModel:
    """A run's model, loaded on first use. A fully cached re-run never loads it."""

    def __init__(self, request: ModelRequest) -> None:
        self.request = request
        self._checked = False
        self._adapter: LoadedModel | None = None
        self.load_seconds: float | None = None
        self.identity: dict[str, Any] | None = None  # file-based cache identity, if known

    @property
    def model_id(self) -> str:
        return self.request.model_id

    @property
    def dtype(self) -> Dtype:
        return self.request.dtype

    @property
    def loaded(self) -> bool:
        return self._adapter is not None

    def check_files(self) -> None:
        """Refuse local files other than those the run was queued with (once per run); before
        anything reads them, the embedding cache's identity included."""
        if not self._checked:
            self.request.check_files()
            self._checked = True

    def get(self) -> LoadedModel:
        if self._adapter is None:
            self.check_files()
            t0 = time.perf_counter()
            self._adapter = self.request.load()
            self.load_seconds = time.perf_counter() - t0
        return self._adapter

    def fingerprint(self) -> dict[str, Any] | None:
        if self._adapter is not None:
            return self._adapter.fingerprint().as_dict()
        # Everything came from the embedding cache: record what identified the model.
        return {**self.identity, "loaded": False} if self.identity else None

    def resolved_device(self) -> Device | None:
        return self._adapter.device if self._adapter is not None else None
