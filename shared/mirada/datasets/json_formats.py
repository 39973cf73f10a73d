"""COCO captions and Karpathy split files: detection by parsing, schema checks, entries."""

from __future__ import annotations

import posixpath
from typing import Any

from mirada.datasets.archive import Source
from mirada.datasets.entries import Collector, Entry, Resolver
from mirada.datasets.json_stream import Sentence, load_json
from mirada.datasets.problems import ProblemLog, fatal


def _dir(rel: str) -> str:
    return posixpath.dirname(rel)


def _depth(rel: str) -> int:
    return rel.count("/")


def find_json(
    source: Source, pool: list[str], fmt: str, max_captions: int
) -> tuple[str, str, Any] | None:
    candidates = sorted((f for f in pool if f.lower().endswith(".json")), key=_depth)
    found: list[tuple[str, str, Any]] = []
    for rel in candidates:
        if found and _depth(rel) > _depth(found[0][1]):
            break
        # Cheap scan first, over the whole file in chunks (keys may come in any order, e.g.
        # sorted): per-image sidecar JSONs without "images" are never parsed in full.
        if not _mentions(source, rel, b'"images"'):
            continue
        with source.open(rel) as fh:
            doc = load_json(fh, rel, max_captions)
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


def _mentions(source: Source, rel: str, token: bytes) -> bool:
    tail = b""
    with source.open(rel) as fh:
        while chunk := fh.read(1024 * 1024):
            if token in tail + chunk[: len(token)] or token in chunk:
                return True
            tail = chunk[-len(token) :]
    return False


def _valid_id(value: Any) -> bool:
    # Ids become dict keys and appear in messages: plain numbers or strings only.
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _json_kind(doc: Any) -> str | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        return None
    if isinstance(doc.get("annotations"), list):
        return "coco"
    first = next((im for im in doc["images"] if isinstance(im, dict)), None)
    if first is not None and "sentences" in first:
        return "karpathy"
    return None


def parse_coco(rel: str, doc: dict[str, Any], resolver: Resolver, log: ProblemLog) -> list[Entry]:
    base = _dir(rel)
    cats = doc.get("categories")
    names = {
        c.get("id"): c.get("name")
        for c in (cats if isinstance(cats, list) else [])
        if isinstance(c, dict) and _valid_id(c.get("id"))
    }
    by_id: dict[Any, tuple[str, str, Any]] = {}
    order: list[Any] = []
    reported: set[Any] = set()  # images already reported: their annotations add no news
    for i, im in enumerate(doc["images"]):
        where = f"{rel} images[{i}]"
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            log.add(where, "needs an 'id' and a 'file_name'; fix the entry")
            continue
        if not _valid_id(im["id"]):
            log.add(f"{where}.id", f"is {im['id']!r}; an image id must be a number or a string")
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
            cid = im["category_id"]
            category = names.get(cid, cid) if _valid_id(cid) else cid
        by_id[im["id"]] = (path, where, category)
        order.append(im["id"])
    collector = Collector(log)
    captions: dict[Any, list[tuple[str, Any]]] = {}
    for j, ann in enumerate(doc["annotations"]):
        where = f"{rel} annotations[{j}]"
        if not isinstance(ann, dict) or "image_id" not in ann:
            log.add(where, "needs an 'image_id' and a 'caption'; fix the entry")
            continue
        if not _valid_id(ann["image_id"]):
            log.add(
                f"{where}.image_id",
                f"is {ann['image_id']!r}; an image id must be a number or a string",
            )
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


def _schema(where: str, value: Any, expected: str) -> Exception:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return fatal(
        where,
        f"is {shown}, expected {expected}; this is not a Karpathy split file as written by "
        "Karpathy's tools (images[].sentences[].raw). Fix the entry or pick --format",
    )


def _sentence_text(where: str, sentence: Any) -> str | None:
    """The caption of one Karpathy sentence object; anything else is refused outright, since
    a string or a different object means we misread the schema (not one bad row)."""
    if isinstance(sentence, Sentence):
        return sentence.text  # large files: checked and reduced while streaming
    if not isinstance(sentence, dict):
        raise _schema(where, sentence, 'an object {"raw": "a caption", "tokens": [...]}')
    text = sentence.get("raw")
    if text is None and isinstance(sentence.get("tokens"), list):
        return " ".join(map(str, sentence["tokens"]))
    if text is not None and not isinstance(text, str):
        raise _schema(f"{where}.raw", text, "a string")
    if text is None:
        raise _schema(where, sentence, 'an object with a "raw" caption')
    return text


def splits_of(doc: dict[str, Any]) -> list[str]:
    return sorted({str(im.get("split")) for im in doc["images"] if isinstance(im, dict)})


def parse_karpathy(
    rel: str, doc: dict[str, Any], split: str | None, resolver: Resolver, log: ProblemLog
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
    collector = Collector(log)
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
        if not isinstance(sentences, list):
            raise _schema(f"{where}.sentences", sentences, 'a list of {"raw": ...} objects')
        for j, sentence in enumerate(sentences):
            collector.add(
                where, path, _sentence_text(f"{where}.sentences[{j}]", sentence), im.get("category")
            )
    return list(collector.entries.values())
