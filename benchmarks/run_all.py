"""Run every benchmark (each in its own process) and rewrite docs/benchmarks.md.

    python -m benchmarks.run_all [--only NAME ...] [--quick]

Each script prints JSON; this file turns the figures into one table of targets, with the
machine's description and the date. Figures are measured side by side inside each script,
so ratios compare like with like on the same machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"

# name -> (script args, quick args)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "encoders": (["bench_encoders.py"], ["bench_encoders.py"]),
    "pipeline": (["bench_pipeline.py"], ["bench_pipeline.py", "--n", "64"]),
    "cache": (["bench_cache.py"], ["bench_cache.py", "--n", "64"]),
    "retrieval": (["bench_retrieval.py"], ["bench_retrieval.py"]),
    "bootstrap": (["bench_bootstrap.py"], ["bench_bootstrap.py"]),
    "tsne": (["bench_tsne.py"], ["bench_tsne.py"]),
    "dashboard": (["bench_dashboard.py"], ["bench_dashboard.py"]),
    "queue": (["bench_queue.py"], ["bench_queue.py", "--jobs", "200"]),
    "variants": (["bench_variants.py"], ["bench_variants.py", "--quick"]),
    "input_pipeline": (["bench_input_pipeline.py"], ["bench_input_pipeline.py", "--quick"]),
}
VARIANT_TARGET = 1.9  # best variant's images/s over fp32 eager's, ViT-B-32, one run
VARIANT_MIN_COSINE = 0.999


def run_script(args: list[str], timeout: int = 1800) -> dict[str, Any]:
    """Run one script as a module of the `benchmarks` folder from the repository root, so it
    imports benchmarks._util (and test helpers such as tests.dashboard.dashboard_seed) by
    name: `python -m benchmarks.bench_cache --n 64` for ["bench_cache.py", "--n", "64"]."""
    t0 = time.perf_counter()
    module = f"benchmarks.{Path(args[0]).stem}"
    proc = subprocess.run(
        [sys.executable, "-m", module, *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-5:], "returncode": proc.returncode}
    out = proc.stdout.strip()
    start = out.find("{")  # scripts print one JSON object, possibly after log lines
    figures = json.loads(out[start:]) if start >= 0 else {"error": "no JSON printed"}
    figures["_wall_s"] = round(time.perf_counter() - t0, 1)
    return figures


def _get(data: dict[str, Any], *path: Any) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)  # type: ignore[assignment]
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _pick(rows: list[dict[str, Any]] | None, key: str, value: str) -> dict[str, Any]:
    for row in rows or []:
        if value in str(row.get(key, "")):
            return row
    return {}


def table_rows(r: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    pipe = _get(r, "pipeline", "pipeline_overhead")
    vit = _pick(pipe, "model", "ViT-B-32")
    demo = _pick(pipe, "model", "demo-clip")
    cache = _get(r, "cache", "cached_rerun")
    cvit, cdemo = _pick(cache, "model", "ViT-B-32"), _pick(cache, "model", "demo-clip")
    enc = r.get("encoders", {})
    ret = r.get("retrieval", {})
    q = _get(r, "queue", "queue")
    qs, qp = _pick(q, "backend", "sqlite"), _pick(q, "backend", "postgresql")

    def ok(cond: bool | None) -> str:
        return "n/a" if cond is None else ("met" if cond else "**missed**")

    def num(x: Any, fmt: str = "{:.2f}") -> str:
        return "-" if x is None else fmt.format(x)

    speedup = enc.get("text_speedup_trimming")
    vrun = _pick(_get(r, "variants", "runs"), "model", "ViT-B-32")
    best = vrun.get("best") or {}
    best_row = _pick(vrun.get("variants"), "name", best.get("name", "\0"))
    rows = [
        (
            "Pipeline overhead, open_clip ViT-B-32 (random init)",
            f"match run ÷ raw forward, N={vit.get('images', '-')}",
            num(vit.get("overhead_ratio")),
            "≤ 1.10",
            ok(None if not vit else vit["overhead_ratio"] <= 1.10),
        ),
        (
            "Pipeline overhead, demo CLIP",
            f"same, N={demo.get('images', '-')}",
            num(demo.get("overhead_ratio")),
            "report",
            "n/a",
        ),
        (
            "Text encoding (open_clip ViT-B-32)",
            "trimmed captions/s ÷ padded-to-77 captions/s",
            num(speedup, "{:.1f}×"),
            "≥ 5×",
            ok(None if speedup is None else speedup >= 5),
        ),
        (
            "Images/s (ViT-B-32, batch 32): adapter vs raw",
            "images/s",
            f"{num(_get(enc, 'images_per_s', 'adapter'), '{:.1f}')} vs "
            f"{num(_get(enc, 'images_per_s', 'raw'), '{:.1f}')}",
            "report",
            "n/a",
        ),
        (
            "Cached re-run, ViT-B-32 (saved random init)",
            "re-run ÷ first run",
            num(cvit.get("ratio"), "{:.3f}"),
            "≤ 0.10",
            ok(None if not cvit else cvit["ratio"] <= 0.10),
        ),
        (
            "Cached re-run, demo CLIP",
            "re-run ÷ first run",
            num(cdemo.get("ratio"), "{:.3f}"),
            "report",
            "n/a",
        ),
        (
            "Retrieval metrics, 5,000 × 25,000 × 512",
            "peak RSS (chunked / dense)",
            f"{num(ret.get('chunked_peak_rss_mb'), '{:.0f}')} MB / "
            f"{num(ret.get('dense_peak_rss_mb'), '{:.0f}')} MB",
            "< 1.5 GB",
            ok(
                None
                if ret.get("chunked_peak_rss_mb") is None
                else ret["chunked_peak_rss_mb"] < 1536
            ),
        ),
        (
            "Retrieval metrics, 5,000 × 25,000 × 512",
            "time (chunked / dense)",
            f"{num(ret.get('chunked_time_s'), '{:.1f}')} s / "
            f"{num(ret.get('dense_time_s'), '{:.1f}')} s",
            "no worse than dense",
            ok(
                None
                if ret.get("chunked_time_s") is None
                else ret["chunked_time_s"] <= ret["dense_time_s"]
            ),
        ),
        (
            "Bootstrap CIs, 1,000 resamples × 5,000 items",
            "all retrieval metrics",
            num(_get(r, "bootstrap", "all_metrics_total_s"), "{:.2f} s"),
            "< 2 s",
            ok(
                None
                if _get(r, "bootstrap", "all_metrics_total_s") is None
                else r["bootstrap"]["all_metrics_total_s"] < 2
            ),
        ),
        (
            "t-SNE, 5,000 × 512 (scikit-learn Barnes-Hut)",
            "time",
            num(_get(r, "tsne", "tsne_s"), "{:.1f} s"),
            "report",
            "n/a",
        ),
        (
            "Dashboard Results page, 5,000-image run",
            "AppTest render time",
            num(_get(r, "dashboard", "results_page_seconds"), "{:.2f} s"),
            "< 3 s",
            ok(
                None
                if _get(r, "dashboard", "results_page_seconds") is None
                else r["dashboard"]["results_page_seconds"] < 3
            ),
        ),
        (
            "Queue, SQLite, 2 workers",
            f"{qs.get('jobs', '-')} no-op jobs",
            f"{num(qs.get('jobs_per_s'), '{:.1f}')} jobs/s, {qs.get('duplicates', '-')} duplicates",
            "report; no job twice",
            ok(None if not qs else qs["duplicates"] == 0),
        ),
        (
            "Queue, PostgreSQL, 2 workers",
            f"{qp.get('jobs', '-')} no-op jobs",
            f"{num(qp.get('jobs_per_s'), '{:.1f}')} jobs/s, {qp.get('duplicates', '-')} duplicates",
            "report; no job twice",
            ok(None if not qp else qp["duplicates"] == 0),
        ),
        (
            "Precision variants, open_clip ViT-B-32, batch 32, one run",
            f"best variant with min cosine ≥ {VARIANT_MIN_COSINE} ÷ fp32 eager, images/s",
            f"{num(best.get('speedup_vs_fp32'))}× ({best.get('name', '-')}, min cosine "
            f"{num(best_row.get('min_cosine_to_fp32'), '{:.5f}')})",
            f"≥ {VARIANT_TARGET}×",
            ok(None if not best else best["speedup_vs_fp32"] >= VARIANT_TARGET),
        ),
    ]
    return rows


def _fixed(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def variant_section(figures: dict[str, Any]) -> list[str]:
    """The variants table of each bench_variants run (Markdown lines; none without figures)."""
    runs = figures.get("runs") or []
    if not runs:
        return []
    lines = [
        "## Precision variants (one benchmark run per model)",
        "",
        "From `benchmarks/bench_variants.py`: each model is one worker `benchmark` run with "
        "`variants`, the variants measured interleaved batch by batch on the same inputs, after "
        "warm-up; agreement compares each variant's outputs with fp32 eager's on the same items. "
        "Weights and inputs are cast to the dtype (not autocast). `+compile` compiles the image "
        "tower; its compile time (first calls beyond one steady-state batch, all batch sizes) is "
        "apart from the steady-state rates. Each run gives the load average: other jobs on a "
        "shared machine lower the rates, while the ratios within a run stay fair.",
    ]
    for run in runs:
        lines += ["", f"**{run.get('model')}**: `{run.get('command', '')}`", ""]
        if run.get("error"):
            lines.append(f"failed: {run['error']}")
            continue
        before, after = run.get("load_average_before"), run.get("load_average_after")
        lines += [
            f"Load average (1/5/15 min) {before} before, {after} after; the run took "
            f"{run.get('run_wall_s')} s; torch threads {figures.get('threads')}; inductor "
            f"cache {figures.get('inductor_cache', 'not recorded')}.",
            "",
            "| variant | images/s | texts/s | captions/s | × fp32 | min cosine | mean cosine "
            "| identical captions | BLEU-4 vs fp32 | compile s | note |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in run.get("variants", []):
            note = "reference" if v["name"] == "fp32" else ""
            if not v.get("available", True):
                note = f"unavailable: {v.get('unavailable_reason')}"
            cells = [
                v["name"],
                _fixed(v.get("images_per_s"), "{:.1f}"),
                _fixed(v.get("texts_per_s"), "{:.1f}"),
                _fixed(v.get("captions_per_s"), "{:.2f}"),
                _fixed(v.get("speedup_vs_fp32"), "{:.2f}×"),
                _fixed(v.get("min_cosine_to_fp32"), "{:.5f}"),
                _fixed(v.get("mean_cosine_to_fp32"), "{:.5f}"),
                _fixed(v.get("caption_identical_share"), "{:.0%}"),
                _fixed(v.get("caption_bleu4_to_fp32"), "{:.3f}"),
                _fixed(v.get("compile_s"), "{:.0f}"),
                note,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def machine() -> str:
    from mirada.hardware import collect_profile

    p = collect_profile()
    gpu = p["gpu_name"] or "no GPU"
    return (
        f"{p['cpu_model']}, {p['cpu_cores']} cores, {p['ram_bytes'] / 2**30:.0f} GiB RAM, "
        f"{gpu}; {p['os']}; Python {p['python_version']}, torch {p['torch_version']}, "
        f"transformers {p['transformers_version']}, open_clip {p['open_clip_version']}"
    )


def previous_header() -> list[str]:
    """The current doc's date and machine lines (what the figures kept by --only came from)."""
    if not DOC.exists():
        return []
    keep = ("Generated by", "Machine:", "Re-measured")
    return [line for line in DOC.read_text().splitlines() if line.startswith(keep)]


