"""`mirada export`: a finished run (seeded through the real queue, no model) in every format."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_runner import CliResult, run_cli
from PIL import Image as PILImage
from sqlalchemy import select

from mirada.datasets import import_dataset
from mirada.db import read_session
from mirada.db.models import Caption, Item
from mirada.errors import MiradaError, NotFoundError
from mirada.export import build_export, to_csv, to_json, to_markdown, write_atomic
from mirada.results import CaptionOutcome, ItemOutcome, MetricValue, RunResults, TimingValue

ROOT = Path(__file__).resolve().parent.parent
MODEL = "hf-clip:mirada/demo-clip"
CAPTION_MODEL = "blip-caption:mirada/demo-blip"  # queue validation refuses CLIP for captions
FINGERPRINT = {
    "model_id": MODEL,
    "family": "hf-clip",
    "revision": "0123456789abcdef",
    "dtype": "fp32",
    "preprocessing": {"size": 224},
    "options": {},
}
HARDWARE = {
    "hostname": "test-host",
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
    "details": {},
}
# filename -> (category, captions). The "=" caption checks CSV formula escaping.
DATA = {
    "cat1.png": ("cat", ["=1+1 a cat on a mat", "a small cat"]),
    "cat2.png": ("cat", ["a cat sleeping"]),
    "dog1.png": ("dog", ["a dog running", "a brown dog"]),
    "dog2.png": ("dog", ["a dog with a ball"]),
}


@dataclass(frozen=True)
class Seeded:
    home: Path
    dataset_id: int
    match_run: int
    caption_run: int
    item_ids: dict[str, int]  # filename -> item id
    caption_ids: dict[str, list[int]]  # filename -> caption ids


def _write_folder(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = ["filename,caption,category"]
    for i, (filename, (category, captions)) in enumerate(DATA.items()):
        PILImage.new("RGB", (16 + i, 12), (40 * i, 90, 200)).save(folder / filename)
        rows += [f'{filename},"{c}",{category}' for c in captions]
    (folder / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _create_dataset(tmp_path: Path, name: str) -> int:
    folder = tmp_path / "photos"
    _write_folder(folder)
    return import_dataset(folder, name=name).id


def _claim_and_finish(worker_id: int, profile_id: int | None, results: RunResults) -> int:
    from mirada.queue import claim_next, finish_run

    claimed = claim_next(worker_id, ["cpu"], [])
    assert claimed is not None
    assert finish_run(
        claimed.id,
        worker_id,
        results,
        hardware_profile_id=profile_id,
        model_fingerprint=FINGERPRINT,
        resolved_device="cpu",
    )
    return claimed.id


@pytest.fixture
def seeded(db_url: str, mirada_home: Path, tmp_path: Path) -> Iterator[Seeded]:
    """Two succeeded runs (match, caption) on SQLite and on PostgreSQL (when reachable)."""
    from mirada.queue import enqueue, register_worker

    dataset_id = _create_dataset(tmp_path, "pets")
    with read_session() as s:
        rows = s.execute(
            select(Item.filename, Item.id, Caption.id)
            .join(Caption, Caption.item_id == Item.id)
            .where(Item.dataset_id == dataset_id)
            .order_by(Item.position, Caption.position)
        ).all()
    item_ids = {filename: item_id for filename, item_id, _ in rows}
    caption_ids: dict[str, list[int]] = {}
    for filename, _, cid in rows:
        caption_ids.setdefault(filename, []).append(cid)
    assert set(item_ids) == set(DATA)

    worker_id, profile_id = register_worker("w1", "test-host", 1, [], ["cpu"], HARDWARE)

    # A match run: cat1, cat2, dog1 right at rank 1; dog2's best caption is cat2's (rank 2).
    enqueue(dataset_id, MODEL, "match", device="cpu", dtype="fp32", batch_size=8)
    wrong_top = caption_ids["cat2.png"][0]
    items = []
    for filename, item_id in item_ids.items():
        ok = filename != "dog2.png"
        top = caption_ids[filename][0] if ok else wrong_top
        items.append(
            ItemOutcome(
                item_id=item_id,
                correct=ok,
                rank=1 if ok else 2,
                score=0.31 if ok else 0.12,
                details={
                    "top": [[top, 0.31], [caption_ids[filename][-1], 0.2]],
                    "category_correct": ok,
                    "zeroshot_pred": DATA[filename][0] if ok else "cat",
                    "category_top1": DATA[filename][0] if ok else "cat",
                },
            )
        )
    match_results = RunResults(
        metrics=[
            MetricValue("i2t_recall@1", 0.75, ci_low=0.25, ci_high=1.0),
            MetricValue("i2t_recall@5", 1.0, ci_low=1.0, ci_high=1.0),
            MetricValue("t2i_recall@1", 0.5, ci_low=0.1667, ci_high=0.8333),
            MetricValue("mrr", 0.875),
            MetricValue("i2t_median_rank", 1.0),
            MetricValue("i2t_recall@1", 1.0, category="cat", ci_low=1.0, ci_high=1.0),
            MetricValue("i2t_recall@1", 0.5, category="dog", ci_low=0.0, ci_high=1.0),
        ],
        items=items,
        timings=[
            TimingValue("load_s", 1.25, "s"),
            TimingValue("image_embed_per_s", 123.4, "items/s", 8),
        ],
    )
    match_run = _claim_and_finish(worker_id, profile_id, match_results)

    # A caption run with per-image scores and flags, and one unavailable metric.
    enqueue(dataset_id, CAPTION_MODEL, "caption", device="cpu", dtype="fp16", batch_size=4)
    captions = [
        CaptionOutcome(
            item_id=item_id,
            text=f"a photo of a {DATA[filename][0]}",
            scores={"BLEU-4": 0.25, "CIDEr": 1.5, "METEOR": None},
            flags={
                "repeated_ngram_rate": 0.0,
                "verbatim_repeat": filename == "cat2.png",
                "degenerate": filename == "cat2.png",
                "reasons": ["verbatim repeat"] if filename == "cat2.png" else [],
            },
        )
        for filename, item_id in item_ids.items()
    ]
    caption_results = RunResults(
        metrics=[
            MetricValue("BLEU-4", 0.2512),
            MetricValue("CIDEr", 1.335),
            MetricValue("METEOR", None, details={"unavailable": "Java is not installed"}),
        ],
        captions=captions,
        timings=[TimingValue("caption_per_s", 3.5, "items/s")],
    )
    caption_run = _claim_and_finish(worker_id, profile_id, caption_results)
    yield Seeded(mirada_home, dataset_id, match_run, caption_run, item_ids, caption_ids)


def _cli(*args: str) -> CliResult:
    """`mirada export ARGS` in-process (tests/cli_runner.py), with the fixtures' MIRADA_HOME /
    MIRADA_DATABASE_URL."""
    return run_cli("export", *args)


# --- the export dict ---------------------------------------------------------------------------


def test_build_export_match(seeded: Seeded) -> None:
    ex = build_export(seeded.match_run)
    assert ex["run"]["id"] == seeded.match_run
    assert ex["run"]["model"] == MODEL
    assert (ex["run"]["resolved_device"], ex["run"]["dtype"], ex["run"]["batch_size"]) == (
        "cpu",
        "fp32",
        8,
    )
    assert ex["dataset"] == {
        "id": seeded.dataset_id,
        "name": "pets",
        "n_images": 4,
        "n_captions": 6,
    }
    assert ex["model_fingerprint"] == FINGERPRINT
    assert len(ex["fingerprint_sha256"]) == 12
    assert ex["hardware"]["gpu_name"] == "Test GPU"
    r1 = ex["metrics"]["i2t_recall@1"]
    assert (r1["value"], r1["ci_low"], r1["ci_high"]) == (0.75, 0.25, 1.0)
    assert ex["per_category"]["dog"]["n_images"] == 2
    assert ex["per_category"]["dog"]["metrics"]["i2t_recall@1"]["value"] == 0.5
    assert [t["name"] for t in ex["timings"]] == ["load_s", "image_embed_per_s"]

    assert [it["filename"] for it in ex["items"]] == list(DATA)
    dog2 = ex["items"][3]
    assert (dog2["correct"], dog2["rank"], dog2["score"]) == (False, 2, 0.12)
    assert dog2["top_caption"] == "a cat sleeping"  # the wrong caption it ranked first
    assert dog2["references"] == DATA["dog2.png"][1]
    assert dog2["zeroshot_pred"] == "cat"
    assert ex["items"][0]["top_caption"] == "=1+1 a cat on a mat"
    assert any("any of the image's own captions" in n for n in ex["notes"])
    assert any("1,000 resamples" in n for n in ex["notes"])


def test_build_export_caption(seeded: Seeded) -> None:
    ex = build_export(seeded.caption_run)
    assert ex["run"]["dtype"] == "fp16" and ex["run"]["batch_size"] == 4
    assert ex["run"]["model"] == CAPTION_MODEL
    assert ex["metrics"]["METEOR"]["value"] is None
    assert ex["metrics"]["METEOR"]["unavailable"] == "Java is not installed"
    cat2 = ex["items"][1]
    assert cat2["generated_caption"] == "a photo of a cat"
    assert cat2["caption_scores"]["CIDEr"] == 1.5
    assert cat2["flags"]["degenerate"] is True
    notes = " ".join(ex["notes"])
    assert "pycocoevalcap" in notes and "CIDEr-D" in notes and "METEOR 1.5" in notes
    assert "1 of 4 generated captions are flagged degenerate" in notes


def test_unknown_run(mirada_home: Path) -> None:
    with pytest.raises(NotFoundError, match=r"run 999 .*mirada runs"):
        build_export(999)


def test_unfinished_run_is_refused(seeded: Seeded) -> None:
    from mirada.queue import enqueue

    queued = enqueue(seeded.dataset_id, MODEL, "match", device="cpu")
    with pytest.raises(MiradaError, match=rf"run {queued} is queued, not finished"):
        build_export(queued)


# --- renderers ---------------------------------------------------------------------------------


def test_json_roundtrip(seeded: Seeded) -> None:
    ex = build_export(seeded.match_run)
    assert json.loads(to_json(ex)) == json.loads(json.dumps(ex, default=str))


def test_csv_items(seeded: Seeded) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(build_export(seeded.match_run)))))
    assert len(rows) == len(DATA)
    assert [r["filename"] for r in rows] == list(DATA)
    assert {r["run_id"] for r in rows} == {str(seeded.match_run)}
    assert rows[3]["correct"] == "false" and rows[3]["rank"] == "2"
    assert rows[0]["correct"] == "true"
    assert rows[0]["top_caption"] == "'=1+1 a cat on a mat"  # not a spreadsheet formula
    assert rows[0]["references"].startswith("'=1+1 a cat on a mat || a small cat")
    assert rows[1]["generated_caption"] == ""


def test_csv_caption_columns(seeded: Seeded) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(build_export(seeded.caption_run)))))
    assert len(rows) == len(DATA)
    assert rows[1]["caption_CIDEr"] == "1.5"
    assert rows[1]["caption_METEOR"] == ""
    assert rows[1]["flag_degenerate"] == "true"
    assert rows[1]["flag_reasons"] == "verbatim repeat"
    assert rows[0]["flag_degenerate"] == "false"


def test_csv_other_tables(seeded: Seeded) -> None:
    ex = build_export(seeded.match_run)
    metrics = list(csv.DictReader(io.StringIO(to_csv(ex, "metrics"))))
    overall = {r["metric"]: r for r in metrics if r["category"] == ""}
    assert overall["i2t_recall@1"]["ci_low"] == "0.25"
    assert overall["i2t_recall@1"]["label"] == "Image→text R@1"
    dog = [r for r in metrics if r["category"] == "dog"]
    assert dog and dog[0]["n_images"] == "2"
    timings = list(csv.DictReader(io.StringIO(to_csv(ex, "timings"))))
    assert timings[1] == {
        "run_id": str(seeded.match_run),
        "name": "image_embed_per_s",
        "value": "123.4",
        "unit": "items/s",
        "batch_size": "8",
    }
    setup = dict(csv.reader(io.StringIO(to_csv(ex, "setup"))))
    assert setup["Model revision"] == "0123456789abcdef"


def test_markdown_report(seeded: Seeded) -> None:
    md = to_markdown(build_export(seeded.match_run))
    # the model id needs no escape: plain text stays plain (no "hf\-clip\:…")
    assert md.startswith(f"# Mirada run {seeded.match_run}: {MODEL} on pets (match)")
    assert f"| Dataset | pets (id {seeded.dataset_id}) |" in md
    assert "| Metric | Key | Value [95% CI] | Interval |" in md
    # (stored without a method: rows from before it was recorded were all bootstrap)
    assert "| Image→text R@1 | i2t_recall@1 | 75.0% [25.0, 100.0] | 95% bootstrap |" in md
    assert "| MRR | mrr | 0.875 | no interval stored for this run |" in md
    assert "| Image→text median rank | i2t_median_rank | 1 |" in md
    assert "| Category | N | Image→text R@1 |" in md
    assert "| dog | 2 | 50.0% [0.0, 100.0] |" in md
    assert "| Model revision | 0123456789abcdef |" in md
    assert "| Images / captions | 4 / 6 |" in md
    assert "| Device | cpu |" in md and "| dtype | fp32 |" in md and "| Batch size | 8 |" in md
    assert "Test GPU, 24.0 GB" in md
    assert "| Model load time | load_s | 1.25 | s | – |" in md
    assert "| image_embed_per_s | image_embed_per_s | 123.400 | items/s | 8 |" in md  # no label
    assert "## Notes on the metrics" in md
    assert "Latencies are per item" not in md  # benchmark notes only for benchmark runs


def test_markdown_unavailable_metric(seeded: Seeded) -> None:
    md = to_markdown(build_export(seeded.caption_run))
    assert "| METEOR | METEOR | n/a | not computed: Java is not installed |" in md
    assert "| BLEU-4 | BLEU-4 | 0.251 | corpus-level score (pooled over all captions)" in md
    assert "METEOR is unavailable: Java is not installed" in md
    assert "not with published COCO numbers" in md


def test_write_atomic_replaces(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old", encoding="utf-8")
    write_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temp file left
    with pytest.raises(MiradaError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "x.md", "x")


# --- the real CLI ------------------------------------------------------------------------------


def test_cli_all_formats(seeded: Seeded, tmp_path: Path) -> None:
    run = str(seeded.match_run)
    js = _cli(run, "--format", "json")
    assert js.returncode == 0, js.stderr
    data: dict[str, Any] = json.loads(js.stdout)
    assert {"run", "dataset", "metrics", "per_category", "items", "hardware"} <= set(data)
    assert data["metrics"]["i2t_recall@1"]["ci_high"] == 1.0

    cs = _cli(run, "--format", "csv")
    assert cs.returncode == 0, cs.stderr
    assert len(list(csv.DictReader(io.StringIO(cs.stdout)))) == len(DATA)

    md = _cli(run, "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert "| Image→text R@1 | i2t_recall@1 | 75.0% [25.0, 100.0] |" in md.stdout

    out = tmp_path / "out" / "report.md"
    out.parent.mkdir()
    out.write_text("stale", encoding="utf-8")
    written = _cli(run, "-o", str(out))  # format from the suffix; replaces the old file
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert out.read_text(encoding="utf-8") == md.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.md"]


def test_cli_unknown_run(mirada_home: Path) -> None:
    proc = _cli("4242", "--format", "json")
    assert proc.returncode == 2
    assert "run 4242 does not exist" in proc.stderr
    assert "mirada runs" in proc.stderr
    assert proc.stdout == ""


def test_cli_table_needs_csv(seeded: Seeded) -> None:
    proc = _cli(str(seeded.match_run), "--format", "json", "--table", "metrics")
    assert proc.returncode == 2
    assert "--table applies to --format csv only" in proc.stderr


# --- hostile text (issue 12 items 16 and 18) ---------------------------------------------------


@pytest.fixture
def hostile_run(db_url: str, mirada_home: Path, tmp_path: Path) -> int:
    """A succeeded match run on a dataset whose names, captions and categories are hostile."""
    from hostile_text import import_hostile

    from mirada.datasets import load_items
    from mirada.queue import enqueue, register_worker

    dataset_id = import_hostile(tmp_path)
    items = load_items(dataset_id)
    worker_id, profile_id = register_worker("w1", "test-host", 1, [], ["cpu"], HARDWARE)
    enqueue(dataset_id, MODEL, "match", device="cpu", dtype="fp32", batch_size=8)
    categories = sorted({it.category for it in items if it.category})
    outcomes = [
        ItemOutcome(
            item_id=it.item_id,
            correct=True,
            rank=1,
            score=-0.5,
            details={
                "top": [[it.captions[0][0], -0.25]],
                "zeroshot_pred": categories[-1],
                "category_top1": categories[0],
                "category_correct": False,
            },
        )
        for it in items
    ]
    results = RunResults(
        metrics=[
            MetricValue("i2t_recall@1", 1.0),
            *(MetricValue("i2t_recall@1", 1.0, category=c) for c in categories),
        ],
        items=outcomes,
        timings=[TimingValue("load_s", 1.0, "s")],
    )
    return _claim_and_finish(worker_id, profile_id, results)


def _assert_no_formula_or_control(text: str, where: str) -> int:
    from hostile_text import unsafe_csv_cells

    assert not unsafe_csv_cells(text), (where, unsafe_csv_cells(text))
    return len(list(csv.reader(io.StringIO(text))))


def test_csv_exports_escape_formulas_and_controls(hostile_run: int) -> None:
    ex = build_export(hostile_run)
    for table in ("items", "metrics", "timings", "setup"):
        text = to_csv(ex, table)
        assert _assert_no_formula_or_control(text, table) >= 2  # header and rows
    items = list(csv.DictReader(io.StringIO(to_csv(ex, "items"))))
    assert items[0]["dataset"].startswith("'=HYPERLINK(x)")
    assert items[0]["filename"] == "'=cmd.png" and items[0]["category"].startswith("'=cat ")
    assert "\\x1b]0;pwned\\x07" in items[0]["category"]  # visible, not raw
    assert items[0]["score"] == "-0.5"  # numbers stay numbers
    setup = dict(csv.reader(io.StringIO(to_csv(ex, "setup"))))
    assert setup["Dataset"].startswith("'=HYPERLINK(x)")
    # the CLI writes the same escaped setup table
    proc = _cli(str(hostile_run), "--format", "csv", "--table", "setup")
    assert proc.returncode == 0, proc.stderr
    _assert_no_formula_or_control(proc.stdout, "cli setup")
    assert "'=HYPERLINK(x)" in proc.stdout


def test_markdown_and_json_exports_carry_no_raw_controls(hostile_run: int) -> None:
    from hostile_text import CONTROL, live_markdown

    ex = build_export(hostile_run)
    md = to_markdown(ex)
    assert not CONTROL.search(md), CONTROL.search(md)
    assert r"\\x1b\]0;pwned\\x07" in md  # the category: visible, renders as \x1b]0;pwned\x07
    # user text renders as typed: no image, link, colour directive, HTML or code-span breakout
    for line in md.splitlines():
        if "pwned" in line or "boom" in line or "HYPERLINK" in line:
            assert not live_markdown(line), (line, live_markdown(line))
    js = to_json(ex)
    assert not CONTROL.search(js)
    assert json.loads(js) == json.loads(json.dumps(ex, default=str))  # same data, escaped
