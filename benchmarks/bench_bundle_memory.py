"""Peak memory of `mirada import-results` on the largest and most hostile bundles (issue 22 §3).

Three bundles, built synthetically in a temporary folder (no model runs):
- `legit_items`: a legitimate match run over N items (default 200,000) with two captions each,
  per-item top-5 details, 64-d image and text embeddings;
- `inflated_results`: a small dataset whose results.json inflates to about 200 MB of tiny
  JSON values (within the file-size and compression-ratio limits);
- `manifest_absent_members`: a manifest listing 1,000,000 members the zip does not hold.

Each is imported by `mirada import-results` in its own process on a fresh SQLite home; the
peak RSS is that process's VmHWM (Linux), read by itself as it ends. Prints one JSON line per
bundle and a summary object; exits 1 when an import goes over 1 GB or ends in a traceback.

    .venv/bin/python -m benchmarks.bench_bundle_memory [--items N] [--only NAME]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BUDGET_BYTES = 1024**3
DIM = 64  # the demo CLIP's embedding size
CREATED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).isoformat()


def run_doc(fingerprint: str, n_items: int) -> dict[str, Any]:
    """run.json of a succeeded match run, as `mirada export --format bundle` writes it."""
    return {
        "dataset_fingerprint": fingerprint,
        "origin": {"host": "bench-host", "run_id": 7},
        "model_id": "hf-clip:mirada/demo-clip",
        "task": "match",
        "device": "cpu",
        "resolved_device": "cpu",
        "dtype": "fp32",
        "batch_size": 32,
        "requires": None,
        "options": {},
        "attempts": 1,
        "max_attempts": 3,
        "progress_done": n_items,
        "progress_total": n_items,
        "model_fingerprint": {"model_id": "hf-clip:mirada/demo-clip", "dtype": "fp32"},
        "created": CREATED,
        "started_at": CREATED,
        "finished_at": CREATED,
        "hardware": None,
    }


def _sha(i: int) -> str:
    return hashlib.sha256(i.to_bytes(8, "little")).hexdigest()


def dataset_items(n: int, captions: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "filename": f"images/{i:07d}.jpg",
            "category": ("cat", "dog", "bird", "car")[i % 4],
            "captions": [f"photo {i} number {k} of a small thing" for k in range(captions)],
            "image": {
                "sha256": _sha(i),
                "ext": "jpg",
                "width": 640,
                "height": 480,
                "original_format": "JPEG",
                "size_bytes": 50_000 + i % 997,
            },
        }


def _fingerprint(items: list[dict[str, Any]]) -> str:
    from mirada.bundles import dataset_fingerprint

    return dataset_fingerprint((it["filename"], it["image"]["sha256"]) for it in items)


def _write(path: Path, members: dict[str, bytes]) -> Path:
    from mirada.bundles.archive import write_bundle

    write_bundle(path, members)
    return path


def _json(doc: Any) -> bytes:
    from mirada.bundles.archive import json_bytes

    return json_bytes(doc)


def _npy(array: np.ndarray) -> bytes:
    from mirada.bundles.archive import npy_bytes

    return npy_bytes(array)


def legit_items(tmp: Path, n: int) -> Path:
    """A match run over `n` items, two captions each, as a real export writes it."""
    items = list(dataset_items(n, 2))
    fp = _fingerprint(items)
    rng = np.random.default_rng(0)
    n_captions = 2 * n
    top = rng.integers(0, n_captions, size=(n, 5))
    scores = np.round(rng.random((n, 5)), 6)
    results = {
        "metrics": [
            {
                "name": "i2t_recall@1",
                "value": 0.5,
                "category": None,
                "ci_low": 0.4,
                "ci_high": 0.6,
                "details": {"n": n, "interval_method": "bootstrap"},
            }
        ],
        "timings": [{"name": "load_s", "value": 1.5, "unit": "s", "batch_size": None}],
        "items": [
            {
                "item": i,
                "correct": bool(i % 2),
                "rank": 1 + i % 7,
                "score": float(scores[i, 0]),
                "details": {
                    "top": [[int(c), float(s)] for c, s in zip(top[i], scores[i], strict=True)],
                    "category_correct": bool(i % 3),
                    "zeroshot_pred": None,
                    "category_top1": ("cat", "dog", "bird", "car")[i % 4],
                },
            }
            for i in range(n)
        ],
        "captions": [],
        "embeddings": [
            {"kind": "image", "member": "embeddings/image.npy"},
            {"kind": "text", "member": "embeddings/text.npy"},
        ],
        "artifacts": [],
    }
    members = {
        "run.json": _json(run_doc(fp, n)),
        "dataset.json": _json(
            {"name": "bench", "source_format": "folder", "fingerprint": fp, "items": items}
        ),
        "results.json": _json(results),
        "embeddings/image.npy": _npy(rng.standard_normal((n, DIM), np.float32)),
        "embeddings/image.rows.npy": _npy(np.arange(n, dtype=np.int64)),
        "embeddings/text.npy": _npy(rng.standard_normal((n_captions, DIM), np.float32)),
        "embeddings/text.rows.npy": _npy(np.arange(n_captions, dtype=np.int64)),
    }
    del items, results
    return _write(tmp / "legit.zip", members)


def inflated_results(tmp: Path, n: int) -> Path:
    """Three items whose results.json is ~200 MB of tiny values (about 10:1 compressed)."""
    items = list(dataset_items(3, 1))
    fp = _fingerprint(items)
    # Rows of eight random bits, "[d,d,d,d,d,d,d,d],": the cheapest JSON for the most Python
    # objects (about 2 bytes a value), random enough to compress only about 10:1 (0 or 1).
    rows = 11_000_000
    text = np.frombuffer(b"[0,0,0,0,0,0,0,0]," * rows, np.uint8).reshape(rows, 18).copy()
    digits = np.random.default_rng(1).integers(0, 2, (rows, 8), dtype=np.uint8)
    text[:, 1:16:2] += digits
    pairs = text.tobytes()[:-1].decode()
    results = (
        '{"artifacts": [], "captions": [], "embeddings": [], "metrics": [], "timings": [], '
        '"items": [{"item": 0, "correct": true, "rank": 1, "score": 0.5, '
        f'"details": {{"top": [{pairs}]}}}}]}}'
    ).encode()
    members = {
        "run.json": _json(run_doc(fp, 3)),
        "dataset.json": _json(
            {"name": "bench", "source_format": "folder", "fingerprint": fp, "items": items}
        ),
        "results.json": results,
    }
    return _write(tmp / "inflated.zip", members)


def manifest_absent_members(tmp: Path, n: int) -> Path:
    """A manifest naming 1,000,000 artifact members that are not in the zip."""
    items = list(dataset_items(3, 1))
    fp = _fingerprint(items)
    path = tmp / "absent.zip"
    _write(path, {"run.json": _json(run_doc(fp, 3))})
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        run = zf.read("run.json")
    fake = {"sha256": "0" * 64, "size": 1}
    manifest["members"].update({f"artifacts/{i}.bin": fake for i in range(1_000_000)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("run.json", run)
    return path


BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    f.__name__: f for f in (legit_items, inflated_results, manifest_absent_members)
}

_CHILD = """
import sys
from mirada.cli import main
try:
    code = main(["import-results", sys.argv[1]])
