"""Typed run options: unknown keys and bad values are refused at queue time; JSON round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_helpers import dataset_row

from mirada.domain import Dtype, Task
from mirada.errors import MiradaError
from mirada.run_options import (
    BenchmarkRunOptions,
    CaptionRunOptions,
    MatchRunOptions,
    Variant,
)
from mirada.tasks import TASKS, option_flags, parse_options

MODEL = "hf-clip:mirada/demo-clip"
CAPTIONER = "blip-caption:mirada/demo-blip"


def test_defaults_store_as_empty_json() -> None:
    for spec in TASKS.values():
        cls = spec.options
        assert cls().to_dict() == {}
        assert cls.from_dict({}) == cls() == cls.from_dict(None)


@pytest.mark.parametrize(
    ("cls", "stored"),
    [
        (MatchRunOptions, {"zeroshot_templates": ["a {} shape", "{}!"], "no_cache": True}),
        (MatchRunOptions, {"no_rerank": True, "rerank_k": 4, "n_resamples": 50, "seed": 7}),
        (CaptionRunOptions, {"prompt": "a photo of", "num_beams": 1, "max_length": 8}),
        (BenchmarkRunOptions, {"batch_sizes": [1, 4], "warmup_batches": 0, "timed_batches": 2}),
        (BenchmarkRunOptions, {"variants": ["fp32", "bf16+compile+threads=2"]}),
        (BenchmarkRunOptions, {"variants": ["fp32+tf32", "bf16+fast_decode"]}),
        (BenchmarkRunOptions, {"max_seconds": 2.5, "accuracy_items": 100}),
    ],
)
def test_round_trip_keeps_the_stored_json(cls: type, stored: dict[str, object]) -> None:
    options = cls.from_dict(stored)
    assert options.to_dict() == stored
    assert json.loads(json.dumps(options.to_dict())) == stored
    assert cls.from_dict(options.to_dict()) == options


def test_typed_fields() -> None:
    match = MatchRunOptions.from_dict({"zeroshot_templates": ["a {}"], "rerank_k": 3})
    assert match.zeroshot_templates == ("a {}",) and match.rerank_k == 3 and not match.no_cache
    bench = BenchmarkRunOptions.from_dict({"batch_sizes": [8, 1]})
    assert bench.batch_sizes == (8, 1) and bench.warmup_batches == 2 and bench.timed_batches == 5
    assert bench.max_seconds == 60.0 and bench.accuracy_items is None
    # an integer budget is a number of seconds like any other (stored as typed)
    assert BenchmarkRunOptions.from_dict({"max_seconds": 3}).max_seconds == 3.0
    # variants are parsed Variants from the stored names (or a comma list) on
    variants = BenchmarkRunOptions.from_dict({"variants": "bf16+channels_last+compile,fp32"})
    assert variants.variants == (
        Variant(Dtype.bf16, compile=True, channels_last=True),
        Variant(Dtype.fp32),
    )
    assert variants.to_dict() == {"variants": ["bf16+compile+channels_last", "fp32"]}


@pytest.mark.parametrize(
    ("task", "data", "needles"),
    [
        ("match", {"batch_sizes": [1]}, ["unknown run option 'batch_sizes'", "zeroshot_templates"]),
        ("caption", {"max_len": 5}, ["unknown run option 'max_len'", "max_length"]),
        ("benchmark", {"rerank_k": 1}, ["unknown run option 'rerank_k' for task benchmark"]),
    ],
)
def test_unknown_keys_are_refused(task: str, data: dict[str, object], needles: list[str]) -> None:
    with pytest.raises(MiradaError) as info:
        parse_options(Task(task), data)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize(
    ("task", "key", "value", "form"),
    [
        ("match", "zeroshot_templates", ["no placeholder"], "exactly one {}"),
        ("match", "zeroshot_templates", [], "a non-empty list"),
        ("match", "zeroshot_templates", "a {}", "a non-empty list"),
        ("match", "no_cache", "yes", "true or false"),
        ("match", "rerank_k", 0, "an integer from 1 to 1000"),
        ("match", "rerank_k", 1001, "an integer from 1 to 1000"),
        ("match", "n_resamples", 1.5, "an integer from 1 to 100000"),
        ("match", "n_resamples", 10**9, "an integer from 1 to 100000"),
        ("match", "seed", True, "an integer from 0 to 2**32-1"),
        ("match", "seed", -1, "an integer from 0 to 2**32-1"),
        ("caption", "num_beams", "3", "an integer from 1 to 16"),
        ("caption", "num_beams", 10_000, "an integer from 1 to 16"),
        ("caption", "max_length", 100_000, "an integer from 1 to 512"),
        ("caption", "prompt", 5, "a text"),
        ("benchmark", "batch_sizes", [1, 0], "a list of 1 to 16 integers >= 1"),
        ("benchmark", "batch_sizes", list(range(1, 18)), "a list of 1 to 16 integers >= 1"),
        ("benchmark", "timed_batches", 0, "an integer from 1 to 1000 (the minimum number"),
        ("benchmark", "max_seconds", 0.01, "a number of seconds from 0.1 to 3600"),
        ("benchmark", "max_seconds", True, "a number of seconds from 0.1 to 3600"),
        ("benchmark", "max_seconds", "60", "a number of seconds from 0.1 to 3600"),
        ("benchmark", "accuracy_items", 0, "an integer from 1 to 100000, or null"),
        ("benchmark", "accuracy_items", 2.5, "an integer from 1 to 100000, or null"),
        ("benchmark", "warmup_batches", 101, "an integer from 0 to 100"),
    ],
)
def test_bad_values_are_refused_naming_key_value_and_form(
    task: str, key: str, value: object, form: str
) -> None:
    with pytest.raises(MiradaError) as info:
        parse_options(Task(task), {key: value})
    message = str(info.value)
    assert f"run option {key}" in message and repr(value) in message and form in message


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(MiradaError, match="batch_sizes"):
        BenchmarkRunOptions(batch_sizes=(0,))
    with pytest.raises(MiradaError, match="CaptionRunOptions given for a match run"):
        parse_options(Task.match, CaptionRunOptions())


def test_enqueue_validates_and_stores_the_canonical_json(mirada_home: Path) -> None:
    from mirada import queue
    from mirada.queries.runs import run_detail

    ds = dataset_row("opts")
    with pytest.raises(MiradaError, match="MatchRunOptions given for a caption run"):
        queue.enqueue(ds, CAPTIONER, Task.caption, options=MatchRunOptions())
    options = CaptionRunOptions(max_length=8, num_beams=3)
    run = queue.enqueue(ds, CAPTIONER, Task.caption, options=options)
    assert run_detail(run)["options"] == {"max_length": 8}  # the default is not stored
    typed = queue.enqueue(ds, MODEL, Task.benchmark, options=BenchmarkRunOptions(batch_sizes=(2,)))
    assert run_detail(typed)["options"] == {"batch_sizes": [2]}


def test_a_dtype_the_variants_contradict_is_refused_when_queued(mirada_home: Path) -> None:
    from mirada import queue
    from mirada.domain import Device

    options = BenchmarkRunOptions(variants=(Variant(Dtype.bf16),))
    with pytest.raises(MiradaError, match="--variants names the dtypes it measures"):
        queue.validate_run_request(MODEL, Task.benchmark, Device.cpu, Dtype.bf16, 8, options)
    # fp32 (the reference) is the run's dtype; without variants any dtype goes
    queue.validate_run_request(MODEL, Task.benchmark, Device.cpu, Dtype.fp32, 8, options)
    queue.validate_run_request(MODEL, Task.benchmark, Device.cpu, Dtype.bf16, 8, None)


def test_the_queue_flags_come_from_the_option_fields() -> None:
    """Every option field that declares a flag is a `mirada queue` argument writing that field,
    and every run option argument of the parser is declared by a field."""
    import argparse
    import dataclasses

    from mirada.cli import build_parser
    from mirada.run_options import option_flag

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = {s: a for a in sub.choices["queue"]._actions for s in a.option_strings}
    assert "--max-seconds" in sub.choices["queue"].format_help()  # help texts format (no bare %)
    declared = {
        (flag.name, f.name)
        for spec in TASKS.values()
        for f in dataclasses.fields(spec.options)
        if (flag := option_flag(f)) is not None
    }
    assert {"--batch-sizes", "--variants", "--engine", "--seed", "--template"} <= {
        flag for flag, _ in declared
    }
    for flag, key in declared:
        assert actions[flag].dest == key, flag
        assert actions[flag].help == option_flags()[flag].flag.help
    by_hand = {"-h", "--help", "--dataset", "--model", "--task", "--device", "--dtype"}
    by_hand |= {"--batch-size", "--requires", "--max-attempts", "--json"}
    assert set(actions) - by_hand == {flag for flag, _ in declared}
    # a shared flag (--seed, --no-cache) is one argument feeding every task that takes it
    assert option_flags()["--seed"].tasks == (Task.match, Task.caption, Task.benchmark)


def test_cli_gives_each_task_only_its_options(
    mirada_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mirada.cli import main
    from mirada.queries.runs import run_detail

    dataset_row("opts")
    base = ["queue", "--dataset", "opts", "--model", MODEL, "--json"]
    assert main([*base, "--task", "match", "--batch-sizes", "1,8"]) == 2
    err = capsys.readouterr().err
    assert "--batch-sizes applies to --task benchmark only" in err and "Traceback" not in err
    argv = [*base, "--task", "match", "--task", "benchmark", "--batch-sizes", "1,8", "--no-cache"]
    assert main([*argv, "--template", "a {} shape"]) == 0
    match_id, bench_id = json.loads(capsys.readouterr().out)
    assert run_detail(match_id)["options"] == {
        "no_cache": True,
        "zeroshot_templates": ["a {} shape"],
    }
    assert run_detail(bench_id)["options"] == {"batch_sizes": [1, 8], "no_cache": True}
    bench = [*base, "--task", "benchmark", "--max-seconds", "2.5", "--accuracy-items", "50"]
    assert main(bench) == 0
    (budget_id,) = json.loads(capsys.readouterr().out)
    assert run_detail(budget_id)["options"] == {"max_seconds": 2.5, "accuracy_items": 50}
    with pytest.raises(SystemExit):
        main([*base, "--task", "benchmark", "--max-seconds", "soon"])
    assert "--max-seconds wants seconds like 60 or 2.5 (got 'soon')" in capsys.readouterr().err
