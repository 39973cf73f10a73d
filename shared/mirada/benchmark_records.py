"""What a benchmark run stores about its measurement, as types: the "variants" artifact (one
`VariantRecord` per measured configuration, the reference first) and the "measurement" artifact
(the `Measurement`: conditions it was taken under, contention, the input pipeline's rate).

Written by `mirada.worker.tasks.benchmark`; read by `mirada show`, the Hardware page and bundles
through `load_records` / `load_measurement`, never as raw JSON. A record from an older Mirada
reads with its missing fields at their defaults (None, empty, False), so runs measured before
rounds and intervals existed still display; a field of the wrong type is an error naming it.

Units: rates in items per second, times in ms per item (latency) or seconds, memory in MB;
`task_metrics` values and deltas in points (percent for accuracies and recalls, caption scores
times 100), so one tolerance reads the same for every task.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mirada.domain import Dtype
from mirada.errors import MiradaError

Interval = tuple[float, float]  # [low, high] in JSON

# A measurement whose other processes used at least this share of its CPUs is `contended`.
CONTENDED_CPU_SHARE = 0.10


@dataclass(frozen=True)
class BatchRow:
    """One operation at one batch size, after warm-up: the timed rounds and what they give."""

    op: str
    batch_size: int
    repeats: int  # timed batches (one per round) behind the figures
    throughput_per_s: float  # items / total seconds of the timed batches
    latency_p50_ms: float  # per item
    latency_p95_ms: float
    peak_rss_mb: float | None = None  # the whole process (what older runs recorded)
    cuda_max_allocated_mb: float | None = None
    first_call_s: float | None = None  # first warm-up batch (includes compiling, if compiled)
    throughput_ci: Interval | None = None  # 95%, from the same timed batches
    latency_p50_ci: Interval | None = None
    speedup: float | None = None  # median of per-round paired rate ratios over the reference
    speedup_ci: Interval | None = None  # bootstrap over rounds
    converged: bool | None = None  # the throughput CI reached the target within the budget
    cpu_efficiency: float | None = None  # median process CPU / (wall x threads), CPU only
    added_peak_mb: float | None = None  # weights plus activations this variant adds
    batch_seconds: tuple[float, ...] = ()  # every timed batch, in round order


@dataclass(frozen=True)
class Agreement:
    mean: float
    min: float
    n: int


@dataclass(frozen=True)
class TaskMetric:
    """A task metric of a variant against the reference on the same items, in points."""

    value: float
    reference: float
    delta: float  # value - reference
    delta_ci: Interval | None
    p_value: float | None
    test: str  # "mcnemar_exact" (0/1 outcomes) or "paired_bootstrap"
    n: int  # items (images, or captions for t2i) compared
    changed: int | None = None  # items whose outcome differs from the reference's


@dataclass(frozen=True)
class VariantRecord:
    """What `mirada show --json` lists under `variants` (keys are a stable interface)."""

    name: str
    dtype: Dtype | None
    compile: bool = False
    channels_last: bool = False
    threads: int | None = None  # intra-op threads it ran on
    reference: bool = False  # what speed-ups and agreement are measured against
    requested: bool = True  # False: added as the reference
    available: bool = True
    unavailable_reason: str | None = None
    images_per_s: float | None = None  # image_encode at the run's largest batch size
    texts_per_s: float | None = None
    captions_per_s: float | None = None
    speedup_vs_fp32: float | None = None  # same as `speedup` (the older key)
    min_cosine_to_fp32: float | None = None  # over image and text embeddings
    mean_cosine_to_fp32: float | None = None
    image_cosine_to_fp32: Agreement | None = None
    text_cosine_to_fp32: Agreement | None = None
    caption_identical_share: float | None = None
    caption_bleu4_to_fp32: float | None = None
    agreement_items: int | None = None
    setup_s: float | None = None  # copying and casting the weights
    compile_s: float | None = None  # first calls beyond one steady-state batch (+compile)
    batches: tuple[BatchRow, ...] = ()
    # since rounds (issue 21); None/empty/False in older records
    images_per_s_ci: Interval | None = None
    texts_per_s_ci: Interval | None = None
    captions_per_s_ci: Interval | None = None
    speedup: float | None = None  # the speed op (image_encode, else caption) at the largest batch
    speedup_ci: Interval | None = None
    contended: bool = False
    rounds: int | None = None  # timed rounds of the speed op at the largest batch size
    task_metrics: dict[str, TaskMetric] = field(default_factory=dict)
    top1_changed: int | None = None  # images whose top-1 caption differs from the reference's
    accuracy_items: int | None = None  # images the task metrics ran on
    weights_mb: float | None = None
    added_peak_mb: float | None = None  # weights plus peak activations, at the largest batch
    tf32: bool = False
    fast_decode: bool = False
    decode_images_per_s: float | None = None  # its decode+preprocess, one core


@dataclass(frozen=True)
class InputPipeline:
    """Decode plus preprocess on the dataset's real files, against the model-only rate."""

    images: int  # files decoded per pass
    batch_size: int
    per_core_images_per_s: float
    per_core_ci: Interval | None = None
    loader_images_per_s: float | None = None  # with the worker's DataLoader settings
    loader_workers: int = 0
    model_images_per_s: float | None = None  # the reference's image_encode, largest batch
    bound: str | None = None  # "input" or "model": which one limits the end-to-end rate
    fast_decode_per_core_images_per_s: float | None = None