finally:
    with open("/proc/self/status") as status:
        hwm = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    print("VmHWM_KB", hwm[0] if hwm else "", flush=True)
sys.exit(code)
"""


def measure(name: str, bundle: Path, home: Path) -> dict[str, Any]:
    env = {**os.environ, "MIRADA_HOME": str(home)}
    env.pop("MIRADA_DATABASE_URL", None)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(bundle)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - began
    lines = stdout.splitlines()
    hwm = [line.split()[1:] for line in lines if line.startswith("VmHWM_KB")]
    peak_kb = int(hwm[0][0]) if hwm and hwm[0] else 0
    said = [line for line in lines if not line.startswith("VmHWM_KB")] + stderr.splitlines()
    peak_mb = peak_kb / 1024
    return {
        "bundle": name,
        "bundle_mb": round(bundle.stat().st_size / 2**20, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "seconds": round(seconds, 1),
        "under_1gb": 0 < peak_kb * 1024 < BUDGET_BYTES,
        "returncode": proc.returncode,
        "result": (said[-1] if said else "(no output)")[:200],
        "traceback": "Traceback" in stderr,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000, help="items of legit_items")
    parser.add_argument("--only", choices=sorted(BUILDERS))
    args = parser.parse_args()
    rows = []
    for name, build in BUILDERS.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="mirada-bundle-mem-") as tmp:
            t0 = time.perf_counter()
            bundle = build(Path(tmp), args.items)
            built_s = time.perf_counter() - t0
            row = measure(name, bundle, Path(tmp) / "home")
            row["build_seconds"] = round(built_s, 1)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    worst = max(rows, key=lambda r: r["peak_rss_mb"])
    summary = {
        "bundles": rows,
        "worst_peak_rss_mb": worst["peak_rss_mb"],
        "worst_bundle": worst["bundle"],
        "budget_mb": BUDGET_BYTES // 2**20,
        "all_under_1gb": all(r["under_1gb"] for r in rows),
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    failed = not summary["all_under_1gb"] or any(r["traceback"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
