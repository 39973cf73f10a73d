"""Result bundles (issue 14 §2): export a run, import it into a fresh home that shares nothing,
and get back exactly the same run: every metric, timing, per-item outcome, generated caption,
embedding and artifact, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import run_cli
from PIL import Image as PILImage
from run_helpers import POSTGRES_URL
from sqlalchemy import create_engine, select, text

from mirada.datasets import import_dataset
from mirada.db import dispose_engines, read_session
from mirada.db.models import (
    Caption,
    Dataset,
    GeneratedCaption,
    HardwareProfile,
    Item,
    ItemResult,
    Metric,
    Run,
    RunArtifact,
    RunEmbedding,
    Timing,
)
from mirada.domain import RunStatus
from mirada.results import (
    CaptionOutcome,
    EmbeddingSet,
    ItemOutcome,
    MetricValue,
    RunResults,
    TimingValue,
)

MODEL = "hf-clip:mirada/demo-clip"
HARDWARE = {
    "hostname": "gpu-box",
    "os": "Linux 6.1",
    "cpu_model": "Test CPU",
    "cpu_cores": 8,
    "ram_bytes": 16 * 2**30,
    "gpu_name": "Test GPU",
    "gpu_memory_bytes": 24 * 2**30,
    "python_version": "3.11.9",
    "torch_version": "2.4.0",
    "cuda_version": "12.1",
    "transformers_version": "5.0.0",
    "open_clip_version": "2.26.1",
    "details": {"note": "x"},
}
DATA = {
    "cat1.png": ("cat", ["a cat on a mat", "a small cat"]),
    "cat2.png": ("cat", ["a cat sleeping"]),
    "dog1.png": ("dog", ["a dog running", "a brown dog"]),
}


def _folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = ["filename,caption,category"]
    for i, (name, (category, captions)) in enumerate(DATA.items()):
        PILImage.new("RGB", (16 + i, 12), (60 * i, 90, 200)).save(folder / name)
        rows += [f'{name},"{c}",{category}' for c in captions]
    (folder / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def _seed_run(tmp_path: Path) -> int:
    """A succeeded match run with awkward floats, caption references, embeddings, artifacts."""
    from mirada.queue import claim_next, enqueue, finish_run, register_worker

    dataset_id = import_dataset(_folder(tmp_path / "photos"), name="pets").id
    with read_session() as s:
        rows = s.execute(
            select(Item.id, Caption.id)
            .join(Caption, Caption.item_id == Item.id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Caption.position)
        ).all()
    item_ids = list(dict.fromkeys(r[0] for r in rows))
    caption_ids = [r[1] for r in rows]
    worker_id, profile_id = register_worker("w1", "gpu-box", 1, [], ["cpu"], HARDWARE)
    enqueue(dataset_id, MODEL, "match", device="cpu", dtype="fp32", batch_size=8)
    rng = np.random.default_rng(0)
    results = RunResults(
        metrics=[
            MetricValue(
                "i2t_recall@1",
                2 / 3,
                ci_low=0.2076,
                ci_high=0.9385,
                details={"n": 3, "interval_method": "wilson"},
            ),
            MetricValue("mrr", 0.1 + 0.2),
            MetricValue("i2t_recall@1", 1.0, category="cat"),
            MetricValue("METEOR", None, details={"unavailable": "no Java"}),
        ],
        items=[
            ItemOutcome(
                item_id=iid,
                correct=k != 2,
                rank=1 if k != 2 else 3,
                score=float(rng.random()),
                details={
                    "top": [
                        [caption_ids[(k + j) % len(caption_ids)], float(rng.random())]
                        for j in range(3)
                    ],
                    "reranked": [[caption_ids[-1], 0.9]],
                    "category_correct": True,
                },
            )
            for k, iid in enumerate(item_ids)
        ],
        captions=[CaptionOutcome(item_ids[0], "a cat", {"BLEU-4": 1 / 3}, {"degenerate": False})],
        timings=[
            TimingValue("load_s", 1.2345678901234567, "s"),
            TimingValue("image_embed_per_s", 123.4, "items/s", 8),
        ],
        embeddings=[
            EmbeddingSet(
                "image",
                np.array(item_ids[::-1], np.int64),
                rng.standard_normal((3, 4)).astype(np.float32),
            ),
            EmbeddingSet(
                "text",
                np.array(caption_ids, np.int64),
                rng.standard_normal((len(caption_ids), 4)).astype(np.float32),
            ),
        ],
        artifacts={
            "zeroshot_confusion": (
                "application/json",
                b'{"labels": ["cat", "dog"], "matrix": [[2, 0], [0, 1]]}',
            )
        },
    )
    claimed = claim_next(worker_id, ["cpu"], [])
    assert claimed is not None
    assert finish_run(
        claimed.id,
        worker_id,
        results,
        hardware_profile_id=profile_id,
        model_fingerprint={"model_id": MODEL, "dtype": "fp32"},
        resolved_device="cpu",
    )
    return claimed.id


def snapshot(run_id: int) -> dict[str, Any]:
    """Everything about a run, with database ids replaced by (filename, caption text)."""
    with read_session() as s:
        run = s.get(Run, run_id)
        assert run is not None
        hp = s.get(HardwareProfile, run.hardware_profile_id)
        items = {i: f for i, f in s.execute(select(Item.id, Item.filename))}
        caps = {
            cid: (items[iid], t)
            for cid, iid, t in s.execute(select(Caption.id, Caption.item_id, Caption.text))
        }

        def refs(details: dict[str, Any] | None) -> Any:
            d = dict(details or {})
            for key in ("top", "reranked"):
                if key in d:
                    d[key] = [[caps[c], sc] for c, sc in d[key]]
            return d

        def rows(model: Any, *cols: str) -> list[tuple[Any, ...]]:
            got = s.scalars(select(model).where(model.run_id == run_id).order_by(model.id))
            return [tuple(getattr(r, c) for c in cols) for r in got]

        return {
            "run": {
                c: getattr(run, c)
                for c in (
                    "model_id",
                    "task",
                    "device",
                    "resolved_device",
                    "dtype",
                    "batch_size",
                    "options",
                    "attempts",
                    "max_attempts",
                    "progress_done",
                    "progress_total",
                    "model_fingerprint",
                    "created",
                    "started_at",
                    "finished_at",
                    "status",
                )
            },
            "hardware": {c: getattr(hp, c) for c in (*HARDWARE, "fingerprint")} if hp else None,
            "metrics": rows(Metric, "name", "value", "category", "ci_low", "ci_high", "details"),
            "timings": rows(Timing, "name", "value", "unit", "batch_size"),
            "items": sorted(
                (
                    items[r.item_id],
                    r.correct,
                    r.rank,
                    r.score,
                    json.dumps(refs(r.details), sort_keys=True),
                )
                for r in s.scalars(select(ItemResult).where(ItemResult.run_id == run_id))
            ),
            "captions": [
                (items[i], t, sc, f)
                for i, t, sc, f in rows(GeneratedCaption, "item_id", "text", "scores", "flags")
            ],
            "embeddings": [
                (
                    e.kind,
                    e.count,
                    e.dim,
                    e.data,
                    [
                        items[i] if e.kind == "image" else caps[i]
                        for i in np.frombuffer(e.row_ids, np.int64).tolist()
                    ],
                )
                for e in s.scalars(
                    select(RunEmbedding)
                    .where(RunEmbedding.run_id == run_id)
                    .order_by(RunEmbedding.kind)
                )
            ],
            "artifacts": rows(RunArtifact, "name", "content_type", "data"),
        }


@pytest.fixture
def second_home(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """A fresh home on the same kind of database as `db_url` (its own PostgreSQL schema)."""
    home = tmp_path / "other-home"
    schema = None
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{home / 'mirada.db'}"
    else:
        schema = f"mirada_{uuid.uuid4().hex[:12]}"
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    yield home, url
    dispose_engines()
    if schema:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _switch(monkeypatch: pytest.MonkeyPatch, home: Path, url: str) -> None:
    monkeypatch.setenv("MIRADA_HOME", str(home))
    monkeypatch.setenv("MIRADA_DATABASE_URL", url)
    dispose_engines()


def test_round_trip_is_exact_and_idempotent(
    db_url: str,
    mirada_home: Path,
    second_home: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = _seed_run(tmp_path)
    before = snapshot(run_id)
    bundle = tmp_path / "run.mirada.zip"
    out = run_cli("export", str(run_id), "--format", "bundle", "-o", str(bundle))
    assert out.returncode == 0, out.stderr
    assert "bundle: 4 metrics, 2 timings, 3 items" in out.stderr

    _switch(monkeypatch, *second_home)
    out = run_cli("import-results", str(bundle))
    assert out.returncode == 0, out.stderr
    assert "matches no dataset here" in out.stdout and "not present here" in out.stdout
    with read_session() as s:
        imported = s.scalars(select(Run)).one()
        dataset = s.get(Dataset, imported.dataset_id)
    assert f"imported run {imported.id} from " in out.stdout
    assert (imported.origin_run_id, imported.status, imported.worker_id) == (
        run_id,
        RunStatus.succeeded,
        None,
    )
    assert imported.origin_host and imported.origin_bundle_sha256 and imported.imported_at
    assert dataset is not None and dataset.source_format == "bundle"
    assert snapshot(imported.id) == before

    # Twice: a no-op that says so.
    again = run_cli("import-results", str(bundle))
    assert again.returncode == 0 and "already imported as run" in again.stdout
    with read_session() as s:
        assert s.scalar(select(Run.id).where(Run.id != imported.id)) is None

    # Never executed here: no worker can claim it, and it cannot be retried.
    from mirada.queue import claim_next, register_worker, retry_run

    worker_id, _ = register_worker("w2", "laptop", 2, [], ["cpu"], HARDWARE)
    assert claim_next(worker_id, ["cpu"], []) is None
    with pytest.raises(Exception, match="only"):
        retry_run(imported.id)

    # Re-exported from here, it keeps its origin and is the same bundle content.
    bundle2 = tmp_path / "again.zip"
    assert (
        run_cli("export", str(imported.id), "--format", "bundle", "-o", str(bundle2)).returncode
        == 0
    )
    out2 = run_cli("import-results", str(bundle2))
    assert "already imported" in out2.stdout and f"(run {run_id} there)" in out2.stdout


def test_with_images_imports_the_files_and_reuses_a_matching_dataset(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _seed_run(tmp_path)
    bundle = tmp_path / "b.zip"
    out = run_cli("export", str(run_id), "--format", "bundle", "--with-images", "-o", str(bundle))
    assert out.returncode == 0 and "3 image files" in out.stderr, out.stderr

    _switch(monkeypatch, tmp_path / "h2", f"sqlite:///{tmp_path / 'h2' / 'mirada.db'}")
    out = run_cli("import-results", str(bundle))
    assert out.returncode == 0 and "without image files" not in out.stdout, out.stdout
    with read_session() as s:
        shas = [
            (sha, ext)
            for sha, ext in s.execute(
                select(Item.image_sha256, Dataset.source_format).join(Dataset)
            )
        ]
    from mirada.queries.common import item_frame

    frame = item_frame(1)
    for sha, ext in zip(frame["sha256"], frame["ext"], strict=True):
        assert (tmp_path / "h2" / "images" / f"{sha}.{ext}").is_file()
    assert len(shas) == 3

    # A second home that already has the same dataset: it is reused, not copied.
    _switch(monkeypatch, tmp_path / "h3", f"sqlite:///{tmp_path / 'h3' / 'mirada.db'}")
    local = import_dataset(_folder(tmp_path / "again"), name="my pets").id
    out = run_cli("import-results", str(bundle))
    assert out.returncode == 0 and "note:" not in out.stdout, out.stdout
    assert f"on dataset 'my pets' (id {local})" in out.stdout


def _rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change.get(info.filename, zin.read(info)))
        for name, data in change.items():
            if name not in zin.namelist():
                zout.writestr(name, data)


def test_refusals_are_clear_and_write_nothing(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _seed_run(tmp_path)
    bundle = tmp_path / "b.zip"
    assert run_cli("export", str(run_id), "--format", "bundle", "-o", str(bundle)).returncode == 0
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        results = zf.read("results.json")

    cases = {
        "tampered": (
            {"results.json": results.replace(b"123.4", b"999.9")},
            "does not match its checksum",
        ),
        "newer": (
            {"manifest.json": json.dumps({**manifest, "schema_version": 99}).encode()},
            "newer Mirada",
        ),
        "traversal": ({"../evil.json": b"{}"}, "unexpected member '../evil.json'"),
        "extra": ({"artifacts/77.bin": b"x"}, "is not in the manifest"),
    }
    _switch(monkeypatch, tmp_path / "h2", f"sqlite:///{tmp_path / 'h2' / 'mirada.db'}")
    for label, (change, message) in cases.items():
        bad = tmp_path / f"{label}.zip"
        _rewrite(bundle, bad, change)
        out = run_cli("import-results", str(bad))
        assert out.returncode != 0 and message in out.stderr, (label, out.stderr)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    out = run_cli("import-results", str(tmp_path / "junk.zip"))
    assert out.returncode != 0 and "not a Mirada result bundle" in out.stderr
    with read_session() as s:
        assert s.scalar(select(Run.id)) is None and s.scalar(select(Dataset.id)) is None


def test_a_run_that_cannot_land_takes_its_new_dataset_with_it(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mirada.bundles.load as load

    run_id = _seed_run(tmp_path)
    bundle = tmp_path / "b.zip"
    assert run_cli("export", str(run_id), "--format", "bundle", "-o", str(bundle)).returncode == 0
    _switch(monkeypatch, tmp_path / "h2", f"sqlite:///{tmp_path / 'h2' / 'mirada.db'}")

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(load, "write_results", disk_full)
    with pytest.raises(OSError):
        load.import_bundle(bundle)
    with read_session() as s:  # the dataset created for the run went with it
        assert s.scalar(select(Run.id)) is None and s.scalar(select(Dataset.id)) is None


def test_export_bundle_needs_an_output_file_and_a_succeeded_run(
    mirada_home: Path, tmp_path: Path
) -> None:
    run_id = _seed_run(tmp_path)
    out = run_cli("export", str(run_id), "--format", "bundle")
    assert out.returncode != 0 and "give -o FILE" in out.stderr
    out = run_cli("export", str(run_id), "--with-images", "-o", str(tmp_path / "x.json"))
    assert out.returncode != 0 and "--format bundle only" in out.stderr
    out = run_cli("export", "999", "--format", "bundle", "-o", str(tmp_path / "y.zip"))
    assert out.returncode != 0 and "does not exist" in out.stderr


def test_a_symlink_member_is_refused(mirada_home: Path, tmp_path: Path) -> None:
    run_id = _seed_run(tmp_path)
    bundle = tmp_path / "b.zip"
    assert run_cli("export", str(run_id), "--format", "bundle", "-o", str(bundle)).returncode == 0
    bad = tmp_path / "link.zip"
    with zipfile.ZipFile(bundle) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            if info.filename == "results.json":
                info.external_attr = (0o120777) << 16  # a symbolic link
            zout.writestr(info, zin.read(info.filename))
    out = run_cli("import-results", str(bad))
    assert out.returncode != 0 and "'results.json' is not a regular file" in out.stderr


def test_run_info_names_the_origin(
    mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirada.queries.common import run_info

    run_id = _seed_run(tmp_path)
    info = run_info(run_id)
    assert info is not None and info.origin is None
    assert json.loads(run_cli("show", str(run_id), "--json").stdout)["origin"] is None
    bundle = tmp_path / "b.zip"
    assert run_cli("export", str(run_id), "--format", "bundle", "-o", str(bundle)).returncode == 0
    _switch(monkeypatch, tmp_path / "h2", f"sqlite:///{tmp_path / 'h2' / 'mirada.db'}")
    assert run_cli("import-results", str(bundle)).returncode == 0
    imported = run_info(1)
    assert imported is not None and imported.origin is not None
    assert imported.origin.startswith("imported from ") and imported.origin.endswith(
        f"(run {run_id})"
    )
    shown = run_cli("show", "1")
    assert f"(run {run_id} there)" in shown.stdout and "never re-executed" in shown.stdout
    as_json = json.loads(run_cli("show", "1", "--json").stdout)
    assert as_json["origin"]["run_id"] == run_id and as_json["origin"]["host"]
