"""The input pipeline as a measured stage: the reference decoder is what the worker feeds the
model, the fast one is close but honest, and match and caption runs record where their image
time went (mirada.worker.tasks.input_pipeline, mirada.worker.tasks.common)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sklearn.datasets
import tiny_models as tm
import torch
from PIL import Image
from run_helpers import work
from torchvision import transforms as T

from mirada import queue
from mirada.domain import Device
from mirada.metrics import names
from mirada.queries.runs import run_detail, stage_splits
from mirada.run_options import CaptionRunOptions
from mirada.vlm.base import LoadedModel
from mirada.vlm.registry import load_adapter
from mirada.vlm.torch_common import HFImageTransform, VariantUnavailable
from mirada.worker.data import image_batches, loader_workers
from mirada.worker.tasks import input_pipeline as ip

DATASET_IMAGES = 9  # for conftest's `dataset`


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scikit-learn's two real photos at 640x480, as JPEG and as PNG, plus an odd-sized PNG
    (odd crop offsets)."""
    where = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("china", "flower"):
        src = Path(sklearn.datasets.__file__).parent / "images" / f"{name}.jpg"
        im = Image.open(src).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
        for fmt in ("jpg", "png"):
            out[f"{name}.{fmt}"] = where / f"{name}.{fmt}"
            im.save(out[f"{name}.{fmt}"])
        out[f"{name}_odd.png"] = where / f"{name}_odd.png"
        im.crop((1, 2, 601, 407)).save(out[f"{name}_odd.png"])
    return out


@pytest.fixture(scope="module", params=["hf-clip", "open-clip"])
def adapter(
    request: pytest.FixtureRequest, models: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> LoadedModel:
    """A tiny model of each kind of transform: a transformers image processor (CLIP) and a
    torchvision Compose (open_clip)."""
    if request.param == "hf-clip":
        return load_adapter(models["clip"], device=Device.cpu)
    where = tm.make_open_clip_dir(tmp_path_factory.mktemp("open-clip"))
    return load_adapter(f"open-clip:local-dir:{where}", device=Device.cpu)


def test_reference_decoder_is_what_the_worker_feeds(
    adapter: LoadedModel, photos: dict[str, Path]
) -> None:
    paths = list(photos.values())
    ((_, batch),) = list(image_batches(paths, adapter.image_transform, len(paths)))
    decode = ip.reference_decoder(adapter)
    assert torch.equal(torch.stack([decode(p) for p in paths]), batch)


def test_fast_decoder_is_close_but_not_exact_on_jpegs(
    adapter: LoadedModel, photos: dict[str, Path]
) -> None:
    reference, fast = ip.reference_decoder(adapter), ip.fast_decoder(adapter)
    for name, path in photos.items():
        want, got = reference(path), fast(path)
        assert (got.shape, got.dtype) == (want.shape, want.dtype), name
        diff = (got - want).abs()
        # in normalised units (one uint8 level is about 0.015): small on every image
        assert float(diff.mean()) < 0.1, name
        if name.endswith(".jpg"):
            assert float(diff.mean()) > 1e-3, f"{name}: draft decoding must show"
        elif isinstance(adapter.image_transform, HFImageTransform):
            # no draft on a PNG, and the same tensor resize as transformers: the same input
            assert float(diff.max()) < 1e-4, name
        else:
            # PIL's resize against torch's antialiased one: a level here and there
            assert float(diff.mean()) < 2e-3 and float(diff.max()) < 0.05, name


def test_the_fast_decoder_drafts_only_jpegs_above_the_resize_target(
    adapter: LoadedModel,
) -> None:
    spec = ip.preprocess_spec(adapter.image_transform)
    first = spec.steps[0]
    assert isinstance(first, ip.Resize) and spec.draft is not None
    assert min(spec.draft) == min(first.size)  # never decoded below what the model resizes to
    assert isinstance(spec.steps[-1], ip.Normalize)


def test_an_unknown_transform_is_refused_with_its_name(adapter: LoadedModel) -> None:
    changed = copy.copy(adapter)
    if isinstance(adapter.image_transform, HFImageTransform):
        processor = copy.deepcopy(adapter.image_transform.processor)
        processor.do_pad = True
        changed._transform = HFImageTransform(processor)  # type: ignore[attr-defined]
        why = "do_pad"
    else:
        steps = [*adapter.image_transform.transforms, T.ColorJitter(0.1)]  # type: ignore[attr-defined]
        changed.preprocess = T.Compose(steps)  # type: ignore[attr-defined]
        why = "ColorJitter"
    with pytest.raises(VariantUnavailable, match=why):
        ip.fast_decoder(changed)


def test_a_processor_with_its_own_steps_is_refused() -> None:
    from transformers import CLIPImageProcessor

    class Custom(CLIPImageProcessor):  # as FLAVA's: its own _preprocess
        def _preprocess(self, *args: Any, **kwargs: Any) -> Any:
            return super()._preprocess(*args, **kwargs)

    with pytest.raises(VariantUnavailable, match="own preprocessing"):
        ip.preprocess_spec(HFImageTransform(Custom()))
    squash = T.Compose([T.Resize(32, max_size=64), T.ToTensor()])
    with pytest.raises(VariantUnavailable, match="max_size"):
        ip.preprocess_spec(squash)
    with pytest.raises(VariantUnavailable, match="no ToTensor"):
        ip.preprocess_spec(T.Compose([T.Resize(32), T.CenterCrop(32)]))
    with pytest.raises(VariantUnavailable, match="box"):
        ip.preprocess_spec(T.Compose([T.Resize(32, T.InterpolationMode.BOX)]))


def _counting(decode: Callable[[Path], Any]) -> tuple[Callable[[Path], Any], list[Path]]:
    calls: list[Path] = []

    def counted(path: Path) -> Any:
        calls.append(path)
        return decode(path)

    return counted, calls


def test_measure_input_pipeline(adapter: LoadedModel, photos: dict[str, Path]) -> None:
    paths = list(photos.values())
    batch = 4
    assert loader_workers(len(paths), batch) == 0  # in this process: the calls are counted
    decode, calls = _counting(ip.reference_decoder(adapter))
    fast, fast_calls = _counting(ip.fast_decoder(adapter))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # no budget: one pass per core measurement (plus its warm-up file), no interval, and
        # the loader pass stops after its first batch
        got = ip.measure_input_pipeline(paths, decode, batch_size=batch, max_seconds=0, fast=fast)
        assert torch.get_num_threads() == 2
        assert len(calls) == 1 + len(paths) + batch
        assert len(fast_calls) == 1 + len(paths)
        assert got.per_core_ci is None
        assert (got.images, got.batch_size, got.loader_workers) == (len(paths), batch, 0)
        assert got.model_images_per_s is None and got.bound is None
        for rate in (got.per_core_images_per_s, got.loader_images_per_s):
            assert rate is not None and rate > 0
        assert got.fast_decode_per_core_images_per_s is not None
        assert got.fast_decode_per_core_images_per_s > 0

        calls.clear()
        again = ip.measure_input_pipeline(paths, decode, batch_size=batch, max_seconds=1.0)
        assert torch.get_num_threads() == 2
        assert again.fast_decode_per_core_images_per_s is None
        assert len(calls) >= 1 + len(paths) + batch  # a pass per core, a batch of the loader
    finally:
        torch.set_num_threads(before)


def test_per_core_rate_restores_threads_when_decoding_fails(photos: dict[str, Path]) -> None:
    def broken(path: Path) -> Any:
        raise OSError("unreadable")

    before = torch.get_num_threads()
    with pytest.raises(OSError):
        ip.per_core_rate(list(photos.values()), broken, 1.0)
    assert torch.get_num_threads() == before


def test_files_are_sampled_evenly_and_bounded() -> None:
    paths = [Path(f"{i}.jpg") for i in range(1000)]
    sample = ip.sample_files(paths)
    assert len(sample) <= ip.MAX_FILES and len(set(sample)) == len(sample)
    assert sample[0] == paths[0] and int(sample[-1].stem) > 900
    assert ip.sample_files(paths[:5]) == paths[:5]
    with pytest.raises(ValueError, match="no image files"):
        ip.measure_input_pipeline([], str, batch_size=1, max_seconds=1)


def _split_is_stored(run_id: int, op: str) -> None:
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]
    timings = {t["name"]: t for t in detail["timings"]}
    wait = timings[names.timing_key(op, names.DECODE_WAIT_S)]
    model = timings[names.timing_key(op, names.MODEL_S)]
    assert wait["unit"] == model["unit"] == "s"
    assert wait["value"] >= 0 and model["value"] > 0
    (split,) = stage_splits(run_id)
    assert (split.op, split.decode_wait_s, split.model_s) == (op, wait["value"], model["value"])
    assert split.waiting_share is not None and 0 <= split.waiting_share < 1


