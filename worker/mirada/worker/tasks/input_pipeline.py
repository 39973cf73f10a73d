"""The input pipeline as a measured stage: decoding plus preprocessing on the dataset's own
files, against which the model-only rate is compared (which of the two bounds a run).

- `reference_decoder(adapter)`: a file as the worker feeds it to the model (`decode_rgb`, then
  the adapter's own `image_transform`). Exact by definition.
- `fast_decoder(adapter)`: JPEG draft decoding (the decoder scales down by 1/2, 1/4 or 1/8
  while the image stays at least the resize target) and torch tensor ops (antialiased resize,
  centre crop, rescale, normalise) with the model's own parameters, read off its transform
  objects: a torchvision Compose (open_clip) or a transformers image processor. Close to the
  reference, never equal on JPEGs, so it is an opt-in variant measured with its accuracy
  cost, never the default. A transform it cannot reproduce step by step raises
  VariantUnavailable naming it.
- `measure_input_pipeline`: images/s on one core (passes over the files until the CI is within
  ±5% or the budget is spent) and with the worker's DataLoader settings (one pass).

Memory stays bounded: at most MAX_FILES distinct files per pass, each decoded tensor dropped
as soon as it is produced.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

from mirada.benchmark_records import InputPipeline
from mirada.metrics.speed import TARGET_REL_CI, converged, throughput
from mirada.vlm.base import LoadedModel
from mirada.vlm.torch_common import HFImageTransform, VariantUnavailable
from mirada.worker.data import TransformedFile, decode_rgb, file_batches, loader_workers

MAX_FILES = 256  # distinct files per pass: bounds time and memory on large datasets
MIN_PASSES = 3  # per-core passes before the CI may stop them (budget permitting)
# Resize modes torch's tensor resize implements (PIL has BOX, HAMMING, ...: not reproduced).
TENSOR_RESIZE = (
    InterpolationMode.NEAREST_EXACT,
    InterpolationMode.BILINEAR,
    InterpolationMode.BICUBIC,
)


# ---- preprocessing steps, on a CHW tensor ------------------------------------------------


class Step(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Resize:
    """Antialiased tensor resize: (edge,) puts the shorter side at `edge` (the longer one at
    int(edge * long / short), as torchvision and transformers both compute it); (h, w) is
    exact."""

    size: tuple[int] | tuple[int, int]
    interpolation: InterpolationMode

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return tvf.resize(x, list(self.size), interpolation=self.interpolation, antialias=True)

    @property
    def draft(self) -> tuple[int, int]:
        """The (width, height) a JPEG may be draft-decoded down to: never below the target."""
        if len(self.size) == 1:
            return self.size[0], self.size[0]
        return self.size[1], self.size[0]


@dataclass(frozen=True)
class CenterCrop:
    """A centred (h, w) crop, zero-padded first where the image is smaller (both libraries
    pad alike). torchvision rounds the offset (side - crop) / 2, transformers truncates it."""

    size: tuple[int, int]
    round_offsets: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        height, width = x.shape[-2:]
        if h > height or w > width:
            x = tvf.center_crop(x, [max(h, height), max(w, width)])  # pads only
            height, width = x.shape[-2:]
        return tvf.crop(x, self._offset(height, h), self._offset(width, w), h, w)

    def _offset(self, side: int, crop: int) -> int:
        half = (side - crop) / 2.0
        return round(half) if self.round_offsets else int(half)


@dataclass(frozen=True)
class Rescale:
    """uint8 -> float32, times `factor` (1/255 for ToTensor; 1 when folded into Normalize)."""

    factor: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        return x if self.factor == 1.0 else x.mul_(self.factor)


@dataclass(frozen=True)
class Normalize:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return tvf.normalize(x, list(self.mean), list(self.std))


@dataclass(frozen=True)
class PreprocessSpec:
    """A model's preprocessing as tensor steps, applied in order to the decoded uint8 image."""

    steps: tuple[Step, ...]

    @property
    def draft(self) -> tuple[int, int] | None:
        """Draft-decode only when the first step resizes (a crop first would see less)."""
        first = self.steps[0] if self.steps else None
        return first.draft if isinstance(first, Resize) else None


def _tensor_mode(mode: InterpolationMode, where: str) -> InterpolationMode:
    # PIL's NEAREST picks the pixel centre, as torch's NEAREST_EXACT (torch's NEAREST floors)
    mode = InterpolationMode.NEAREST_EXACT if mode is InterpolationMode.NEAREST else mode
    if mode not in TENSOR_RESIZE:
        raise VariantUnavailable(f"{where}: no tensor resize reproduces {mode.value} resampling")
    return mode