def hand_written_sections(generated: str) -> list[str]:
    """`## ` sections of the current doc that this script does not write (added by hand, e.g.
    a figure from a script outside SCRIPTS), so regenerating the doc keeps them."""
    if not DOC.exists():
        return []
    ours = ("## Raw figures", "## Scripts that failed")
    sections = ["## " + part for part in DOC.read_text().split("\n## ")[1:]]
    return [
        sec.strip()
        for sec in sections
        if not sec.startswith(ours) and sec.splitlines()[0] not in generated
    ]


def write_doc(results: dict[str, dict[str, Any]], only: list[str] | None = None) -> str:
    today = date.today().isoformat()
    if only:
        kept = [line for line in previous_header() if not line.startswith("Re-measured")]
        header = [*kept, f"Re-measured on {today} with `--only {' '.join(only)}` on: {machine()}."]
    else:
        header = [
            f"Generated by `make bench` (`benchmarks/run_all.py`) on {today}.",
            f"Machine: {machine()}.",
        ]
    lines = [
        "# Benchmarks",
        "",
        *(line for h in header for line in (h, "")),
        "| figure | measured as | result | target | status |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(results)]
    section = variant_section(results.get("variants", {}))
    lines += ["", *section] if section else []
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    generated = "\n".join(lines)
    for extra in hand_written_sections(generated):  # sections written into the doc by hand
        lines += ["", extra]
    errors = {k: v["error"] for k, v in results.items() if "error" in v}
    if errors:
        lines += ["", "## Scripts that failed", ""]
        lines += [f"- `{k}`: {v}" for k, v in errors.items()]
    lines += ["", "## Raw figures", "", "```json", json.dumps(results, indent=2), "```", ""]
    text = "\n".join(lines)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    return text


def previous_figures() -> dict[str, dict[str, Any]]:
    """The raw figures docs/benchmarks.md holds now ({} when it has none)."""
    if not DOC.exists():
        return {}
    text = DOC.read_text()
    start = text.find("```json", text.find("## Raw figures"))
    if "## Raw figures" not in text or start < 0:
        return {}
    body = text[start + len("```json") : text.find("```", start + len("```json"))]
    try:
        figures = json.loads(body)
    except json.JSONDecodeError:
        return {}
    return figures if isinstance(figures, dict) else {}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--only",
        nargs="*",
        choices=sorted(SCRIPTS),
        help="run these scripts; the others keep their figures (and dates) from the current doc",
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes (smoke check)")
    a = p.parse_args()
    results: dict[str, dict[str, Any]] = previous_figures() if a.only else {}
    for name in a.only or SCRIPTS:
        full, quick = SCRIPTS[name]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_script(quick if a.quick else full)
        results[name]["_date"] = date.today().isoformat()
    text = write_doc(results, a.only)
    print(text.split("## Raw figures")[0])


if __name__ == "__main__":
    main()
