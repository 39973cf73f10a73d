"""Precision variants of one benchmark run: the contenders, what each measured, and their
agreement with the fp32 eager reference.

Every variant is measured on the same inputs, in interleaved rounds with the others (see
`mirada.worker.tasks.benchmark`), so load from other processes on a shared machine biases no
variant, and speed-ups pair each round's batches. A variant that this device or model cannot
run is recorded as unavailable with the reason; only the reference's failures end the run,
since without it nothing can be compared.

The run stores the records (mirada.benchmark_records.VariantRecord) as the JSON artifact
"variants" (mirada.results.VARIANTS_ARTIFACT): a list, one object per variant, the reference
first (a run without --variants has one, its dtype); `mirada show --json` returns it as
`variants`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirada.benchmark_records import Agreement, BatchRow, InputPipeline, VariantRecord
from mirada.domain import Dtype
from mirada.metrics.agreement import caption_agreement, cosine_agreement
from mirada.metrics.names import CAPTION, IMAGE_ENCODE, TEXT_ENCODE
from mirada.run_options import Variant, measured_variants
from mirada.vlm.base import LoadedModel

EMBED_OPS = (IMAGE_ENCODE, TEXT_ENCODE)
CAPTION_OP = CAPTION
_REASON_CHARS = 400

Operation = Callable[[Any, Sequence[str]], Any]  # (pixels, texts) -> embeddings or captions


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` for the block (unchanged for None)."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def failure(where: str, exc: BaseException) -> str:
    """A short reason: where it failed and the exception's first line."""
    lines = str(exc).strip().splitlines()
    reason = f"{where}: {type(exc).__name__}" + (f": {lines[0]}" if lines else "")
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "…"


@dataclass(frozen=True)
class Decoders:
    """Image file -> model-ready pixels [C, H, W]: the model's own preprocessing, and the fast
    one for +fast_decode variants (None, with the reason, where it cannot reproduce the
    model's preprocessing)."""

    reference: Callable[[Path], Any]
    fast: Callable[[Path], Any] | None = None
    fast_unavailable: str | None = None


def decoders(adapter: LoadedModel) -> Decoders:
    """The run's decoders (mirada.worker.tasks.input_pipeline)."""
    from mirada.vlm.torch_common import VariantUnavailable
    from mirada.worker.tasks.input_pipeline import fast_decoder, reference_decoder

    reference = reference_decoder(adapter)
    try:
        return Decoders(reference, fast_decoder(adapter))
    except VariantUnavailable as exc:
        return Decoders(reference, fast_unavailable=str(exc))


@dataclass
class Contender:
    """One variant under measurement. `variant` is None for a plain run (the run's dtype), whose
    one contender is its own reference.

    `ops` run inside the variant's settings (threads, TF32), so whoever calls them (the timed
    rounds, the accuracy stage) measures the variant as configured."""

    name: str
    variant: Variant | None
    adapter: LoadedModel | None
    ops: dict[str, Operation]
    requested: bool = True
    unavailable: str | None = None
    setup_s: float | None = None
    rows: list[BatchRow] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # op -> output at the largest batch
    # image file -> model-ready pixel tensor [C, H, W]: the adapter's own preprocessing
    # (mirada.worker.tasks.input_pipeline.reference_decoder), or the +fast_decode one
    decode: Callable[[Path], Any] | None = None
    weights_bytes: int | None = None  # its torch module's parameters and buffers

    @property
    def available(self) -> bool:
        return self.unavailable is None

    @property
    def reference(self) -> bool:
        return self.variant is None or self.variant.is_reference

    @property
    def dtype(self) -> Dtype | None:
        if self.variant is not None:
            return self.variant.dtype
        return self.adapter.dtype if self.adapter is not None else None

    @property
    def threads(self) -> int | None:
        return self.variant.threads if self.variant is not None else None

    @property
    def channels_last(self) -> bool:
        return self.variant is not None and self.variant.channels_last

    @property
    def compiled(self) -> bool:
        return self.variant is not None and self.variant.compile

    @property
    def tf32(self) -> bool:
        return self.variant is not None and self.variant.tf32

    @property
    def fast_decode(self) -> bool:
        return self.variant is not None and self.variant.fast_decode

    @contextmanager
    def settings(self) -> Iterator[None]:
        """Its intra-op threads and (CUDA) TF32 mode, for the block."""
        from mirada.vlm.torch_common import tf32_matmuls

        device = self.adapter.device if self.adapter is not None else None
        with threads(self.threads):
            if device is None:
                yield
            else:
                with tf32_matmuls(device, self.tf32):
                    yield

    def use(
        self, adapter: LoadedModel, operations: Callable[[LoadedModel], dict[str, Operation]]
    ) -> None:
        """Measure `adapter`: its operations, run inside this variant's settings."""
        from mirada.vlm.torch_common import module_bytes

        self.adapter = adapter
        self.weights_bytes = module_bytes(adapter)

        def configured(fn: Operation) -> Operation:
            def run(pixels: Any, texts: Sequence[str]) -> Any:
                with self.settings():
                    return fn(pixels, texts)

            return run

        self.ops = {op: configured(fn) for op, fn in operations(adapter).items()}

    def fail(self, where: str, exc: BaseException) -> None:
        """Record why this variant cannot run; the reference's failure ends the run."""
        if self.reference:
            raise exc
        self.unavailable = failure(where, exc)