def _compose_steps(transforms: Sequence[Any], where: str) -> tuple[Step, ...]:
    """Steps of a torchvision Compose as open_clip builds it (Resize, CenterCrop, RGB
    conversion, ToTensor, Normalize; v1 or v2 classes)."""
    from torchvision import transforms as v1
    from torchvision.transforms import v2

    steps: list[Step] = []
    for t in transforms:
        name = type(t).__name__
        if isinstance(t, v1.Resize | v2.Resize):
            if t.max_size is not None:
                raise VariantUnavailable(f"{where}: Resize with max_size is not reproduced")
            size = [t.size] if isinstance(t.size, int) else list(t.size)
            if len(size) not in (1, 2):
                raise VariantUnavailable(f"{where}: Resize to {t.size!r} is not reproduced")
            mode = _tensor_mode(t.interpolation, where)
            steps.append(Resize((size[0],) if len(size) == 1 else (size[0], size[1]), mode))
        elif isinstance(t, v1.CenterCrop | v2.CenterCrop):
            h, w = (t.size, t.size) if isinstance(t.size, int) else tuple(t.size)
            steps.append(CenterCrop((int(h), int(w)), round_offsets=True))
        elif isinstance(t, v1.ToTensor):  # open_clip's MaybeToTensor is one
            steps.append(Rescale(1 / 255))
        elif isinstance(t, v1.Normalize | v2.Normalize):
            steps.append(Normalize(tuple(map(float, t.mean)), tuple(map(float, t.std))))
        elif getattr(t, "mode", None) == "RGB" and "Convert" in name:
            continue  # open_clip's MaybeConvertMode("RGB"): the decoder already gives RGB
        else:
            raise VariantUnavailable(f"{where}: cannot reproduce the transform {name}")
    if not any(isinstance(step, Rescale) for step in steps):
        raise VariantUnavailable(f"{where}: it gives no tensor (no ToTensor step)")
    return tuple(steps)


# What a transformers image processor's standard pipeline does, by its `do_*` flags.
_HF_FLAGS = {"do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"}


def _processor_steps(processor: Any, where: str) -> tuple[Step, ...]:
    """Steps of a transformers image processor that runs the backend's standard pipeline
    (resize, centre crop, rescale and normalise, fused as transformers fuses them)."""
    from transformers.image_processing_backends import PilBackend, TorchvisionBackend
    from transformers.image_utils import pil_torch_interpolation_mapping

    cls = type(processor)
    backend = next((b for b in (TorchvisionBackend, PilBackend) if isinstance(processor, b)), None)
    if backend is None:
        raise VariantUnavailable(f"{where}: not a transformers image processor backend")
    for method in ("preprocess", "_preprocess"):
        if getattr(cls, method) is not getattr(backend, method):
            raise VariantUnavailable(f"{where}: it has its own preprocessing steps ({method})")
    extra = sorted(
        name
        for name in dir(processor)
        if name.startswith("do_") and name not in _HF_FLAGS and getattr(processor, name) is True
    )
    if extra:
        raise VariantUnavailable(f"{where}: cannot reproduce {', '.join(extra)}")

    steps: list[Step] = []
    if processor.do_resize:
        size = processor.size
        edge, h, w = (getattr(size, k, None) for k in ("shortest_edge", "height", "width"))
        others = [k for k in ("longest_edge", "max_height", "max_width") if getattr(size, k, None)]
        target: tuple[int] | tuple[int, int]
        if edge and not others:
            target = (int(edge),)
        elif h and w and not others:
            target = (int(h), int(w))
        else:
            raise VariantUnavailable(f"{where}: cannot reproduce the resize to {size}")
        resample = processor.resample
        if not isinstance(resample, InterpolationMode):  # a PIL filter, or None: bilinear
            resample = pil_torch_interpolation_mapping[2 if resample is None else resample]
        mode = _tensor_mode(resample, where)
        steps.append(Resize(target, mode))
    if processor.do_center_crop:
        crop = processor.crop_size
        steps.append(CenterCrop((int(crop.height), int(crop.width)), round_offsets=False))
    factor = float(processor.rescale_factor) if processor.do_rescale else 1.0
    if processor.do_normalize:
        # transformers folds the rescale into the mean and std: (x - m/f) / (s/f)
        mean = (torch.tensor(processor.image_mean) * (1.0 / factor)).tolist()
        std = (torch.tensor(processor.image_std) * (1.0 / factor)).tolist()
        steps += [Rescale(1.0), Normalize(tuple(mean), tuple(std))]
    else:
        steps.append(Rescale(factor))
    return tuple(steps)


def preprocess_spec(transform: Callable[[Any], torch.Tensor]) -> PreprocessSpec:
    """The tensor steps that reproduce `transform` (an adapter's image_transform)."""
    from torchvision import transforms as v1
    from torchvision.transforms import v2

    if isinstance(transform, HFImageTransform):
        where = type(transform.processor).__name__
        return PreprocessSpec(_processor_steps(transform.processor, where))
    if isinstance(transform, v1.Compose | v2.Compose):
        return PreprocessSpec(_compose_steps(transform.transforms, "Compose"))
    raise VariantUnavailable(f"cannot read the preprocessing steps of {type(transform).__name__}")


