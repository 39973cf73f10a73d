"""Find the annotation file(s) in a source and parse them into entries (image + captions).

Parsers never touch pixels: they only decide which files belong to the dataset and with which
captions and category. Skippable problems (bad rows) go to the ProblemLog; structural ones
(no caption column, binary garbage, unsafe sizes) raise at once.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from mirada.datasets.archive import Source, UnreadableFile
from mirada.datasets.entries import Collector, Entry, Parsed, Resolver
from mirada.datasets.json_formats import find_json, parse_coco, parse_karpathy, splits_of
from mirada.datasets.problems import ProblemLog, fatal

FORMATS = ("auto", "csv", "imagefolder", "coco", "karpathy")
KARPATHY_SPLITS = ("train", "val", "test", "restval")

# Header aliases, in order of preference, compared after lower-casing and '-'/' ' -> '_'.
FILENAME_COLUMNS = (
    "filename",
    "file_name",
    "file",
    "image",
    "image_file",
    "image_name",
    "image_path",
    "img",
    "path",
    "filepath",
    "file_path",
)
CAPTION_COLUMNS = ("caption", "text", "description", "sentence", "captions", "alt_text")
CATEGORY_COLUMNS = ("category", "label", "class", "group", "category_name")

_BINARY_MAGIC = {
    b"PK\x03\x04": "a zip archive or Excel .xlsx workbook",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
}
_SPREADSHEET_HINT = "in your spreadsheet use Save As > CSV UTF-8 (comma delimited)"


# ---------------------------------------------------------------------------- detection


def detect_and_parse(
    source: Source,
    fmt: str,
    split: str | None,
    log: ProblemLog,
    *,
    max_csv_rows: int,
    max_line_chars: int = 1_000_000,
    only: str | None = None,
) -> Parsed:
    """Pick the format and annotation file(s), then parse them. `only` pins one file."""
    limits = Limits(max_csv_rows, max_line_chars)
    try:
        return _detect_and_parse(source, fmt, split, log, limits, only)
    except UnreadableFile as exc:
        raise fatal(exc.rel, exc.reason) from exc
    except OSError as exc:
        raise fatal(source.label, f"cannot be read ({exc}); check the files") from exc


@dataclass(frozen=True)
class Limits:
    rows: int
    line_chars: int


def _detect_and_parse(
    source: Source, fmt: str, split: str | None, log: ProblemLog, limits: Limits, only: str | None
) -> Parsed:
    if fmt not in FORMATS:
        raise fatal("--format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    files = source.files()
    resolver = Resolver(files)
    pool = [only] if only else files
    metas = [f for f in pool if posixpath.basename(f).lower() in ("metadata.csv", "metadata.jsonl")]
    if split and fmt in ("csv", "coco"):
        raise fatal("--split", f"applies to karpathy and imagefolder datasets, not {fmt}; drop it")

    if fmt == "imagefolder" or (fmt == "auto" and metas):
        if split:
            metas = [m for m in metas if split in m.split("/")[:-1]]
        if not metas:
            where = f"split {split!r}" if split else source.label
            raise fatal(
                where,
                "no metadata.csv or metadata.jsonl found (Hugging Face imagefolder "
                "layout); add one with file_name and text columns",
            )
        return _parse_imagefolder(source, metas, resolver, log, limits)

    if fmt in ("auto", "coco", "karpathy"):
        found = find_json(source, pool, fmt, limits.rows)
        if found:
            kind, json_rel, doc = found
            if kind == "coco":
                if split:
                    raise fatal("--split", "applies to karpathy and imagefolder datasets; drop it")
                return Parsed("coco", parse_coco(json_rel, doc, resolver, log), _dir(json_rel))
            parsed = Parsed(
                "karpathy", parse_karpathy(json_rel, doc, split, resolver, log), _dir(json_rel)
            )
            splits = splits_of(doc)
            if not split and len(splits) > 1:
                parsed.warnings.append(
                    f"{json_rel} mixes the splits {', '.join(splits)} and all were imported; pass "
                    "--split test (for example) to import one split"
                )
            return parsed
        if fmt != "auto":
            raise fatal(
                source.label,
                f"no {fmt} JSON found; expected "
                + (
                    "a COCO captions file with 'images' and 'annotations'"
                    if fmt == "coco"
                    else "a Karpathy split file with images[].sentences"
                ),
            )

    csvs = [f for f in pool if f.lower().endswith((".csv", ".tsv")) and f not in metas]
    rel = _pick_one(source, csvs, preferred="captions.csv", what="CSV files")
    if rel is None:
        raise fatal(
            source.label,
            "no annotation file found: add a captions CSV (filename,caption[,category]), a "
            "metadata.csv/metadata.jsonl, a COCO captions JSON or a Karpathy split JSON",
        )
    if split:
        raise fatal("--split", "applies to karpathy and imagefolder datasets, not csv; drop it")
    entries = _parse_csv(source, rel, _dir(rel), resolver, log, limits)
    return Parsed("csv", entries, _dir(rel))


def _dir(rel: str) -> str:
    return posixpath.dirname(rel)


def _depth(rel: str) -> int:
    return rel.count("/")


def _pick_one(source: Source, candidates: list[str], *, preferred: str, what: str) -> str | None:
    if not candidates:
        return None
    top = min(_depth(c) for c in candidates)
    shallow = [c for c in candidates if _depth(c) == top]
    if len(shallow) > 1:
        named = [c for c in shallow if posixpath.basename(c).lower() == preferred]
        if len(named) == 1:
            return named[0]
        raise fatal(
            source.label,
            f"found several {what} ({', '.join(shallow[:5])}); keep one, or import the "
            "file itself (mirada import path/to/file.csv)",
        )
    return shallow[0]


# ------------------------------------------------------------------------------- CSV


def _check_text(head: bytes, rel: str) -> str:
    """Return the encoding of a CSV from its first bytes, or reject binary garbage."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" export
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise fatal(rel, f"is {what}, not a CSV text file; {_SPREADSHEET_HINT}")
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if b"\x00" in head or controls > max(4, len(head) // 200):
        raise fatal(rel, f"contains binary data, not CSV text; {_SPREADSHEET_HINT}")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        # Spanish/Western-locale Excel exports are Windows-1252.
        return "cp1252"


def _sniff_delimiter(first_line: str, rel: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        return "\t" if rel.lower().endswith(".tsv") else ","
    return best


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    norm = [re.sub(r"[\s\-]+", "_", h.strip().lstrip("\ufeff").lower()) for h in header]
    for name in names:
        if name in norm:
            return norm.index(name)
    return None


def _parse_csv(
    source: Source,
    rel: str,
    base: str,
    resolver: Resolver,
    log: ProblemLog,
    limits: Limits,
    *,
    filename_columns: tuple[str, ...] = FILENAME_COLUMNS,
) -> list[Entry]:
    with source.open(rel) as fh:
        head = fh.read(65536)
    encoding = _check_text(head, rel)
    try:
        local = ProblemLog()
        entries = _parse_csv_as(
            source, rel, base, resolver, local, limits, encoding, filename_columns
        )
    except UnicodeDecodeError as exc:
        if encoding != "utf-8":
            raise fatal(
                rel, f"is neither UTF-8 nor Windows-1252 text; {_SPREADSHEET_HINT}"
            ) from exc
        # Valid UTF-8 at the start, not later: a Windows-1252 file with a plain-ASCII head.
        local = ProblemLog()
        try:
            entries = _parse_csv_as(
                source, rel, base, resolver, local, limits, "cp1252", filename_columns
            )
        except UnicodeDecodeError as exc2:
            raise fatal(
                rel, f"is neither UTF-8 nor Windows-1252 text; {_SPREADSHEET_HINT}"
            ) from exc2
    log.problems.extend(local.problems)
    return entries


def bounded_lines(text: IO[str], limit: int, rel: str) -> Iterator[str]:
    """The lines of `text`, refusing one longer than `limit` before it is all in memory."""
    lineno = 0
    while line := text.readline(limit + 1):
        lineno += 1
        if len(line) > limit:
            raise fatal(
                f"{rel} line {lineno}",
                f"is longer than {limit:,} characters (MIRADA_MAX_LINE_CHARS); this is not a "
                "caption file (or a broken one). Fix the file or raise the limit",
            )
        yield line


def _records(
    fh: IO[bytes], encoding: str, rel: str, limits: Limits
) -> Iterator[tuple[int, list[str]]]:
    text = io.TextIOWrapper(fh, encoding=encoding, newline="")
    lines = bounded_lines(text, limits.line_chars, rel)
    first = next(lines, "")
    delimiter = _sniff_delimiter(first, rel)
    reader = csv.reader(_chain_first(first, lines), delimiter=delimiter)
    row = 0
    try:
        for record in reader:
            row += 1  # spreadsheet numbering: the header is row 1
            yield row, record
    except csv.Error as exc:
        raise fatal(
            f"{rel} row {row + 1}", f"is not valid CSV ({exc}); {_SPREADSHEET_HINT}"
        ) from exc


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _parse_csv_as(
    source: Source,
    rel: str,
    base: str,
    resolver: Resolver,
    log: ProblemLog,
    limits: Limits,
    encoding: str,
    filename_columns: tuple[str, ...],
) -> list[Entry]:
    collector = Collector(log)
    with source.open(rel) as fh:
        records = _records(fh, encoding, rel, limits)
        header: list[str] | None = None
        cols: tuple[int, int, int | None] = (0, 0, None)
        data_rows = 0
        for row, record in records:
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = record
                fcol = _column(header, filename_columns)
                ccol = _column(header, CAPTION_COLUMNS)
                found = ", ".join(repr(h) for h in header[:8])
                if fcol is None:
                    raise fatal(
                        f"{rel} row {row}",
                        f"has no file name column (found {found}); "
                        f"name one column {filename_columns[0]!r}",
                    )
                if ccol is None:
                    raise fatal(
                        f"{rel} row {row}",
                        f"has no caption column (found {found}); "
                        "name the column with the captions 'caption'",
                    )
                cols = (fcol, ccol, _column(header, CATEGORY_COLUMNS))
                continue
            data_rows += 1
            if data_rows > limits.rows:
                raise fatal(
                    rel,
                    f"has more than {limits.rows:,} rows, the limit "
                    "(MIRADA_MAX_CSV_ROWS); split it into several datasets or raise "
                    "the limit",
                )
            where = f"{rel} row {row}"
            fcol, ccol, kcol = cols
            name = record[fcol] if fcol < len(record) else ""
            path, error = resolver.resolve(base, name)
            if path is None:
                log.add(where, error or "bad file name")
                continue
            caption = record[ccol] if ccol < len(record) else ""
            category = record[kcol] if kcol is not None and kcol < len(record) else None
            collector.add(where, path, caption, category)
        if header is None:
            raise fatal(rel, "is empty; add a header row (filename,caption,category) and rows")
    return list(collector.entries.values())


# ------------------------------------------------------------------------ imagefolder


def _parse_imagefolder(
    source: Source, metas: list[str], resolver: Resolver, log: ProblemLog, limits: Limits
) -> Parsed:
    entries: dict[str, Entry] = {}
    for rel in metas:
        base = _dir(rel)
        if rel.lower().endswith(".csv"):
            found = _parse_csv(
                source,
                rel,
                base,
                resolver,
                log,
                limits,
                filename_columns=("file_name", *FILENAME_COLUMNS),
            )
        else:
            found = _parse_jsonl(source, rel, base, resolver, log, limits)
        for entry in found:
            entries.setdefault(entry.path, entry)
    bases = {_dir(m) for m in metas}
    base = bases.pop() if len(bases) == 1 else ""
    return Parsed("imagefolder", list(entries.values()), base)


def _parse_jsonl(
    source: Source, rel: str, base: str, resolver: Resolver, log: ProblemLog, limits: Limits
) -> list[Entry]:
    collector = Collector(log)
    with source.open(rel) as fh:
        head = fh.read(65536)
    _check_text(head, rel)
    with source.open(rel) as fh:
        rows = 0
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="strict")
        try:
            for lineno, line in enumerate(bounded_lines(text, limits.line_chars, rel), start=1):
                if not line.strip():
                    continue
                rows += 1
                if rows > limits.rows:
                    raise fatal(
                        rel,
                        f"has more than {limits.rows:,} lines, the limit "
                        "(MIRADA_MAX_CSV_ROWS); split it or raise the limit",
                    )
                where = f"{rel} line {lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    log.add(where, f"is not valid JSON ({exc.msg}); fix or delete the line")
                    continue
                except RecursionError:
                    log.add(where, "is nested too deeply to read; flatten the JSON object")
                    continue
                if not isinstance(obj, dict):
                    log.add(where, 'is not a JSON object; write {"file_name": ..., "text": ...}')
                    continue
                _add_json_row(collector, resolver, base, where, obj, log)
        except UnicodeDecodeError as exc:
            raise fatal(rel, "is not UTF-8 text; save it as UTF-8") from exc
    return list(collector.entries.values())


def _add_json_row(
    collector: Collector,
    resolver: Resolver,
    base: str,
    where: str,
    obj: dict[str, Any],
    log: ProblemLog,
) -> None:
    name = next((obj[k] for k in ("file_name", *FILENAME_COLUMNS) if k in obj), None)
    if not isinstance(name, str):
        log.add(where, 'has no file_name; add the image\'s relative path as "file_name"')
        return
    key = next((k for k in CAPTION_COLUMNS if k in obj), None)
    if key is None:
        log.add(where, 'has no caption; add a "text" (or "caption") field')
        return
    path, error = resolver.resolve(base, name)
    if path is None:
        log.add(where, error or "bad file name")
        return
    captions = obj[key] if isinstance(obj[key], list) else [obj[key]]
    category = next((obj[k] for k in CATEGORY_COLUMNS if k in obj), None)
    for caption in captions or [""]:
        collector.add(where, path, caption, category)
