"""Import datasets and list them. Heavy modules (PIL, SQLAlchemy) load inside the commands."""

from __future__ import annotations

import argparse
import shlex
import sys

from mirada.cli import arg, command, print_json

_IMPORT_HELP = """\
Import a folder, a .zip, or a single annotation file (its folder is the dataset) into
$MIRADA_HOME. Images are verified, normalised to RGB and stored once by content hash.

Formats (--format auto detects them):
  csv          a CSV with columns filename,caption[,category]; several rows for one file
               give several captions. Delimiter , ; or tab; UTF-8 (with/without BOM) or
               Windows-1252, as spreadsheets export them.
  imagefolder  Hugging Face layout: metadata.csv or metadata.jsonl with file_name and text
  coco         COCO captions JSON: images[] + annotations[] (image_id, caption)
  karpathy     Karpathy split JSON (dataset_coco.json): images[].sentences[].raw; use --split

Nothing is imported if any row or image has a problem: every problem is listed (file and
row) so you can fix them all at once. --lenient skips bad rows and images instead.

examples:
  mirada import ~/photos/study.zip
  mirada import ./flickr --format karpathy --split test --name flickr-test
  mirada import captions.csv --json
"""


@command(
    "import",
    "Import a folder or .zip of captioned images as a dataset",
    arg("path", metavar="PATH", help="folder, .zip, or annotation file (.csv/.json/.jsonl)"),
    arg("--name", help="dataset name (default: the folder or zip name)"),
    arg(
        "--format",
        dest="fmt",
        default="auto",
        choices=["auto", "csv", "imagefolder", "coco", "karpathy"],
        help="annotation format (default: auto-detect)",
    ),
    arg(
        "--split",
        metavar="SPLIT",
        help="only this split: train|val|test|restval for karpathy, a sub-folder for imagefolder",
    ),
    arg("--lenient", action="store_true", help="skip bad rows and images instead of rejecting"),
    arg("--json", action="store_true", help="print {id, name, images, captions, categories}"),
    description=_IMPORT_HELP,
)
def import_command(args: argparse.Namespace) -> int:
    from mirada.datasets import import_dataset
    from mirada.text_safety import printable

    report = import_dataset(
        args.path, name=args.name, fmt=args.fmt, split=args.split, lenient=args.lenient
    )
    if args.json:
        print_json(report.as_json())
    else:
        print(
            f"Imported dataset {report.name!r} (id {report.id}, {report.format}): "
            f"{report.images} images, {report.captions} captions, "
            f"{report.categories} categories"
        )
        dataset = printable(shlex.quote(report.name))
        print(  # what to do next: the journey goes on in `mirada queue`
            f"next: queue runs on it, e.g. `mirada queue --dataset {dataset} --model ID "
            "--task match` (`mirada models` lists the models), then start a worker with "
            "`mirada worker`"
        )
    if report.skipped:
        # On stderr so --json output stays parseable.
        print(f"Skipped {len(report.skipped)} problem(s):", file=sys.stderr)
        for problem in report.skipped:
            print(f"  - {printable(str(problem))}", file=sys.stderr)
    for warning in report.warnings:
        print(f"Warning: {printable(str(warning))}", file=sys.stderr)
    return 0


@command(
    "datasets",
    "List imported datasets",
    arg("--json", action="store_true", help="print a JSON list of {id, name, images, ...}"),
    description="List imported datasets with their image, caption and category counts.",
)
def datasets_command(args: argparse.Namespace) -> int:
    from mirada.cli.table import format_table
    from mirada.datasets import list_datasets

    datasets = list_datasets()
    if args.json:
        print_json([d.as_json() for d in datasets])
        return 0
    if not datasets:
        print("No datasets yet. Import one with: mirada import PATH")
        return 0
    rows = [
        {**d.as_json(), "format": d.format, "created": d.created.strftime("%Y-%m-%d %H:%M")}
        for d in datasets
    ]
    columns = ["id", "name", "format", "images", "captions", "categories", "created"]
    print(format_table(rows, columns))
    return 0
