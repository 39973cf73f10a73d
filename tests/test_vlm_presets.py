"""Real-size random-weight presets (issue 14 §3): ids, "latency only" labels, queue-time
refusal for match and caption, and each preset running one benchmark batch on CPU."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from cli_runner import run_cli
from run_helpers import work

from mirada import queue
from mirada.domain import Device
from mirada.errors import MiradaError
from mirada.queries.runs import run_detail
from mirada.vlm.ids import parse_model_id
from mirada.vlm.presets import PRESETS
from mirada.vlm.registry import available_offline, load_adapter

DATASET_IMAGES = 2  # for conftest's `dataset`

CLIP = "hf-clip:random:clip-vit-b-32"
OPEN_CLIP = "open-clip:random:ViT-B-32"
BLIP_ITM = "blip-itm:random:blip-base-384"
BLIP_CAPTION = "blip-caption:random:blip-base-384"
FLAVA = "flava:random:flava-full"
SIGLIP = "siglip:random:siglip-base-patch16-224"
SIGLIP2 = "siglip2:random:siglip2-base-patch16-224"
# hf-vlm presets: built and counted in test_vlm_hf_vlm.py (BLIP-2 OPT-2.7b is GPU only)
HF_VLM = ("hf-vlm:random:blip2-opt-2.7b", "hf-vlm:random:smolvlm-256m")


def test_ids_parse_and_are_latency_only() -> None:
    assert {p.model_id for p in PRESETS.values()} == {
        CLIP,
        OPEN_CLIP,
        BLIP_ITM,
        BLIP_CAPTION,
        FLAVA,
        SIGLIP,
        SIGLIP2,
        *HF_VLM,
    }
    for preset in PRESETS.values():
        spec = parse_model_id(preset.model_id)
        assert spec.latency_only and spec.local_path is None
        assert spec.model_id == preset.model_id
        assert available_offline(preset.model_id)
    assert not parse_model_id("hf-clip:mirada/demo-clip").latency_only
    with pytest.raises(MiradaError, match="unknown hf-clip preset 'flava-full'"):
        parse_model_id("hf-clip:random:flava-full")


@pytest.mark.parametrize("task", ["match", "caption"])
def test_queue_refuses_non_benchmark_tasks(dataset: int, task: str) -> None:
    model = BLIP_CAPTION if task == "caption" else CLIP
    with pytest.raises(MiradaError, match="latency only") as refused:
        queue.enqueue(dataset, model, task)
    assert f"benchmark only, not '{task}'" in str(refused.value)


def test_models_lists_presets_as_latency_only(mirada_home: Path) -> None:
    listed = run_cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    for preset in PRESETS.values():
        row = rows[preset.model_id]
        assert row["latency_only"] is True and row["available_offline"] is True
        assert "latency only" in row["title"]
    assert rows["hf-clip:mirada/demo-clip"]["latency_only"] is False
    table = run_cli("models")
    assert "[latency only]" in table.stdout


def _bench_one_batch(dataset: int, model: str) -> dict[str, float]:
    """Queue and run a benchmark of one batch of one image; its stored timings by name."""
    options = {
        "batch_sizes": [1],
        "warmup_batches": 0,
        "timed_batches": 1,
        "max_seconds": 0.1,  # one round: the budget is spent by then
        "num_beams": 1,
        "max_length": 4,
    }
    run_id = queue.enqueue(dataset, model, "benchmark", device="cpu", options=options)
    work()
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]
    gc.collect()  # the worker dropped the model; free it before the next preset loads
    return {t["name"]: t["value"] for t in detail["timings"]}


@pytest.mark.slow
@pytest.mark.parametrize("model", [CLIP, OPEN_CLIP, BLIP_ITM, BLIP_CAPTION, SIGLIP, SIGLIP2])
def test_preset_runs_one_benchmark_batch(dataset: int, model: str) -> None:
    timings = _bench_one_batch(dataset, model)
    op = "caption" if model == BLIP_CAPTION else "image_encode"
    assert timings[f"{op}_latency_p50_ms"] > 0


@pytest.mark.slow
def test_flava_full_runs_its_three_towers(dataset: int) -> None:
    timings = _bench_one_batch(dataset, FLAVA)
    assert timings["image_encode_latency_p50_ms"] > 0
    assert timings["text_encode_latency_p50_ms"] > 0


# Parameter counts of the real models' architectures (openai/clip-vit-base-patch32 has
# 151,277,313); counted on torch's meta device, so nothing is allocated.
REAL_SIZES = {
    CLIP: ("CLIPModel", 151_277_313),
    BLIP_ITM: ("BlipForImageTextRetrieval", 223_744_258),
    BLIP_CAPTION: ("BlipForConditionalGeneration", 223_971_644),
    FLAVA: ("FlavaModel", 241_356_289),
    # the Hub pages list 203M (google/siglip-base-patch16-224) and 375M (google/siglip2-base-
    # patch16-224: the Gemma vocabulary's 256000 x 768 embedding table is 197M of it)
    SIGLIP: ("SiglipModel", 203_155_970),
    SIGLIP2: ("SiglipModel", 375_187_970),
}


@pytest.mark.parametrize("model", list(REAL_SIZES))
def test_transformers_presets_have_the_real_parameter_count(model: str) -> None:
    import torch
    import transformers

    from mirada.vlm.presets import build_hf_preset

    class_name, expected = REAL_SIZES[model]
    preset = parse_model_id(model).preset_entry
    assert preset is not None
    with torch.device("meta"):
        built = build_hf_preset(preset, getattr(transformers, class_name))
    assert sum(p.numel() for p in built.model.parameters()) == expected


def test_real_sizes_and_seeded_weights() -> None:
    """The BLIP captioner at 384 px has the published parameter count (224M with the tied
    decoder head), and the same seed builds the same weights."""
    import torch

    a = load_adapter(BLIP_CAPTION, device=Device.cpu, seed=3)
    assert a.image_transform.processor.size == {"height": 384, "width": 384}  # type: ignore[attr-defined]
    assert 220e6 < a.num_params < 250e6, a.num_params
    assert a.fingerprint().options["init_seed"] == 3
    first = next(a.module.parameters()).detach().clone()  # type: ignore[attr-defined]
    del a
    gc.collect()
    b = load_adapter(BLIP_CAPTION, device=Device.cpu, seed=3)
    assert torch.equal(first, next(b.module.parameters()))  # type: ignore[attr-defined]
