"""Issue 22 §1: a result bundle is untrusted input. Each class of bad value or inconsistency a
hostile pass got past `import-results` is refused here with one line naming the member and
the field, and the database is left as it was. Bundles are forged the way an attacker would:
members edited, then the manifest's checksums and content id redone (archive.write_bundle).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import run_cli
from sqlalchemy import func, select

from mirada.bundles.archive import DATASET, MANIFEST, RESULTS, RUN, npy_bytes, write_bundle
from mirada.bundles.build import HARDWARE_FIELDS
from mirada.bundles.schema import Hardware, dataset_fingerprint
from mirada.db import dispose_engines, read_session, write_session
from mirada.db.models import Base, Metric

Members = dict[str, bytes]
Edit = Callable[[Members], None]


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Members]:
    """The members of one valid bundle (test_bundles' match run), built once per module."""
    from test_bundles import _seed_run

    root = tmp_path_factory.mktemp("valid-bundle")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIRADA_HOME", str(root / "home"))
        mp.delenv("MIRADA_DATABASE_URL", raising=False)
        dispose_engines()
        run_id = _seed_run(root)
        out = run_cli("export", str(run_id), "--format", "bundle", "-o", str(root / "b.zip"))
        assert out.returncode == 0, out.stderr
        dispose_engines()
    with zipfile.ZipFile(root / "b.zip") as zf:
        yield {n: zf.read(n) for n in zf.namelist() if n != MANIFEST}


def forge(valid: Members, where: Path, *edits: Edit) -> Path:
    members = dict(valid)
    for edit in edits:
        edit(members)
    path, _ = write_bundle(where / "forged.zip", members)
    return path


def doc(member: str, change: Callable[[Any], None]) -> Edit:
    """Edit a JSON member in place."""

    def edit(members: Members) -> None:
        d = json.loads(members[member])
        change(d)
        # json.dumps writes inf as Infinity, which the archive refuses as not JSON; 1e999 is
        # what the hostile pass wrote, and json parses it to inf
        members[member] = json.dumps(d, allow_nan=True).replace("Infinity", "1e999").encode()

    return edit


def metric(index: int, **values: Any) -> Edit:
    return doc(RESULTS, lambda d: d["metrics"][index].update(values))


def run_field(**values: Any) -> Edit:
    return doc(RUN, lambda d: d.update(values))


def npy(member: str, array: np.ndarray) -> Edit:
    def edit(members: Members) -> None:
        members[member] = npy_bytes(array)

    return edit


def artifact(name: str, data: Any, content_type: str = "application/json") -> Edit:
    def edit(members: Members) -> None:
        d = json.loads(members[RESULTS])
        d["artifacts"] = [a for a in d["artifacts"] if a["name"] != name]
        member = f"artifacts/{len(d['artifacts']) + 10}.bin"
        d["artifacts"].append({"name": name, "content_type": content_type, "member": member})
        members[RESULTS] = json.dumps(d).encode()
        members[member] = data if isinstance(data, bytes) else json.dumps(data).encode()

    return edit


def refit_fingerprint(members: Members) -> None:
    """Recompute the dataset fingerprint after editing items, as a careful forger would."""
    ds = json.loads(members[DATASET])
    fp = dataset_fingerprint((it["filename"], it["image"]["sha256"]) for it in ds["items"])
    ds["fingerprint"] = fp
    members[DATASET] = json.dumps(ds).encode()
    members[RUN] = json.dumps({**json.loads(members[RUN]), "dataset_fingerprint": fp}).encode()


def counts() -> dict[str, int]:
    with read_session() as s:
        return {
            t.name: s.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def refused(path: Path) -> str:
    """Import `path`; assert one clear line and nothing written; return the line."""
    before = counts()
    out = run_cli("import-results", str(path))
    assert out.returncode != 0, out.stdout
    line = out.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert counts() == before
    return line


def first_caption(d: Any) -> None:
    d["items"][0]["captions"][0] = "a cat\x00 on a mat"


IMAGE, TEXT = "embeddings/image.npy", "embeddings/text.npy"
CASES: dict[str, tuple[list[Edit], str]] = {
    # the list
    "metric 1e999": (
        [metric(0, value=float("inf"))],
        r"results\.json: metrics\[0\]\.value: Input should be a finite number",
    ),
    "recall -3.5": (
        [metric(0, value=-3.5, ci_low=None, ci_high=None)],
        r"value -3\.5 of i2t_recall@1 \(proportion\) is outside 0 \.\. 1",
    ),
    "MRR -3.5": (
        [metric(1, value=-3.5)],
        r"metrics\[1\]: value -3\.5 of mrr \(mean\) is outside 0",
    ),
    "recall 42": ([metric(0, value=42.0, ci_high=43.0)], r"value 42\.0 of i2t_recall@1"),
    # a score above its scale's ceiling (names.SCORE_CEILINGS): MRR is a mean of 1/rank
    "MRR 1.5": (
        [metric(1, value=1.5, ci_low=None, ci_high=None)],
        r"metrics\[1\]: value 1\.5 of mrr \(mean\) is outside 0 \.\. 1",
    ),
    "CI [7, -2]": ([metric(0, ci_low=7.0, ci_high=-2.0)], r"the CI \[7\.0, -2\.0\] does not hold"),
    "all-NaN embeddings": (
        [npy(IMAGE, np.full((3, 4), np.nan, np.float32))],
        r"embeddings/image\.npy: row 0 is not all finite numbers",
    ),
    "8-d image, 3-d text": (
        [npy(IMAGE, np.ones((3, 8), np.float32)), npy(TEXT, np.ones((5, 3), np.float32))],
        r"image vectors have 8 dimensions and text vectors 3",
    ),
    "3 labels, 2x2 matrix": (
        [artifact("zeroshot_confusion", {"labels": ["a", "b", "c"], "matrix": [[1, 0], [0, 1]]})],
        r"artifact 'zeroshot_confusion'\): matrix must be 3x3 for its 3 labels",
    ),
    "variants of non-objects": (
        [artifact("variants", [1, 2, 3])],
        r"variants.*\[0\]: expected an object, got int",
    ),
    "negative batch size": ([run_field(batch_size=-8)], r"run\.json: batch_size: Input should"),
    "negative attempts": ([run_field(attempts=-1)], r"run\.json: attempts: Input should"),
    "negative progress": ([run_field(progress_done=-5)], r"run\.json: progress_done: Input"),
    "created in 9999": (
        [run_field(created="9999-01-01T00:00:00+00:00")],
        r"run\.json: created: 9999-01-01T00:00:00\+00:00 is outside 2000-01-01",
    ),
    "started in year 1": (
        [run_field(started_at="0001-01-01T00:00:00+00:00")],
        r"run\.json: started_at: .* is outside",
    ),
    "options queue refuses": (
        [run_field(options={"zeroshot_templates": ["no placeholder"]})],
        r"run\.json: options: run option zeroshot_templates .* of task match",
    ),
    "unknown option": (
        [run_field(options={"shots": 5})],
        r"run\.json: options: unknown run option 'shots' for task match",
    ),
    "two items, one filename": (
        [
            doc(DATASET, lambda d: d["items"][1].update(filename=d["items"][0]["filename"])),
            refit_fingerprint,
        ],
        r"dataset\.json: items 0 and 1 have the same filename 'cat1\.png'",
    ),
    # siblings found beyond the list
    "lone surrogate in a caption": (
        [doc(DATASET, lambda d: d["items"][0]["captions"].append("x\ud800"))],
        r"dataset\.json: items\[0\]\.captions\[2\]: contains a lone UTF-16 surrogate",
    ),
    "zero vector": (
        [npy(IMAGE, np.zeros((3, 4), np.float32))],
        r"embeddings/image\.npy: row 0 is all zeros",
    ),
    "embedding rows miss an item": (
        [npy("embeddings/image.rows.npy", np.array([0, 0, 1], np.int64))],
        r"embeddings/image\.npy: rows must name every item of dataset\.json once",
    ),
    "two results for one item": (
        [doc(RESULTS, lambda d: d["items"].append(d["items"][0]))],
        r"results\.json: items: a result for item 0 appears twice",
    ),
    "caption reference out of range": (
        [doc(RESULTS, lambda d: d["items"][0]["details"].update(top=[[99, 0.5]]))],
        r"items\[0\]\.details\.top: caption 99 is out of range",
    ),
    "score as text in details": (
        [doc(RESULTS, lambda d: d["items"][0]["details"].update(top=[[0, "0.5"]]))],
        r"results\.json: items\[0\]\.details\.top\[0\]\[1\]: Input should be a valid number",
    ),
    "negative timing": (
        [doc(RESULTS, lambda d: d["timings"][0].update(value=-1.0))],
        r"results\.json: timings\[0\]\.value: Input should be greater than or equal to 0",
    ),
    "duplicate metric row": (
        [doc(RESULTS, lambda d: d["metrics"].append(d["metrics"][0]))],
        r"metrics: \(name, category\) \('i2t_recall@1', None\) appears twice",
    ),
    "progress past its total": (
        [run_field(progress_done=10, progress_total=3)],
        r"progress_done 10 exceeds progress_total 3",
    ),
    "finished before started": (
        [run_field(finished_at="2001-01-01T00:00:00+00:00")],
        r"finished_at is before started_at",
    ),
    "unknown key": ([run_field(shots=1)], r"run\.json: shots: Extra inputs are not permitted"),
    "bool as a count": ([run_field(attempts=True)], r"run\.json: attempts: Input should be"),
    "one image described twice": (
        [
            doc(
                DATASET,
                lambda d: d["items"][1].update(image={**d["items"][0]["image"], "width": 999}),
            ),
            refit_fingerprint,
        ],
        r"items\[1\]\.image: image .* is described twice, differently",
    ),
    "unknown artifact": ([artifact("mystery", {})], r"'mystery'\): unknown artifact name"),
    "projection of the wrong shape": (
        [
            artifact(
                "projection:pca:image", npy_bytes(np.ones((3, 3), np.float32)), "application/x-npy"
            )
        ],
        r"must be float32 \[N, 2\], not float32 \(3, 3\)",
    ),
    "measurement with infinity": (
        [artifact("measurement", b'{"rounds": 1e999}')],
        r"'measurement'\): not plain JSON \(holds the non-finite number inf\)",
    ),
    "generated caption twice for an item": (
        [doc(RESULTS, lambda d: d["captions"].append(d["captions"][0]))],
        r"captions: a generated caption for item 0 appears twice",
    ),
    "hardware with negative cores": (
        [doc(RUN, lambda d: d["hardware"].update(cpu_cores=-2))],
        r"run\.json: hardware\.cpu_cores: Input should be greater than or equal to 0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_forged_bundle_is_refused_in_one_line_and_writes_nothing(
    case: str, valid: Members, mirada_home: Path, tmp_path: Path
) -> None:
    edits, message = CASES[case]
    line = refused(forge(valid, tmp_path, *edits))
    assert re.search(message, line), line
    assert line.startswith("mirada import-results: error: bundle ") or "bundle " in line


def _details_1e999(members: Members) -> None:
    doc(RESULTS, lambda d: d["metrics"][0]["details"].update(spread=float("inf")))(members)


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (
            [doc(DATASET, first_caption)],
            r"dataset\.json: items\[0\]\.captions\[0\]: contains a NUL",
        ),
        (
            [doc(RESULTS, lambda d: d["captions"][0].update(text="a\x00cat"))],
            r"results\.json: captions\[0\]\.text: contains a NUL character",
        ),
        (
            [doc(RUN, lambda d: d.update(model_id="hf-clip:x\x00y"))],
            r"run\.json: model_id: contains a NUL",
        ),
        ([_details_1e999], r"metrics\[0\]\.details: holds the non-finite number inf"),
        ([metric(0, value=1e999)], r"metrics\[0\]\.value: Input should be a finite number"),
    ],
    ids=[
        "NUL in a caption",
        "NUL in a generated caption",
        "NUL in the model id",
        "1e999 in details",
        "1e999 value",
    ],
)
def test_what_postgresql_refuses_is_refused_on_both_backends(
    edits: list[Edit], message: str, valid: Members, db_url: str, tmp_path: Path
) -> None:
    line = refused(forge(valid, tmp_path, *edits))
    assert re.search(message, line), line


def test_the_valid_bundle_imports(valid: Members, db_url: str, tmp_path: Path) -> None:
    out = run_cli("import-results", str(forge(valid, tmp_path)))
    assert out.returncode == 0, out.stderr
    assert run_cli("show", "1").returncode == 0


def test_export_refuses_a_stored_run_that_import_would_refuse(
    mirada_home: Path, tmp_path: Path
) -> None:
    """A value stored before the checks existed: export says why instead of a ValueError."""
    from test_bundles import _seed_run

    run_id = _seed_run(tmp_path)
    with write_session() as s:
        row = s.scalars(select(Metric).where(Metric.run_id == run_id)).first()
        assert row is not None
        row.value, row.ci_low, row.ci_high = 42.0, None, None
    out = run_cli("export", str(run_id), "--format", "bundle", "-o", str(tmp_path / "x.zip"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"run {run_id} cannot be exported as a bundle: an import would refuse it" in out.stderr
    assert "results.json: metrics[0]: value 42.0 of i2t_recall@1 (proportion)" in out.stderr
    assert not (tmp_path / "x.zip").exists()


def test_the_hardware_model_lists_every_reported_column() -> None:
    assert set(Hardware.model_fields) == set(HARDWARE_FIELDS)


def test_a_bundle_carries_no_nul_rule_of_its_own() -> None:
    """The text rule is the dataset importer's (one function, not two copies)."""
    from mirada.bundles import schema
    from mirada.datasets import entries

    assert schema.text_problem is entries.text_problem


def test_metric_ci_slack_allows_rounding_only(
    valid: Members, mirada_home: Path, tmp_path: Path
) -> None:
    """A bootstrap bound equal to the value up to its last bits is accepted; more is not."""
    ok = metric(0, value=2 / 3, ci_low=0.6666666666666667, ci_high=0.9)
    assert run_cli("import-results", str(forge(valid, tmp_path, ok))).returncode == 0
    assert counts()["runs"] == 1
    bad = metric(0, value=0.5, ci_low=0.6, ci_high=0.9)
    assert "does not hold the value 0.5" in refused(forge(valid, tmp_path, bad))
