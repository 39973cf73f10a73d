"""Bundle imports bounded in memory by design (issue 22 §3): the manifest is read as a stream
and refused at its first absent member; large JSON members are streamed, hashed as they are
read and built only within the bundle's value budget; NPY members are viewed, not copied.
Behaviour only: the peak RSS figures are in benchmarks/bench_bundle_memory.py."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import run_cli
from sqlalchemy import select

import mirada.bundles.archive as archive
from mirada.bundles import BundleError, import_bundle
from mirada.bundles.archive import MANIFEST, RESULTS, BundleReader, content_id
from mirada.db import read_session
from mirada.db.models import Dataset, Run


@pytest.fixture
def bundle(mirada_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid bundle of the seeded run, and a fresh empty home to import it into."""
    from test_bundles import _seed_run, _switch

    run_id = _seed_run(tmp_path)
    path = tmp_path / "run.zip"
    out = run_cli("export", str(run_id), "--format", "bundle", "-o", str(path))
    assert out.returncode == 0, out.stderr
    _switch(monkeypatch, tmp_path / "h2", f"sqlite:///{tmp_path / 'h2' / 'mirada.db'}")
    return path


def _nothing_imported() -> None:
    with read_session() as s:
        assert s.scalar(select(Run.id)) is None and s.scalar(select(Dataset.id)) is None