def test_a_match_run_records_decode_wait_and_model_time(
    dataset: int, models: dict[str, str]
) -> None:
    # 9 images in batches of 4: the loader runs with its worker processes, as in real runs
    assert loader_workers(DATASET_IMAGES, 4) > 0
    match = queue.enqueue(dataset, models["clip"], "match", batch_size=4)
    assert work() == 1
    _split_is_stored(match, names.IMAGE_ENCODE)
    # texts are not decoded: no split for them; the older timings are all still there
    timings = {t["name"] for t in run_detail(match)["timings"]}
    assert names.timing_key(names.TEXT_ENCODE, names.DECODE_WAIT_S) not in timings
    for stat in (names.PER_S, names.COMPUTED, names.CACHED):
        assert names.timing_key(names.IMAGE_ENCODE, stat) in timings


@pytest.mark.slow
def test_a_caption_run_records_decode_wait_and_model_time(
    dataset: int, models: dict[str, str]
) -> None:
    caption = queue.enqueue(
        dataset, models["caption"], "caption", batch_size=4, options=CaptionRunOptions(max_length=4)
    )
    assert work() == 1
    _split_is_stored(caption, names.CAPTION)


def test_a_fully_cached_rerun_records_no_split(dataset: int, models: dict[str, str]) -> None:
    first = queue.enqueue(dataset, models["clip"], "match")
    second = queue.enqueue(dataset, models["clip"], "match")
    assert work() == 2
    assert [s.op for s in stage_splits(first)] == [names.IMAGE_ENCODE]
    assert stage_splits(second) == []  # nothing decoded: nothing to split