class FastDecoder:
    """path -> the model's input tensor, via draft decoding and tensor ops (picklable)."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = spec

    def __call__(self, path: Path) -> torch.Tensor:
        x = tvf.pil_to_tensor(decode_rgb(path, path, draft=self.spec.draft))
        for step in self.spec.steps:
            x = step(x)
        return x


def reference_decoder(adapter: LoadedModel) -> Callable[[Path], torch.Tensor]:
    """A file exactly as the worker feeds it to `adapter`."""
    return TransformedFile(adapter.image_transform)


def fast_decoder(adapter: LoadedModel) -> Callable[[Path], torch.Tensor]:
    """Draft decoding plus tensor preprocessing with `adapter`'s own parameters;
    VariantUnavailable when its transform has a step this cannot reproduce."""
    try:
        return FastDecoder(preprocess_spec(adapter.image_transform))
    except VariantUnavailable as exc:
        raise VariantUnavailable(f"+fast_decode for {adapter.model_id}: {exc}") from exc


# ---- measuring ---------------------------------------------------------------------------


def sample_files(paths: Sequence[Path], limit: int = MAX_FILES) -> list[Path]:
    """At most `limit` files, evenly spread over `paths` (deterministic)."""
    step = max(1, math.ceil(len(paths) / limit))
    return list(paths)[::step][:limit]


@dataclass(frozen=True)
class CoreRate:
    per_s: float
    ci: tuple[float, float] | None
    passes: int


def per_core_rate(files: Sequence[Path], decode: Callable[[Path], Any], seconds: float) -> CoreRate:
    """Images/s of `decode` on one thread: passes over `files` (after one warm-up file) until
    the 95% CI is within ±5% (at least MIN_PASSES) or `seconds` are spent (at least one pass).
    torch's intra-op thread count is 1 meanwhile, and restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        decode(files[0])  # lazy imports, first allocations
        passes: list[float] = []
        deadline = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            for path in files:
                decode(path)  # the pixels are dropped at once: memory stays flat
            passes.append(time.perf_counter() - t0)
            if time.perf_counter() >= deadline:
                break
            if len(passes) >= MIN_PASSES and converged(passes, TARGET_REL_CI):
                break
    finally:
        torch.set_num_threads(threads)
    rate = throughput(passes, len(files))
    return CoreRate(rate.per_s, rate.ci, len(passes))


def loader_rate(
    files: Sequence[Path], decode: Callable[[Path], Any], batch_size: int, seconds: float
) -> tuple[float, int]:
    """(images/s, loader workers) through the worker's DataLoader settings, in steady state:
    timed from the first batch's arrival, so the workers' start (paid once per run, not per
    image) does not make a short pass look input-bound against the model's steady rate. With a
    single batch there is no steady state: the whole pass counts. Stops early after `seconds`."""
    workers = loader_workers(len(files), batch_size)
    done = 0
    t0 = time.perf_counter()
    first: tuple[float, int] | None = None  # (when, images) at the first batch
    batches = file_batches(files, decode, batch_size, num_workers=workers)
    try:
        for _, batch in batches:
            done += len(batch)
            del batch
            now = time.perf_counter()
            if first is None:
                first = (now, done)
            if now - t0 >= seconds:
                break
    finally:
        batches.close()  # shuts the loader's workers down when stopped early
    end = time.perf_counter()
    if first is not None and done > first[1]:
        return (done - first[1]) / (end - first[0]), workers
    return done / (end - t0), workers


def measure_input_pipeline(
    paths: Sequence[Path],
    decode: Callable[[Path], Any],
    *,
    batch_size: int,
    max_seconds: float,
    fast: Callable[[Path], Any] | None = None,
) -> InputPipeline:
    """Decode plus preprocess rates on (up to MAX_FILES of) `paths`: per core for `decode`
    (and `fast`, when given), and with the worker's loader settings for `decode`. The budget
    `max_seconds` is shared equally by these measurements; each may overrun it by one pass.
    model_images_per_s and bound are left for the caller, who measured the model."""
    if not paths:
        raise ValueError("no image files to measure the input pipeline on")
    files = sample_files(paths)
    share = max_seconds / (3 if fast is not None else 2)
    reference = per_core_rate(files, decode, share)
    quick = per_core_rate(files, fast, share) if fast is not None else None
    loader_per_s, workers = loader_rate(files, decode, batch_size, share)
    return InputPipeline(
        images=len(files),
        batch_size=batch_size,
        per_core_images_per_s=reference.per_s,
        per_core_ci=reference.ci,
        loader_images_per_s=loader_per_s,
        loader_workers=workers,
        fast_decode_per_core_images_per_s=quick.per_s if quick is not None else None,
    )
