"""`mirada score-captions`: official COCO caption metrics for a predictions file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mirada.cli import arg, command, print_json
from mirada.errors import MiradaError

FORMATS_HELP = (
    'Files may be {"id": ["ref", ...]} / {"id": "prediction"} JSON, a COCO annotation file '
    '({"images": [...], "annotations": [{"image_id", "caption"}]}) or a COCO results file '
    '([{"image_id", "caption"}]).'
)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MiradaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MiradaError(f"{path} is not valid JSON ({exc})") from exc


def _from_records(records: Any, path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(records, list):
        raise MiradaError(f"{path}: expected a list of {{'image_id', 'caption'}} records")
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or "image_id" not in rec or "caption" not in rec:
            raise MiradaError(f"{path}: record {n} lacks 'image_id' or 'caption'")
        if not isinstance(rec["caption"], str):
            raise MiradaError(f"{path}: record {n} has a caption that is not a string")
        out.setdefault(str(rec["image_id"]), []).append(rec["caption"])
    return out


def load_captions(path: Path) -> dict[str, list[str]]:
    """{id: [captions]} from any of the three accepted formats; MiradaError names the file."""
    data = _read_json(path)
    if isinstance(data, dict) and "annotations" in data:
        return _from_records(data["annotations"], path)
    if isinstance(data, list):
        return _from_records(data, path)
    if isinstance(data, dict):
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, str):
                out[str(key)] = [value]
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[str(key)] = list(value)
            else:
                raise MiradaError(
                    f"{path}: the value for id {key!r} must be a caption string or a list of them"
                )
        return out
    raise MiradaError(f"{path}: unrecognised format. {FORMATS_HELP}")


@command(
    "score-captions",
    "Official COCO caption metrics (BLEU, METEOR 1.5, ROUGE-L, CIDEr-D) for predictions",
    arg("--references", required=True, type=Path, help="reference captions JSON"),
    arg("--predictions", required=True, type=Path, help="predicted captions JSON"),
    arg("--json", action="store_true", help="print machine-readable JSON"),
    description=(
        "Score one predicted caption per image against its reference captions with "
        "pycocoevalcap (PTB tokenizer, Bleu(4), METEOR 1.5, ROUGE-L, CIDEr-D). Needs Java. "
        + FORMATS_HELP
    ),
)
def score_captions_cmd(args: argparse.Namespace) -> int:
    refs = load_captions(args.references)
    raw_preds = load_captions(args.predictions)
    preds: dict[str, str] = {}
    for key, values in raw_preds.items():
        if len(values) != 1:
            raise MiradaError(
                f"{args.predictions}: id {key!r} has {len(values)} predictions; give exactly one"
            )
        preds[key] = values[0]
    missing = sorted(set(refs) - set(preds))
    extra = sorted(set(preds) - set(refs))
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"{len(missing)} reference ids have no prediction: {missing[:10]}")
        if extra:
            detail.append(f"{len(extra)} predicted ids have no references: {extra[:10]}")
        raise MiradaError(
            f"{args.predictions} does not match {args.references}: " + "; ".join(detail)
        )
    empty = sorted(k for k, v in preds.items() if not v.strip())
    if empty:
        raise MiradaError(f"{args.predictions}: empty predictions for ids {empty[:10]}")

    from mirada.metrics import captioning
    from mirada.metrics.formatting import format_metric
    from mirada.metrics.names import bleu

    result = captioning.score_captions(refs, preds)
    unavailable: dict[str, str] = result.get("unavailable", {})
    if result[bleu(1)] is None:  # the official tokenisation itself is unavailable
        raise MiradaError(unavailable.get(bleu(1), "caption metrics unavailable"))
    if args.json:
        print_json(result)
        return 0
    print(f"{len(preds)} images, {sum(len(v) for v in refs.values())} reference captions")
    print(f"tokenisation: {captioning.TOKENIZATION}")
    print(f"{'metric':<8} {'score':>11}  implementation")
    for name in captioning.METRIC_NAMES:
        shown = "unavailable" if result[name] is None else format_metric(name, result[name])
        print(f"{name:<8} {shown:>11}  {captioning.IMPLEMENTATIONS[name]}")
    for name, why in unavailable.items():
        print(f"{name} unavailable: {why}")
    print(f"note: {captioning.CIDER_NOTE}")
    return 0