def plain_contender(
    adapter: LoadedModel,
    operations: Callable[[LoadedModel], dict[str, Operation]],
    decode: Decoders,
) -> Contender:
    """A run without --variants: one contender, the run's model as loaded."""
    c = Contender(str(adapter.dtype), None, None, {}, decode=decode.reference)
    c.use(adapter, operations)
    return c


def build_contenders(
    base: LoadedModel,
    requested: Sequence[Variant],
    operations: Callable[[LoadedModel], dict[str, Operation]],
    decode: Decoders,
) -> list[Contender]:
    """The measured variants' adapters (the fp32 eager reference first, added when not
    requested): the base (fp32) adapter itself where only threads, TF32 or decoding differ, a
    cast copy otherwise; one that cannot be built is unavailable with the reason."""
    from mirada.vlm.torch_common import VariantUnavailable, tf32_unavailable, variant_adapter

    out: list[Contender] = []
    for v in measured_variants(requested):
        c = Contender(v.name, v, None, {}, requested=v in requested, decode=decode.reference)
        if v.fast_decode:
            c.decode = decode.fast
            c.unavailable = decode.fast_unavailable
        if v.tf32 and c.available:
            c.unavailable = tf32_unavailable(base.device)
        if not c.available:
            out.append(c)
            continue
        if v.dtype == base.dtype and not v.compile and not v.channels_last:
            c.use(base, operations)
        else:
            t0 = time.perf_counter()
            try:
                copy = variant_adapter(
                    base, v.dtype, channels_last=v.channels_last, compile=v.compile
                )
                c.use(copy, operations)
            except VariantUnavailable as exc:
                c.unavailable = str(exc)
            except Exception as exc:  # whatever casting/copying raised on this device
                c.fail("preparing the weights", exc)
            c.setup_s = time.perf_counter() - t0
        out.append(c)
    return out


def _cosines(ref: Contender, c: Contender, n: int) -> dict[str, Agreement]:
    out: dict[str, Agreement] = {}
    for op in EMBED_OPS:
        if op in ref.outputs and op in c.outputs:
            a = cosine_agreement(ref.outputs[op][:n], c.outputs[op][:n])
            out[op] = Agreement(a.mean, a.min, a.n)
    return out


def _row(c: Contender, op: str, batch_size: int) -> BatchRow | None:
    return next((r for r in c.rows if r.op == op and r.batch_size == batch_size), None)


def _compile_s(c: Contender) -> float | None:
    if not c.compiled or not c.rows:
        return None
    extra = 0.0
    for r in c.rows:
        if r.first_call_s is not None:
            steady = r.batch_size / r.throughput_per_s if r.throughput_per_s else 0.0
            extra += max(0.0, r.first_call_s - steady)
    return extra


def _mb(n_bytes: int | None) -> float | None:
    return None if n_bytes is None else n_bytes / 2**20


@dataclass(frozen=True)
class RunFacts:
    """What every record of a run shares."""

    largest: int  # the largest batch size
    n_items: int  # distinct dataset items in the largest batch (agreement rows)
    default_threads: int
    contended: bool = False
    costs: Mapping[str, Any] = field(default_factory=dict)  # name -> accuracy_cost's CostResult
    pipeline: InputPipeline | None = None


