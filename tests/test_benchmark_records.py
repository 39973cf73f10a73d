"""The benchmark artifacts' one schema (mirada.benchmark_records): a round trip keeps every
field, older records read with defaults, and a wrong type is refused naming the field."""

from __future__ import annotations

import json

import pytest

from mirada.benchmark_records import (
    BatchRow,
    InputPipeline,
    Measurement,
    TaskMetric,
    VariantRecord,
    dump_measurement,
    dump_records,
    load_measurement,
    load_records,
)
from mirada.domain import Dtype
from mirada.errors import MiradaError


def _record() -> VariantRecord:
    row = BatchRow(
        "image_encode",
        8,
        12,
        40.0,
        25.0,
        30.0,
        throughput_ci=(38.0, 42.0),
        speedup=1.9,
        speedup_ci=(1.8, 2.0),
        converged=True,
        batch_seconds=(0.2, 0.21),
    )
    metric = TaskMetric(80.0, 85.0, -5.0, (-10.0, 0.0), 0.25, "mcnemar_exact", 20, 3)
    return VariantRecord(
        "bf16",
        Dtype.bf16,
        threads=2,
        images_per_s=40.0,
        images_per_s_ci=(38.0, 42.0),
        speedup=1.9,
        speedup_ci=(1.8, 2.0),
        rounds=12,
        batches=(row,),
        task_metrics={"i2t_R@1": metric},
        contended=True,
    )


def test_records_round_trip() -> None:
    rec = _record()
    assert load_records(dump_records([rec])) == [rec]
    raw = json.loads(dump_records([rec]))[0]
    assert raw["dtype"] == "bf16" and raw["images_per_s_ci"] == [38.0, 42.0]
    assert raw["task_metrics"]["i2t_R@1"]["delta_ci"] == [-10.0, 0.0]


def test_measurement_round_trip_and_nan_is_null() -> None:
    m = Measurement(
        True,
        "busy",
        1.0,
        2.0,
        0.4,
        float("nan"),
        2,
        2,
        input_pipeline=InputPipeline(14, 8, 300.0, (290.0, 310.0)),
    )
    raw = json.loads(dump_measurement(m))
    assert raw["cpu_efficiency"] is None and raw["input_pipeline"]["per_core_ci"] == [290.0, 310.0]
    back = load_measurement(dump_measurement(m))
    assert back.input_pipeline == m.input_pipeline and back.cpu_efficiency is None


def test_an_older_record_reads_with_defaults() -> None:
    """The keys a variants artifact had before rounds and intervals (issue 14)."""
    old = [
        {
            "name": "fp32",
            "dtype": "fp32",
            "compile": False,
            "channels_last": False,
            "threads": 2,
            "reference": True,
            "requested": False,
            "available": True,
            "unavailable_reason": None,
            "images_per_s": 20.0,
            "texts_per_s": None,
            "captions_per_s": None,
            "speedup_vs_fp32": None,
            "min_cosine_to_fp32": None,
            "mean_cosine_to_fp32": None,
            "image_cosine_to_fp32": None,
            "text_cosine_to_fp32": None,
            "caption_identical_share": None,
            "caption_bleu4_to_fp32": None,
            "agreement_items": None,
            "setup_s": None,
            "compile_s": None,
            "batches": [
                {
                    "op": "image_encode",
                    "batch_size": 8,
                    "repeats": 5,
                    "throughput_per_s": 20.0,
                    "latency_p50_ms": 50.0,
                    "latency_p95_ms": 55.0,
                    "peak_rss_mb": 900.0,
                    "cuda_max_allocated_mb": None,
                    "first_call_s": 0.5,
                }
            ],
            "a_future_key": 1,
        }
    ]
    (rec,) = load_records(json.dumps(old))
    assert rec.reference and rec.rounds is None and rec.task_metrics == {}
    assert not rec.contended and rec.images_per_s_ci is None
    assert rec.batches[0].batch_seconds == () and rec.batches[0].repeats == 5


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"images_per_s": "fast"}, "[0].images_per_s: expected a number, got 'fast'"),
        ({"dtype": "fp8"}, "[0].dtype: unknown dtype 'fp8'"),
        ({"contended": 1}, "[0].contended: expected true or false"),
        ({"images_per_s_ci": [1.0]}, "[0].images_per_s_ci: expected 2 values, got 1"),
        ({"rounds": 2.5}, "[0].rounds: expected an integer"),
    ],
)
def test_a_wrong_type_is_refused_naming_the_field(patch: dict[str, object], message: str) -> None:
    raw = json.loads(dump_records([_record()]))
    raw[0].update(patch)
    with pytest.raises(MiradaError) as refused:
        load_records(json.dumps(raw))
    assert message in str(refused.value)


def test_not_a_list_or_missing_name() -> None:
    with pytest.raises(MiradaError, match="expected a list"):
        load_records(b"{}")
    with pytest.raises(MiradaError, match="missing required field 'name'"):
        load_records(b"[{}]")
    with pytest.raises(MiradaError, match="not valid JSON"):
        load_records(b"[")