@dataclass(frozen=True)
class Measurement:
    """The conditions a benchmark run was measured under (`mirada show --json`: measurement)."""

    contended: bool
    reason: str | None = None  # why the recommendation is withheld, when contended
    load_before: float | None = None  # 1-minute load average
    load_after: float | None = None
    other_cpu_share: float | None = None  # share of this process's CPUs other work used, 0-1
    cpu_efficiency: float | None = None  # median process CPU / (wall x threads), CPU only
    cpus: int | None = None  # CPUs this process may run on
    threads: int | None = None  # torch intra-op threads
    interop_threads: int | None = None
    cpu_model: str | None = None
    gpu_name: str | None = None
    gpu_clocks_mhz: dict[str, float] | None = None  # {"sm": ..., "memory": ...} if readable
    max_seconds: float | None = None  # budget per operation and batch size
    target_rel_ci: float | None = None  # rounds stop when every CI half-width is within this
    min_rounds: int | None = None
    seconds: float | None = None  # wall time of the whole measurement
    input_pipeline: InputPipeline | None = None


def contention_reason(other_cpu_share: float) -> str:
    """The sentence that withholds a recommendation measured under contention."""
    return (
        f"measured under CPU contention: {other_cpu_share:.0%} of the cores were busy with other "
        "work; re-run on an idle machine"
    )


# ---- JSON ------------------------------------------------------------------------------------

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """A record (or list/dict of them) as plain JSON values: tuples as lists, enums as strings,
    NaN as null, an interval (tuple) with a non-finite end as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple) and any(
        isinstance(v, float) and not math.isfinite(v) for v in value
    ):
        return None  # an interval with an unbounded end (too few, too noisy batches)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Dtype):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dump_records(records: Sequence[VariantRecord]) -> bytes:
    return json.dumps(to_json(list(records))).encode()


def dump_measurement(measurement: Measurement) -> bytes:
    return json.dumps(to_json(measurement)).encode()


def load_records(blob: bytes | str, where: str = "variants artifact") -> list[VariantRecord]:
    """The records of a "variants" artifact, older ones included (missing fields default)."""
    raw = _json(blob, where)
    if not isinstance(raw, list):
        raise MiradaError(f"{where}: expected a list of variant records, got {type(raw).__name__}")
    return [from_json(VariantRecord, r, f"{where}[{i}]") for i, r in enumerate(raw)]


def load_measurement(blob: bytes | str, where: str = "measurement artifact") -> Measurement:
    return from_json(Measurement, _json(blob, where), where)


def _json(blob: bytes | str, where: str) -> Any:
    try:
        return json.loads(blob)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MiradaError(f"{where}: not valid JSON ({exc})") from exc


def from_json(cls: type[T], raw: Any, where: str) -> T:
    """`cls` (a dataclass above) from its JSON object; unknown keys are ignored (a newer
    Mirada's additions), missing ones take the field's default."""
    if not isinstance(raw, Mapping):
        raise MiradaError(f"{where}: expected an object, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in raw:
            kwargs[f.name] = _convert(hints[f.name], raw[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise MiradaError(f"{where}: missing required field {f.name!r}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise MiradaError(f"{where}: must not be null")
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _convert(a, value, where)
            except MiradaError as exc:
                errors.append(str(exc))
        raise MiradaError(errors[0])
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise MiradaError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise MiradaError(f"{where}: expected {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise MiradaError(f"{where}: expected an object, got {type(value).__name__}")
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise MiradaError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)  # 1e999 parses to inf, and int(inf) raises
            or value != int(value)
        ):
            raise MiradaError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        finite = isinstance(value, int | float) and math.isfinite(value)
        if isinstance(value, bool) or not finite:
            raise MiradaError(f"{where}: expected a number, got {value!r}")  # inf, nan too
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise MiradaError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is Dtype:
        try:
            return Dtype(value)
        except ValueError as exc:
            raise MiradaError(f"{where}: unknown dtype {value!r}") from exc
    raise MiradaError(f"{where}: cannot read a {hint!r}")  # a field type this reader lacks
