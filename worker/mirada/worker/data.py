"""Image decoding and preprocessing in DataLoader workers, overlapped with model compute.

`decode_rgb` is the one decoder: the DataLoader path reads files, the Ray engine
(mirada.worker.ray_engine) decodes bytes shipped from the worker, with the same result."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

# torch is imported where batches are built, not here: a worker that registers, claims and
# heartbeats (or runs a task that needs no images) starts without paying for it.


class CorruptImageError(Exception):
    pass


def decode_rgb(
    source: Path | bytes, name: str | Path, *, draft: tuple[int, int] | None = None
) -> Any:
    """A PIL RGB image from a file or its bytes; CorruptImageError naming `name` otherwise.

    `draft` (width, height), for JPEGs only: let the decoder scale down by 1/2, 1/4 or 1/8
    while both sides stay at least that size (PIL's Image.draft), which skips most of the
    decoding work. Not exact: the worker never drafts (mirada.worker.tasks.input_pipeline's
    fast decoder does)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            if draft is not None and im.format == "JPEG":
                im.draft("RGB", draft)
            return im.convert("RGB")
    except Exception as exc:  # decoding errors come in many types; name the file
        raise CorruptImageError(
            f"cannot decode image {name}: {exc}. Re-import the dataset or remove this image."
        ) from exc


class TransformedFile:
    """path -> `transform(decode_rgb(path))`: what the worker feeds a model, as one picklable
    callable (DataLoader workers; mirada.worker.tasks.input_pipeline times it)."""

    def __init__(self, transform: Callable[[Any], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, path: Path) -> torch.Tensor:
        return self.transform(decode_rgb(path, path))


class _Files:
    """A map-style dataset (all DataLoader needs is __len__ and __getitem__)."""

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], torch.Tensor]) -> None:
        self.paths = list(paths)
        self.load = load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.load(self.paths[index])


def loader_workers(n_items: int, batch_size: int) -> int:
    # Forking loader workers costs ~0.2 s; only worth it when there is something to overlap.
    if n_items <= 2 * batch_size:
        return 0
    return min(2, os.cpu_count() or 1)


def image_batches(
    paths: Sequence[Path],
    transform: Callable[[Any], torch.Tensor],
    batch_size: int,
    *,
    pin_memory: bool = False,
    num_workers: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start index, pixel batch) in order: each file decoded, then `transform`ed."""
    return file_batches(
        paths,
        TransformedFile(transform),
        batch_size,
        pin_memory=pin_memory,
        num_workers=num_workers,
    )


def file_batches(
    paths: Sequence[Path],
    load: Callable[[Path], torch.Tensor],
    batch_size: int,
    *,
    pin_memory: bool = False,
    num_workers: int | None = None,
) -> Generator[tuple[int, torch.Tensor], None, None]:
    """Yield (start index, batch of `load(path)`) in order, with the worker's DataLoader
    settings (`loader_workers` unless `num_workers` is given)."""
    from torch.utils.data import DataLoader

    workers = loader_workers(len(paths), batch_size) if num_workers is None else num_workers
    # a duck-typed map-style dataset: subclassing torch's Dataset would import torch above
    dataset = cast("Dataset[torch.Tensor]", _Files(paths, load))
    loader: DataLoader[torch.Tensor] = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
    )
    start = 0
    for batch in loader:
        yield start, batch
        start += len(batch)
