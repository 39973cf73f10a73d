"""Local model paths are pinned when a run is queued (issue 12 item 3).

`hf-clip:./myclip` means the folder where the user typed it. The run records the absolute path
and a fingerprint of the files; a worker started from another directory evaluates those files,
and a worker that finds other files (or none) there refuses, naming the path and both
fingerprints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tiny_models
from run_helpers import work

from mirada import queue
from mirada.errors import MiradaError
from mirada.queries.runs import list_runs, run_detail
from mirada.run_options import MatchRunOptions
from mirada.vlm.hub import local_revision
from mirada.vlm.ids import parse_model_id
from mirada.vlm.local_files import (
    ModelFilesChangedError,
    check_pinned,
    files_fingerprint,
    pin_model,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different tiny CLIPs, both in a folder named `myclip`, under a/ and b/."""
    root = tmp_path_factory.mktemp("clips")
    a = tiny_models.make_hf_clip(root / "a" / "myclip", seed=0)
    b = tiny_models.make_hf_clip(root / "b" / "myclip", seed=1)
    return a, b


def _copy(src: Path, dst: Path) -> Path:
    """A copy with fresh modification times (like copying to another machine)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            shutil.copyfile(f, dst / f.name)
    return dst


@pytest.mark.parametrize("typed", ["hf-clip:./myclip", "hf-clip:myclip"])
def test_a_worker_elsewhere_evaluates_the_files_where_the_run_was_queued(
    dataset: int,
    clips: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    typed: str,
) -> None:
    a, b = clips
    monkeypatch.chdir(a.parent)
    run = queue.enqueue(dataset, typed, "match", options=MatchRunOptions(no_cache=True))
    detail = run_detail(run)
    assert detail["model"] == typed  # shown as typed
    assert detail["options"]["resolved_model_id"] == f"hf-clip:{a}"
    assert detail["options"]["model_files"] == files_fingerprint(a)

    monkeypatch.chdir(b.parent)  # b/myclip is a different model under the same relative name
    assert work() == 1
    detail = run_detail(run)
    assert detail["status"] == "succeeded", detail["error"]
    fingerprint = detail["model_fingerprint"]
    assert fingerprint["model_id"] == f"hf-clip:{a}"
    assert fingerprint["revision"] == local_revision(a) != local_revision(b)


def test_changed_or_missing_files_make_the_worker_refuse(
    dataset: int, clips: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = clips
    changed = _copy(a, tmp_path / "models" / "changed")
    gone = _copy(a, tmp_path / "models" / "gone")
    monkeypatch.chdir(tmp_path / "models")
    run_changed = queue.enqueue(dataset, "hf-clip:./changed", "match")
    run_gone = queue.enqueue(dataset, "hf-clip:./gone", "match")
    expected = files_fingerprint(changed)
    shutil.copyfile(b / "model.safetensors", changed / "model.safetensors")  # retrained
    shutil.rmtree(gone)
    assert work() == 2

    detail = run_detail(run_changed)
    assert detail["status"] == "failed"
    error = detail["error"]
    assert str(changed) in error and f"expected {expected}" in error
    assert f"found {files_fingerprint(changed)}" in error and "re-queue" in error
    assert detail["metrics"] == {}
    detail = run_detail(run_gone)
    assert detail["status"] == "failed"
    assert str(gone) in detail["error"] and "found no files there" in detail["error"]


def test_an_identical_copy_with_other_mtimes_matches(clips: tuple[Path, Path], tmp_path: Path):
    a, b = clips
    copy = _copy(a, tmp_path / "copy")
    assert local_revision(copy) != local_revision(a)  # the cache identity differs ...
    assert files_fingerprint(copy) == files_fingerprint(a)  # ... the files do not
    assert files_fingerprint(b) != files_fingerprint(a)
    check_pinned(f"hf-clip:{copy}", files_fingerprint(a))


def test_large_files_are_sampled_and_any_edit_near_an_end_is_seen(tmp_path: Path) -> None:
    weights = tmp_path / "ckpt.safetensors"
    data = bytearray(8 << 20)
    weights.write_bytes(data)
    before = files_fingerprint(weights)
    for offset in (10, len(data) // 2, len(data) - 10):
        edited = bytearray(data)
        edited[offset] = 1
        weights.write_bytes(edited)
        assert files_fingerprint(weights) != before
    weights.write_bytes(data[:-1])  # truncated
    assert files_fingerprint(weights) != before


def test_a_relative_path_with_nothing_behind_it_is_refused_at_queue_time(
    dataset: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MiradaError) as info:
        queue.enqueue(dataset, "hf-clip:./nope", "match")
    assert str(tmp_path / "nope") in str(info.value) and "current directory" in str(info.value)
    assert list_runs() == []


def test_open_clip_local_dirs_and_checkpoints_are_pinned_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "oc").mkdir()
    (tmp_path / "oc" / "open_clip_config.json").write_text("{}")
    (tmp_path / "ck.pt").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    local = pin_model("open-clip:local-dir:./oc")
    assert local.model_id == f"open-clip:local-dir:{tmp_path / 'oc'}" and local.files
    ckpt = pin_model("open-clip:ViT-B-32/./ck.pt")
    assert ckpt.model_id == f"open-clip:ViT-B-32/{tmp_path / 'ck.pt'}" and ckpt.files
    assert parse_model_id(ckpt.model_id).checkpoint == tmp_path / "ck.pt"
    assert pin_model("open-clip:ViT-B-32/laion2b_s34b_b79k").files is None  # a tag
    assert pin_model("hf-clip:mirada/demo-clip").files is None  # demo models travel with Mirada
    with pytest.raises(MiradaError, match="not a file"):
        pin_model("open-clip:ViT-B-32/./oc/")

    (tmp_path / "ck.pt").write_bytes(b"other weights")
    monkeypatch.chdir("/")
    with pytest.raises(ModelFilesChangedError, match="expected files-"):
        check_pinned(ckpt.model_id, ckpt.files)


def test_a_worker_never_resolves_a_path_against_its_own_directory(
    clips: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = clips
    monkeypatch.chdir(a.parent)
    # a run queued before paths were pinned, and a Hub name a folder here shadows
    for model_id in ("hf-clip:./myclip", "hf-clip:myclip"):
        with pytest.raises(ModelFilesChangedError, match="this worker's current directory"):
            check_pinned(model_id, None)
    check_pinned(f"hf-clip:{a}", None)  # absolute: fine anywhere
