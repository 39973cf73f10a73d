"""Precision variants of one benchmark run: the contenders, what each measured, and their
agreement with the fp32 eager reference.

Every variant is measured on the same inputs, interleaved batch by batch with the others (see
`mirada.worker.tasks.benchmark`), so load from other processes on a shared machine biases no
variant. A variant that this device or model cannot run is recorded as unavailable with the
reason; only the reference's failures end the run, since without it nothing can be compared.

The run stores the records as the JSON artifact "variants" (mirada.results.VARIANTS_ARTIFACT):
a list, one object per variant, the reference first; `mirada show --json` returns it as
`variants`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mirada.domain import Dtype
from mirada.metrics.agreement import caption_agreement, cosine_agreement
from mirada.metrics.names import CAPTION, IMAGE_ENCODE, TEXT_ENCODE
from mirada.run_options import Variant, measured_variants
from mirada.vlm.base import LoadedModel

EMBED_OPS = (IMAGE_ENCODE, TEXT_ENCODE)
CAPTION_OP = CAPTION
_REASON_CHARS = 400

Operation = Callable[[Any, Sequence[str]], Any]  # (pixels, texts) -> embeddings or captions


@dataclass(frozen=True)
class BatchRow:
    """One operation at one batch size: the steady state after warm-up."""

    op: str
    batch_size: int
    repeats: int  # timed batches behind the figures
    throughput_per_s: float
    latency_p50_ms: float  # per item
    latency_p95_ms: float
    peak_rss_mb: float
    cuda_max_allocated_mb: float | None
    first_call_s: float | None  # the first warm-up batch (includes compiling, if compiled)


@dataclass(frozen=True)
class Agreement:
    mean: float
    min: float
    n: int


@dataclass
class VariantRecord:
    """What `mirada show --json` lists under `variants` (keys are a stable interface)."""

    name: str
    dtype: Dtype  # stored in the JSON artifact as its string
    compile: bool
    channels_last: bool
    threads: int  # intra-op threads it ran on
    reference: bool  # fp32 eager: what agreement is measured against
    requested: bool  # False: added as the reference
    available: bool
    unavailable_reason: str | None
    images_per_s: float | None  # image_encode at the run's largest batch size
    texts_per_s: float | None
    captions_per_s: float | None
    speedup_vs_fp32: float | None  # images/s (captions/s for captioners) over the reference's
    min_cosine_to_fp32: float | None  # over image and text embeddings
    mean_cosine_to_fp32: float | None
    image_cosine_to_fp32: Agreement | None
    text_cosine_to_fp32: Agreement | None
    caption_identical_share: float | None
    caption_bleu4_to_fp32: float | None
    agreement_items: int | None
    setup_s: float | None  # copying and casting the weights (wrapping for +compile, whose
    # first use also imports torch's compiler); None where it runs the loaded model itself
    compile_s: float | None  # first calls beyond one steady-state batch, summed (+compile)
    batches: list[BatchRow] = field(default_factory=list)


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


@dataclass
class Contender:
    """One variant under measurement. `variant` is None for a plain run (the run's dtype)."""

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

    @property
    def available(self) -> bool:
        return self.unavailable is None

    @property
    def reference(self) -> bool:
        return self.variant is not None and self.variant.is_reference

    @property
    def threads(self) -> int | None:
        return self.variant.threads if self.variant is not None else None

    @property
    def channels_last(self) -> bool:
        return self.variant is not None and self.variant.channels_last

    @property
    def compiled(self) -> bool:
        return self.variant is not None and self.variant.compile

    def fail(self, where: str, exc: BaseException) -> None:
        """Record why this variant cannot run; the reference's failure ends the run."""
        if self.reference or self.variant is None:
            raise exc
        self.unavailable = failure(where, exc)


def build_contenders(
    base: LoadedModel,
    requested: Sequence[Variant],
    operations: Callable[[LoadedModel], dict[str, Operation]],
) -> list[Contender]:
    """The measured variants' adapters (the fp32 eager reference first, added when not
    requested): the base (fp32) adapter itself where only threads differ, a cast copy
    otherwise; one that cannot be built is unavailable with the reason."""
    from mirada.vlm.torch_common import VariantUnavailable, variant_adapter

    out: list[Contender] = []
    for v in measured_variants(requested):
        c = Contender(v.name, v, None, {}, requested=v in requested)
        if v.dtype == base.dtype and not v.compile and not v.channels_last:
            c.adapter = base
        else:
            t0 = time.perf_counter()
            try:
                c.adapter = variant_adapter(
                    base, v.dtype, channels_last=v.channels_last, compile=v.compile
                )
            except VariantUnavailable as exc:
                c.unavailable = str(exc)
            except Exception as exc:  # whatever casting/copying raised on this device
                c.fail("preparing the weights", exc)
            c.setup_s = time.perf_counter() - t0
        if c.adapter is not None:
            c.ops = operations(c.adapter)
        out.append(c)
    return out


def _cosines(ref: Contender, c: Contender, n: int) -> dict[str, Agreement]:
    out: dict[str, Agreement] = {}
    for op in EMBED_OPS:
        if op in ref.outputs and op in c.outputs:
            a = cosine_agreement(ref.outputs[op][:n], c.outputs[op][:n])
            out[op] = Agreement(a.mean, a.min, a.n)
    return out


def _rate(c: Contender, op: str, batch_size: int) -> float | None:
    return next(
        (r.throughput_per_s for r in c.rows if r.op == op and r.batch_size == batch_size), None
    )


def _compile_s(c: Contender) -> float | None:
    if not c.compiled or not c.rows:
        return None
    extra = 0.0
    for r in c.rows:
        if r.first_call_s is not None:
            steady = r.batch_size / r.throughput_per_s if r.throughput_per_s else 0.0
            extra += max(0.0, r.first_call_s - steady)
    return extra


def records(
    contenders: Sequence[Contender], largest: int, n_items: int, default_threads: int
) -> list[VariantRecord]:
    """One record per contender; agreement on the first `n_items` rows of the largest batch
    (the distinct dataset items it holds)."""
    ref = next((c for c in contenders if c.reference and c.available), None)
    ref_speed_op = IMAGE_ENCODE if ref is not None and IMAGE_ENCODE in ref.ops else CAPTION_OP
    ref_rate = _rate(ref, ref_speed_op, largest) if ref is not None else None
    out: list[VariantRecord] = []
    for c in contenders:
        v = c.variant
        if v is None:  # a plain run's single contender has no variant record
            continue
        cos = _cosines(ref, c, n_items) if ref is not None and c.available else {}
        captions = (
            caption_agreement(ref.outputs[CAPTION_OP][:n_items], c.outputs[CAPTION_OP][:n_items])
            if ref is not None and CAPTION_OP in ref.outputs and CAPTION_OP in c.outputs
            else None
        )
        rate = _rate(c, ref_speed_op, largest)
        out.append(
            VariantRecord(
                name=c.name,
                dtype=v.dtype,
                compile=v.compile,
                channels_last=v.channels_last,
                threads=v.threads or default_threads,
                reference=c.reference,
                requested=c.requested,
                available=c.available,
                unavailable_reason=c.unavailable,
                images_per_s=_rate(c, IMAGE_ENCODE, largest),
                texts_per_s=_rate(c, TEXT_ENCODE, largest),
                captions_per_s=_rate(c, CAPTION_OP, largest),
                speedup_vs_fp32=rate / ref_rate if rate and ref_rate else None,
                min_cosine_to_fp32=min(a.min for a in cos.values()) if cos else None,
                mean_cosine_to_fp32=(
                    float(np.mean([a.mean for a in cos.values()])) if cos else None
                ),
                image_cosine_to_fp32=cos.get(IMAGE_ENCODE),
                text_cosine_to_fp32=cos.get(TEXT_ENCODE),
                caption_identical_share=captions.identical_share if captions else None,
                caption_bleu4_to_fp32=captions.bleu4 if captions else None,
                agreement_items=(n_items if (cos or captions) else None),
                setup_s=c.setup_s,
                compile_s=_compile_s(c),
                batches=list(c.rows),
            )
        )
    return out


def artifact(recs: Sequence[VariantRecord]) -> tuple[str, bytes]:
    """The "variants" artifact: JSON, one object per variant."""
    return "application/json", json.dumps([dataclasses.asdict(r) for r in recs]).encode()
