"""Images that arrive later (issue 22 §2): a run imported without images, then a bundle with
--with-images of the same run, or of another run on the same dataset, fills in the image files
the dataset lacks: each checked against the SHA-256 the dataset stores, never replacing a file
that is there, and the command says how many it added."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from cli_runner import run_cli
from sqlalchemy import select

from mirada.bundles.archive import MANIFEST, content_id
from mirada.datasets.paths import image_path, thumbnail_path
from mirada.db import read_session
from mirada.db.models import Dataset, Image, Item, Run


def _export(run_id: int, path: Path, *, with_images: bool) -> Path:
    args = ["export", str(run_id), "--format", "bundle", "-o", str(path)]
    out = run_cli(*args, *(["--with-images"] if with_images else []))
    assert out.returncode == 0, out.stderr
    return path


def _second_run(tmp_path: Path) -> int:
    """Another succeeded run on the first run's dataset (what a second model would give)."""
    from test_bundles import HARDWARE, MODEL

    from mirada.queue import claim_next, enqueue, finish_run, register_worker
    from mirada.results import MetricValue, RunResults

    with read_session() as s:
        dataset_id = s.scalars(select(Dataset.id)).one()
    worker_id, profile_id = register_worker("w9", "other-box", 1, [], ["cpu"], HARDWARE)
    enqueue(dataset_id, MODEL, "match", device="cpu", dtype="fp32", batch_size=4)
    claimed = claim_next(worker_id, ["cpu"], [])
    assert claimed is not None
    results = RunResults(metrics=[MetricValue("mrr", 0.5)])
    assert finish_run(
        claimed.id,
        worker_id,
        results,
        hardware_profile_id=profile_id,
        model_fingerprint={"model_id": MODEL},
        resolved_device="cpu",
    )
    return claimed.id


def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> Path:
    from test_bundles import _switch

    home = tmp_path / name
    _switch(monkeypatch, home, f"sqlite:///{home / 'mirada.db'}")
    return home


def _images() -> list[tuple[str, str]]:
    with read_session() as s:
        return list(s.execute(select(Image.sha256, Image.ext).join(Item).distinct()).all())


@pytest.fixture
def bundles(mirada_home: Path, tmp_path: Path) -> dict[str, Path]:
    """Bundles of one run without and with images, and of a second run with images."""
    from test_bundles import _seed_run

    run_id = _seed_run(tmp_path)
    other = _second_run(tmp_path)
    return {
        "bare": _export(run_id, tmp_path / "bare.zip", with_images=False),
        "same": _export(run_id, tmp_path / "same.zip", with_images=True),
        "other": _export(other, tmp_path / "other.zip", with_images=True),
    }


def test_the_same_run_with_images_fills_them_in(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _home(monkeypatch, tmp_path, "h2")
    out = run_cli("import-results", str(bundles["bare"]))
    assert out.returncode == 0 and "without image files" in out.stdout, out.stdout
    images = _images()
    assert len(images) == 3 and not any(image_path(*im).exists() for im in images)

    out = run_cli("import-results", str(bundles["same"]))
    assert out.returncode == 0, out.stderr
    assert "already imported as run 1" in out.stdout and "added its 3 image files" in out.stdout
    assert "nothing to do" not in out.stdout
    for sha, ext in images:
        data = image_path(sha, ext).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha
        assert thumbnail_path(sha).is_file()
    assert not list(image_path(*images[0]).parent.glob(".bundle-*"))  # no temporary left

    # Once more: everything is here, so nothing to do, and still one run.
    again = run_cli("import-results", str(bundles["same"]))
    assert "nothing to do" in again.stdout, again.stdout
    with read_session() as s:
        assert len(s.scalars(select(Run.id)).all()) == 1


def test_another_run_with_images_fills_them_in_and_lands(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _home(monkeypatch, tmp_path, "h2")
    assert run_cli("import-results", str(bundles["bare"])).returncode == 0
    out = run_cli("import-results", str(bundles["other"]))
    assert out.returncode == 0, out.stderr
    assert "imported run 2" in out.stdout and "added 3 image files" in out.stdout, out.stdout
    assert "not all of its image files" not in out.stdout
    with read_session() as s:
        assert len(s.scalars(select(Dataset.id)).all()) == 1  # reused, not copied
    assert all(image_path(*im).is_file() for im in _images())


def test_an_existing_file_is_never_replaced(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _home(monkeypatch, tmp_path, "h2")
    assert run_cli("import-results", str(bundles["bare"])).returncode == 0
    kept = sorted(_images())[0]
    path = image_path(*kept)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"already here")  # whatever is there stays: same name, same content
    out = run_cli("import-results", str(bundles["same"]))
    assert out.returncode == 0 and "added its 2 image files" in out.stdout, out.stdout
    assert path.read_bytes() == b"already here"


def _forge_image(src: Path, dst: Path, sha: str, ext: str, data: bytes) -> None:
    """Replace one image member and redo the manifest's checksums, as an attacker can."""
    name = f"images/{sha}.{ext}"
    with zipfile.ZipFile(src) as zin:
        members = {i.filename: zin.read(i) for i in zin.infolist()}
    members[name] = data
    manifest = json.loads(members.pop(MANIFEST))
    manifest["members"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    digests = {n: e["sha256"] for n, e in manifest["members"].items()}
    manifest["content_sha256"] = content_id(digests)
    with zipfile.ZipFile(dst, "w") as zout:
        zout.writestr(MANIFEST, json.dumps(manifest))
        for n, d in members.items():
            zout.writestr(n, d)


def test_an_image_that_is_not_its_hash_is_refused(
    bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _home(monkeypatch, tmp_path, "h2")
    assert run_cli("import-results", str(bundles["bare"])).returncode == 0
    sha, ext = sorted(_images())[0]
    forged = tmp_path / "forged.zip"
    _forge_image(bundles["same"], forged, sha, ext, b"not the image the dataset names")
    out = run_cli("import-results", str(forged))
    assert out.returncode != 0 and f"{sha}.{ext} does not match its SHA-256" in out.stderr
    assert "Traceback" not in out.stderr
    assert not any(image_path(*im).exists() for im in _images())  # staged first: none placed