def records(contenders: Sequence[Contender], facts: RunFacts) -> list[VariantRecord]:
    """One record per contender; agreement on the first `n_items` rows of the largest batch
    (the distinct dataset items it holds); rates, intervals and speed-ups at the largest
    batch size."""
    ref = next((c for c in contenders if c.reference and c.available), None)
    speed_op = IMAGE_ENCODE if ref is not None and IMAGE_ENCODE in ref.ops else CAPTION_OP
    n, big = facts.n_items, facts.largest
    out: list[VariantRecord] = []
    for c in contenders:
        v = c.variant or Variant(c.dtype or Dtype.fp32)
        cos = _cosines(ref, c, n) if ref is not None and c.available else {}
        captions = (
            caption_agreement(ref.outputs[CAPTION_OP][:n], c.outputs[CAPTION_OP][:n])
            if ref is not None and CAPTION_OP in ref.outputs and CAPTION_OP in c.outputs
            else None
        )
        rows = {op: _row(c, op, big) for op in (IMAGE_ENCODE, TEXT_ENCODE, CAPTION_OP)}
        speed_row = rows[speed_op]
        speedup: float | None = None
        speedup_ci: tuple[float, float] | None = None
        if speed_row is not None:  # the reference against itself: exactly 1
            speedup = 1.0 if c.reference else speed_row.speedup
            speedup_ci = (1.0, 1.0) if c.reference else speed_row.speedup_ci
        added = [r.added_peak_mb for r in c.rows if r.batch_size == big and r.added_peak_mb]
        cost = facts.costs.get(c.name)
        pipeline = facts.pipeline
        decode_rate = (
            None
            if pipeline is None
            else pipeline.fast_decode_per_core_images_per_s
            if c.fast_decode
            else pipeline.per_core_images_per_s
        )
        out.append(
            VariantRecord(
                name=c.name,
                dtype=c.dtype,
                compile=v.compile,
                channels_last=v.channels_last,
                threads=v.threads or facts.default_threads,
                reference=c.reference,
                requested=c.requested,
                available=c.available,
                unavailable_reason=c.unavailable,
                images_per_s=_rate(rows[IMAGE_ENCODE]),
                texts_per_s=_rate(rows[TEXT_ENCODE]),
                captions_per_s=_rate(rows[CAPTION_OP]),
                images_per_s_ci=_ci(rows[IMAGE_ENCODE]),
                texts_per_s_ci=_ci(rows[TEXT_ENCODE]),
                captions_per_s_ci=_ci(rows[CAPTION_OP]),
                speedup_vs_fp32=speedup,
                speedup=speedup,
                speedup_ci=speedup_ci,
                rounds=speed_row.repeats if speed_row is not None else None,
                contended=facts.contended,
                min_cosine_to_fp32=min(a.min for a in cos.values()) if cos else None,
                mean_cosine_to_fp32=(
                    float(np.mean([a.mean for a in cos.values()])) if cos else None
                ),
                image_cosine_to_fp32=cos.get(IMAGE_ENCODE),
                text_cosine_to_fp32=cos.get(TEXT_ENCODE),
                caption_identical_share=(
                    cost.caption_identical_share
                    if cost is not None and cost.caption_identical_share is not None
                    else captions.identical_share
                    if captions
                    else None
                ),
                caption_bleu4_to_fp32=captions.bleu4 if captions else None,
                agreement_items=(n if (cos or captions) else None),
                setup_s=c.setup_s,
                compile_s=_compile_s(c),
                batches=tuple(c.rows),
                task_metrics=dict(cost.task_metrics) if cost is not None else {},
                top1_changed=cost.top1_changed if cost is not None else None,
                accuracy_items=cost.accuracy_items if cost is not None else None,
                weights_mb=_mb(c.weights_bytes),
                added_peak_mb=max(added) if added else None,
                tf32=v.tf32,
                fast_decode=v.fast_decode,
                decode_images_per_s=decode_rate if c.available else None,
            )
        )
    return out


def _rate(row: BatchRow | None) -> float | None:
    return row.throughput_per_s if row is not None else None


def _ci(row: BatchRow | None) -> tuple[float, float] | None:
    return row.throughput_ci if row is not None else None