def _rewrite(
    src: Path, dst: Path, edit: Callable[[dict[str, bytes], dict[str, Any]], None]
) -> Path:
    """Copy a bundle with `edit` applied to its members and manifest, checksums redone."""
    with zipfile.ZipFile(src) as zin:
        members = {i.filename: zin.read(i) for i in zin.infolist()}
    manifest = json.loads(members.pop(MANIFEST))
    edit(members, manifest)
    for name, data in members.items():
        manifest["members"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest["content_sha256"] = content_id(
        {n: e["sha256"] for n, e in manifest["members"].items()}
    )
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        zout.writestr(MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            zout.writestr(name, data)
    return dst


def test_a_manifest_listing_absent_members_is_refused_at_the_first(
    bundle: Path, tmp_path: Path
) -> None:
    def absent(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        fake = {"sha256": "0" * 64, "size": 1}
        manifest["members"].update({f"artifacts/{n}.bin": fake for n in range(200_000)})

    forged = _rewrite(bundle, tmp_path / "absent.zip", absent)
    with pytest.raises(BundleError, match=r"member 'artifacts/\d+\.bin' listed in the manifest"):
        import_bundle(forged)
    _nothing_imported()


def test_a_manifest_longer_than_its_members_need_is_refused_unread(
    bundle: Path, tmp_path: Path
) -> None:
    # Padding inside one entry: every name is present, but the manifest holds far more than
    # its members need; it is refused after the events a real manifest could have.
    def padded(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        manifest["padding"] = list(range(100_000))

    forged = _rewrite(bundle, tmp_path / "padded.zip", padded)
    with pytest.raises(BundleError, match="the manifest lists more than it holds"):
        import_bundle(forged)
    _nothing_imported()


def test_a_manifest_entry_that_is_not_an_object_is_malformed(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as zin:
        members = {i.filename: zin.read(i) for i in zin.infolist()}
    manifest = json.loads(members[MANIFEST])
    manifest["members"][RESULTS] = [manifest["members"][RESULTS]["sha256"]]
    members[MANIFEST] = json.dumps(manifest).encode()
    forged = tmp_path / "entry.zip"
    with zipfile.ZipFile(forged, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    with pytest.raises(BundleError, match=r"the manifest entry of 'results\.json' is malformed"):
        import_bundle(forged)


def _spy_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    streamed: list[str] = []
    real = BundleReader._verify_stream

    def spy(self: BundleReader, name: str) -> Any:
        streamed.append(name)
        return real(self, name)

    monkeypatch.setattr(BundleReader, "_verify_stream", spy)
    return streamed


def test_a_large_member_is_streamed_and_imports_the_same_run(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_bundles import _switch, snapshot

    whole = import_bundle(bundle)
    expected = snapshot(whole.run_id)

    _switch(monkeypatch, tmp_path / "h3", f"sqlite:///{tmp_path / 'h3' / 'mirada.db'}")
    monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 0)  # every JSON member is "large"
    streamed = _spy_streams(monkeypatch)
    done = import_bundle(bundle)
    assert {"run.json", "dataset.json", RESULTS} <= set(streamed)
    assert snapshot(done.run_id) == expected


def test_a_member_past_the_value_budget_is_refused_before_it_is_built(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def inflate(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        doc = json.loads(members[RESULTS])
        doc["items"][0]["details"]["padding"] = [[0, 1, 2, 3]] * 50_000
        members[RESULTS] = json.dumps(doc).encode()

    inflated = _rewrite(bundle, tmp_path / "inflated.zip", inflate)
    monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 64 * 1024)
    streamed = _spy_streams(monkeypatch)
    built: list[str] = []
    real_items = archive.ijson.items

    def items(*args: Any, **kwargs: Any) -> Any:
        built.append("x")
        return real_items(*args, **kwargs)

    monkeypatch.setattr(archive.ijson, "items", items)
    monkeypatch.setattr(archive, "MAX_JSON_VALUES", 100_000)
    with pytest.raises(BundleError, match=f"{RESULTS} takes the bundle's JSON past 100,000 values"):
        import_bundle(inflated)
    assert streamed == [RESULTS] and not built  # counted, never built
    _nothing_imported()

    # The same budget holds for members read whole.
    monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 2**30)
    with pytest.raises(BundleError, match="past 100,000 values"):
        import_bundle(inflated)
    _nothing_imported()
    monkeypatch.setattr(archive, "MAX_JSON_VALUES", 1_000_000)
    assert import_bundle(bundle).run_id  # the valid bundle is far inside the budget


def test_a_streamed_member_is_still_checked_against_its_checksum(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with zipfile.ZipFile(bundle) as zin:
        members = {i.filename: zin.read(i) for i in zin.infolist()}
    members[RESULTS] = members[RESULTS].replace(b"123.4", b"999.9")  # same size, other bytes
    forged = tmp_path / "tampered.zip"
    with zipfile.ZipFile(forged, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 0)
    with pytest.raises(BundleError, match=r"'results\.json' does not match its checksum"):
        import_bundle(forged)
    _nothing_imported()


def _npy_bundle(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "npy.zip"
    archive.write_bundle(path, {"embeddings/image.npy": data})
    return path


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_members_are_viewed_in_place_and_equal_np_load(
    mirada_home: Path, tmp_path: Path, order: str
) -> None:
    array = np.asarray(np.arange(12, dtype=np.float32).reshape(3, 4), order=order)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    with BundleReader(_npy_bundle(tmp_path, buf.getvalue())) as reader:
        got = reader.read_npy("embeddings/image.npy", "float32", 2)
    assert np.array_equal(got, array) and not got.flags.owndata


def test_an_npy_header_that_lies_about_its_data_is_refused(
    mirada_home: Path, tmp_path: Path
) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), np.float32), allow_pickle=False)
    short = buf.getvalue()[:-4]  # the header still says 3x4
    with (
        BundleReader(_npy_bundle(tmp_path, short)) as reader,
        pytest.raises(BundleError, match=r"not a valid \.npy array"),
    ):
        reader.read_npy("embeddings/image.npy", "float32", 2)


def test_per_item_arrays_are_validated_as_they_stream_never_built_whole(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 0)  # every JSON member is "large"
    built: list[str] = []
    real_build = BundleReader._stream_json

    def build(self: BundleReader, name: str) -> Any:
        built.append(name)
        return real_build(self, name)

    prefixes: list[str] = []
    real_items = archive.ijson.items

    def items(source: Any, prefix: str, **kwargs: Any) -> Any:
        prefixes.append(prefix)
        return real_items(source, prefix, **kwargs)

    monkeypatch.setattr(BundleReader, "_stream_json", build)
    monkeypatch.setattr(archive.ijson, "items", items)
    assert import_bundle(bundle).run_id
    assert built == ["run.json"]  # dataset.json and results.json never as whole documents
    assert {"items.item", "captions.item"} <= set(prefixes) and "" not in prefixes[1:]


def _edit_json(member: str, edit: Callable[[dict[str, Any]], None]) -> Any:
    def apply(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        doc = json.loads(members[member])
        edit(doc)
        members[member] = json.dumps(doc).encode()

    return apply


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(
    ("member", "edit", "message"),
    [
        (
            "dataset.json",
            lambda d: d["items"][1]["captions"].__setitem__(0, "a\x00cat"),
            r"bundle dataset\.json: items\[1\]\.captions\[0\]: contains a NUL",
        ),
        (
            "dataset.json",
            lambda d: d.update(fingerprint="0" * 64),
            r"bundle dataset\.json: fingerprint does not match the items",
        ),
        (
            RESULTS,
            lambda d: d["items"].append(d["items"][0]),
            r"bundle results\.json: items: a result for item 0 appears twice",
        ),
        (
            RESULTS,
            lambda d: d["items"][1].update(rank=-1),
            r"bundle results\.json: items\[1\]\.rank: Input should be greater than or equal to 1",
        ),
        (
            RESULTS,
            lambda d: d.update(items={"0": d["items"][0]}),
            r"bundle results\.json: items: Input should be a valid list",
        ),
        (RESULTS, lambda d: d.pop("items"), r"bundle results\.json: items: Field required"),
    ],
    ids=["nul-caption", "fingerprint", "twice", "rank", "not-a-list", "missing"],
)
def test_an_entry_is_refused_where_it_is_whether_streamed_or_read_whole(
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    member: str,
    edit: Callable[[dict[str, Any]], None],
    message: str,
    streamed: bool,
) -> None:
    forged = _rewrite(bundle, tmp_path / "forged.zip", _edit_json(member, edit))
    if streamed:
        monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 0)
    with pytest.raises(BundleError, match=message):
        import_bundle(forged)
    _nothing_imported()


def test_a_streamed_member_giving_a_key_twice_is_refused(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stream of "items" would read both arrays, where json.loads keeps the last one.
    def twice(members: dict[str, bytes], manifest: dict[str, Any]) -> None:
        members[RESULTS] = b'{"items": [], ' + members[RESULTS].lstrip()[1:]

    forged = _rewrite(bundle, tmp_path / "twice.zip", twice)
    monkeypatch.setattr(archive, "STREAM_ABOVE_BYTES", 0)
    with pytest.raises(BundleError, match=r"member 'results\.json' gives 'items' twice"):
        import_bundle(forged)
    _nothing_imported()
