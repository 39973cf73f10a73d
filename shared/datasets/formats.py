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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from mirada.datasets.archive import Source
from mirada.datasets.problems import ProblemLog, fatal

FORMATS = ("auto", "csv", "imagefolder", "coco", "karpathy")
KARPATHY_SPLITS = ("train", "val", "test", "restval")
MAX_CATEGORY_CHARS = 200

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

_DRIVE = re.compile(r"^[A-Za-z]:")
_BINARY_MAGIC = {
    b"PK\x03\x04": "a zip archive or Excel .xlsx workbook",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
}
_SPREADSHEET_HINT = "in your spreadsheet use Save As > CSV UTF-8 (comma delimited)"


@dataclass
class Entry:
    """One image of the dataset as the annotation describes it."""

    path: str  # relative path inside the source
    where: str  # where it is first mentioned, for image problems
    captions: list[str] = field(default_factory=list)
    category: str | None = None
    category_where: str | None = None


@dataclass
class Parsed:
    format: str
    entries: list[Entry]
    base: str  # directory of the annotation file(s); Item.filename is relative to it


class _Collector:
    """Merges rows into entries, checking captions and categories row by row."""

    def __init__(self, log: ProblemLog) -> None:
        self.log = log
        self.entries: dict[str, Entry] = {}

    def add(self, where: str, path: str, caption: Any, category: Any) -> None:
        text = caption.strip() if isinstance(caption, str) else ""
        if not text:
            self.log.add(where, f"empty caption for {path}; write a caption or delete the row")
            return
        cat = category.strip() if isinstance(category, str) else None
        if category is not None and not isinstance(category, str):
            cat = str(category).strip()
        cat = cat or None
        if cat and len(cat) > MAX_CATEGORY_CHARS:
            self.log.add(
                where, f"category is longer than {MAX_CATEGORY_CHARS} characters; shorten it"
            )
            return
        entry = self.entries.get(path)
        if entry and cat and entry.category and cat != entry.category:
            self.log.add(
                where,
                f"category {cat!r} conflicts with {entry.category!r} given for {path} at "
                f"{entry.category_where}; an image has one category, make the rows agree",
            )
            return
        if entry is None:
            entry = self.entries[path] = Entry(path, where)
        if cat and not entry.category:
            entry.category, entry.category_where = cat, where
        entry.captions.append(text)


class _Resolver:
    """Turns a file name from an annotation into a path that exists in the source."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = set(files)
        self._lower: dict[str, str] | None = None
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[str | None, str | None]] = {}

    def resolve(self, base: str, *names: str) -> tuple[str | None, str | None]:
        """(path, None) when found, else (None, message saying what to fix)."""
        key = (base, names)
        if key not in self._cache:
            self._cache[key] = self._resolve(base, names)
        return self._cache[key]

    def _resolve(self, base: str, names: tuple[str, ...]) -> tuple[str | None, str | None]:
        tried: list[str] = []
        for raw in names:
            name = raw.strip().replace("\\", "/")
            if not name:
                return None, "has no file name; fill in the file name column"
            if name.startswith("/") or _DRIVE.match(name) or "://" in name:
                return None, (
                    f"file {raw!r} is an absolute path or URL; use a path relative to the "
                    "annotation file, inside the dataset"
                )
            joined = posixpath.normpath(posixpath.join(base, name))
            if joined == ".." or joined.startswith("../"):
                return None, (
                    f"file {raw!r} points outside the dataset; keep images inside the "
                    "dataset folder and use a relative path"
                )
            tried.append(joined)
            for candidate in (joined, posixpath.join(base, "images", name)):
                if candidate in self.files:
                    return candidate, None
        if self._lower is None:
            self._lower = {f.lower(): f for f in self.files}
        for path in tried:
            near = self._lower.get(path.lower())
            if near:
                return (
                    None,
                    f"file {path!r} not found; did you mean {near!r}? (names are case-sensitive)",
                )
        return None, f"file {tried[0]!r} not found in the dataset; add it or fix the name"


# ---------------------------------------------------------------------------- detection


def detect_and_parse(
    source: Source,
    fmt: str,
    split: str | None,
    log: ProblemLog,
    *,
    max_csv_rows: int,
    only: str | None = None,
) -> Parsed:
    """Pick the format and annotation file(s), then parse them. `only` pins one file."""
    if fmt not in FORMATS:
        raise fatal("--format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    files = source.files()
    resolver = _Resolver(files)
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
        return _parse_imagefolder(source, metas, resolver, log, max_csv_rows)

    if fmt in ("auto", "coco", "karpathy"):
        found = _find_json(source, pool, fmt)
        if found:
            kind, rel, doc = found
            if kind == "coco":
                if split:
                    raise fatal("--split", "applies to karpathy and imagefolder datasets; drop it")
                return Parsed("coco", _parse_coco(rel, doc, resolver, log), _dir(rel))
            return Parsed("karpathy", _parse_karpathy(rel, doc, split, resolver, log), _dir(rel))
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
    entries = _parse_csv(source, rel, _dir(rel), resolver, log, max_csv_rows)
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


def _find_json(source: Source, pool: list[str], fmt: str) -> tuple[str, str, Any] | None:
    candidates = sorted((f for f in pool if f.lower().endswith(".json")), key=_depth)
    found: list[tuple[str, str, Any]] = []
    for rel in candidates:
        if found and _depth(rel) > _depth(found[0][1]):
            break
        # Cheap sniff first: per-image sidecar JSONs must not each be parsed in full.
        with source.open(rel) as fh:
            head = fh.read(65536)
        if b'"images"' not in head:
            continue
        doc = _load_json(source, rel)
        kind = _json_kind(doc)
        if kind and fmt in ("auto", kind):
            found.append((kind, rel, doc))
    if len(found) > 1:
        names = ", ".join(f[1] for f in found[:5])
        raise fatal(
            source.label,
            f"found several annotation JSON files ({names}); keep one, or "
            "import the file itself (mirada import path/to/file.json)",
        )
    return found[0] if found else None


def _json_kind(doc: Any) -> str | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        return None
    if isinstance(doc.get("annotations"), list):
        return "coco"
    first = next((im for im in doc["images"] if isinstance(im, dict)), None)
    if first is not None and "sentences" in first:
        return "karpathy"
    return None


def _load_json(source: Source, rel: str) -> Any:
    try:
        with source.open(rel) as fh:
            return json.load(io.TextIOWrapper(fh, encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise fatal(
            rel,
            f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the syntax",
        ) from exc
    except UnicodeDecodeError as exc:
        raise fatal(rel, "is not UTF-8 text; save the JSON as UTF-8") from exc


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
    resolver: _Resolver,
    log: ProblemLog,
    max_rows: int,
    *,
    filename_columns: tuple[str, ...] = FILENAME_COLUMNS,
) -> list[Entry]:
    with source.open(rel) as fh:
        head = fh.read(65536)
    encoding = _check_text(head, rel)
    try:
        local = ProblemLog()
        entries = _parse_csv_as(
            source, rel, base, resolver, local, max_rows, encoding, filename_columns
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
                source, rel, base, resolver, local, max_rows, "cp1252", filename_columns
            )
        except UnicodeDecodeError as exc2:
            raise fatal(
                rel, f"is neither UTF-8 nor Windows-1252 text; {_SPREADSHEET_HINT}"
            ) from exc2
    log.problems.extend(local.problems)
    return entries


def _records(fh: IO[bytes], encoding: str, rel: str) -> Iterator[tuple[int, list[str]]]:
    text = io.TextIOWrapper(fh, encoding=encoding, newline="")
    first = text.readline()
    delimiter = _sniff_delimiter(first, rel)
    lines = _chain_first(first, text)
    reader = csv.reader(lines, delimiter=delimiter)
    row = 0
    try:
        for record in reader:
            row += 1  # spreadsheet numbering: the header is row 1
            yield row, record
    except csv.Error as exc:
        raise fatal(
            f"{rel} row {row + 1}", f"is not valid CSV ({exc}); {_SPREADSHEET_HINT}"
        ) from exc


def _chain_first(first: str, rest: IO[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _parse_csv_as(
    source: Source,
    rel: str,
    base: str,
    resolver: _Resolver,
    log: ProblemLog,
    max_rows: int,
    encoding: str,
    filename_columns: tuple[str, ...],
) -> list[Entry]:
    collector = _Collector(log)
    with source.open(rel) as fh:
        records = _records(fh, encoding, rel)
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
            if data_rows > max_rows:
                raise fatal(
                    rel,
                    f"has more than {max_rows:,} rows, the limit "
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
    source: Source, metas: list[str], resolver: _Resolver, log: ProblemLog, max_rows: int
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
                max_rows,
                filename_columns=("file_name", *FILENAME_COLUMNS),
            )
        else:
            found = _parse_jsonl(source, rel, base, resolver, log, max_rows)
        for entry in found:
            entries.setdefault(entry.path, entry)
    bases = {_dir(m) for m in metas}
    base = bases.pop() if len(bases) == 1 else ""
    return Parsed("imagefolder", list(entries.values()), base)


def _parse_jsonl(
    source: Source, rel: str, base: str, resolver: _Resolver, log: ProblemLog, max_rows: int
) -> list[Entry]:
    collector = _Collector(log)
    with source.open(rel) as fh:
        head = fh.read(65536)
    _check_text(head, rel)
    with source.open(rel) as fh:
        rows = 0
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="strict")
        try:
            for lineno, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                rows += 1
                if rows > max_rows:
                    raise fatal(
                        rel,
                        f"has more than {max_rows:,} lines, the limit "
                        "(MIRADA_MAX_CSV_ROWS); split it or raise the limit",
                    )
                where = f"{rel} line {lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    log.add(where, f"is not valid JSON ({exc.msg}); fix or delete the line")
                    continue
                if not isinstance(obj, dict):
                    log.add(where, 'is not a JSON object; write {"file_name": ..., "text": ...}')
                    continue
                _add_json_row(collector, resolver, base, where, obj, log)
        except UnicodeDecodeError as exc:
            raise fatal(rel, "is not UTF-8 text; save it as UTF-8") from exc
    return list(collector.entries.values())


def _add_json_row(
    collector: _Collector,
    resolver: _Resolver,
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


# ------------------------------------------------------------------------ COCO, Karpathy


def _parse_coco(rel: str, doc: dict[str, Any], resolver: _Resolver, log: ProblemLog) -> list[Entry]:
    base = _dir(rel)
    names = {c.get("id"): c.get("name") for c in doc.get("categories") or [] if isinstance(c, dict)}
    by_id: dict[Any, tuple[str, str, Any]] = {}
    order: list[Any] = []
    reported: set[Any] = set()  # images already reported: their annotations add no news
    for i, im in enumerate(doc["images"]):
        where = f"{rel} images[{i}]"
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            log.add(where, "needs an 'id' and a 'file_name'; fix the entry")
            continue
        if im["id"] in by_id:
            log.add(where, f"repeats image id {im['id']!r}; give each image its own id")
            continue
        path, error = resolver.resolve(base, im["file_name"])
        if path is None:
            log.add(where, error or "bad file name")
            reported.add(im["id"])
            continue
        category = im.get("category")
        if category is None and "category_id" in im:
            category = names.get(im["category_id"], im["category_id"])
        by_id[im["id"]] = (path, where, category)
        order.append(im["id"])
    collector = _Collector(log)
    captions: dict[Any, list[tuple[str, Any]]] = {}
    for j, ann in enumerate(doc["annotations"]):
        where = f"{rel} annotations[{j}]"
        if not isinstance(ann, dict) or "image_id" not in ann:
            log.add(where, "needs an 'image_id' and a 'caption'; fix the entry")
            continue
        if ann["image_id"] not in by_id:
            if ann["image_id"] not in reported:
                log.add(
                    where,
                    f"refers to image id {ann['image_id']!r}, which is not in "
                    "'images'; add the image or delete the annotation",
                )
            continue
        captions.setdefault(ann["image_id"], []).append((where, ann.get("caption")))
    for image_id in order:
        path, where, category = by_id[image_id]
        rows = captions.get(image_id)
        if not rows:
            log.add(where, f"{path} has no captions in 'annotations'; add one or remove the image")
            continue
        for ann_where, text in rows:
            collector.add(ann_where, path, text, category)
    return list(collector.entries.values())


def _parse_karpathy(
    rel: str, doc: dict[str, Any], split: str | None, resolver: _Resolver, log: ProblemLog
) -> list[Entry]:
    base = _dir(rel)
    images = doc["images"]
    if split:
        present = sorted({str(im.get("split")) for im in images if isinstance(im, dict)})
        if split not in present:
            raise fatal(
                f"--split {split}",
                f"no images in split {split!r} of {rel}; available: {', '.join(present) or 'none'}",
            )
    collector = _Collector(log)
    for i, im in enumerate(images):
        where = f"{rel} images[{i}]"
        if not isinstance(im, dict) or not isinstance(im.get("filename"), str):
            log.add(where, "needs a 'filename'; fix the entry")
            continue
        if split and im.get("split") != split:
            continue
        folder = im.get("filepath")
        names = [posixpath.join(folder, im["filename"])] if isinstance(folder, str) else []
        path, error = resolver.resolve(base, *names, im["filename"])
        if path is None:
            log.add(where, error or "bad file name")
            continue
        sentences = im.get("sentences") or []
        if not sentences:
            log.add(where, f"{path} has no sentences; add one or remove the image")
            continue
        for s in sentences:
            text = s.get("raw") if isinstance(s, dict) else s
            if text is None and isinstance(s, dict) and isinstance(s.get("tokens"), list):
                text = " ".join(map(str, s["tokens"]))
            collector.add(where, path, text, im.get("category"))
    return list(collector.entries.values())
