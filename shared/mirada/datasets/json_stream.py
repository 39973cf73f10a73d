"""Read a COCO or Karpathy JSON file into the few fields the parsers use, in bounded memory.

`json.load` needs about nine times a file's size (a 250 MiB Karpathy file: 2.4 GB), so a file
above `STREAM_ABOVE_BYTES` is read as a stream of events (ijson) and only the fields the parsers
read are kept: images' ids, names, splits and categories, each sentence as its caption, each
annotation's image id and caption. The result has the shape of the parsed document, so the
parsers, their checks and their messages are the same for both paths. Captions are counted
while reading and refused past the row limit, as CSV rows are.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson

from mirada.datasets.problems import fatal

STREAM_ABOVE_BYTES = 8 * 1024**2
MAX_DEPTH = 256  # far deeper than any annotation file; bounds the builders' stacks

_TOP = ("images", "annotations", "categories")
_KEEP = {
    "images": frozenset(
        {"id", "file_name", "category", "category_id", "filename", "filepath", "split"}
    ),
    "annotations": frozenset({"image_id", "caption"}),
    "categories": frozenset({"id", "name"}),
}
_SENTENCE_KEYS = frozenset({"raw", "tokens"})

Events = Iterator[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class Sentence:
    """A Karpathy sentence already checked and reduced to its caption while streaming."""

    text: str


def load_json(fh: IO[bytes], rel: str, max_captions: int) -> Any:
    """The document (small file) or its reduced form (large file); fatal on bad JSON."""
    head = fh.read(STREAM_ABOVE_BYTES + 1)
    if len(head) <= STREAM_ABOVE_BYTES:
        return _load_small(head, rel, max_captions)
    reader = _Prefixed(head, fh)
    try:
        return _Reader(rel, max_captions).document(
            ijson.basic_parse(reader, use_float=True)  # floats as json.load gives them
        )
    except ijson.JSONError as exc:
        raise fatal(rel, f"is not valid JSON ({_short(exc)}); fix the syntax") from exc


def _load_small(data: bytes, rel: str, max_captions: int) -> Any:
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise fatal(
            rel,
            f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the syntax",
        ) from exc
    except UnicodeDecodeError as exc:
        raise fatal(rel, "is not UTF-8 text; save the JSON as UTF-8") from exc
    except RecursionError as exc:
        raise fatal(rel, "is nested too deeply to read; this is not an annotation file") from exc
    if isinstance(doc, dict):
        images, annotations = doc.get("images"), doc.get("annotations")
        count = len(annotations) if isinstance(annotations, list) else 0
        if isinstance(images, list):
            count += sum(
                len(im["sentences"])
                for im in images
                if isinstance(im, dict) and isinstance(im.get("sentences"), list)
            )
        if count > max_captions:
            raise too_many_captions(rel, max_captions)
    return doc


def too_many_captions(rel: str, limit: int) -> Exception:
    return fatal(
        rel,
        f"has more than {limit:,} captions, the limit (MIRADA_MAX_CSV_ROWS); split it into "
        "several datasets or raise the limit",
    )


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class _Prefixed:
    """`head` (already read, BOM dropped) followed by the rest of `fh`, for ijson."""

    def __init__(self, head: bytes, fh: IO[bytes]) -> None:
        self.head = head.removeprefix(codecs.BOM_UTF8)
        self.fh = fh

    def read(self, size: int = -1) -> bytes:
        if self.head:
            out = self.head if size < 0 else self.head[:size]
            self.head = self.head[len(out) :]
            return out
        return self.fh.read(size)


class _Reader:
    def __init__(self, rel: str, max_captions: int) -> None:
        self.rel = rel
        self.max_captions = max_captions
        self.captions = 0
        self.depth = 0

    def document(self, events: Events) -> Any:
        event, value = next(events)
        if event != "start_map":
            self._skip(event, events)
            self._end(events)
            return value  # a scalar or a skipped list/object: not an annotation file
        doc: dict[str, Any] = {}
        self._enter()
        for key in self._keys(events):
            event, value = next(events)
            if key in _TOP and event == "start_array":
                doc[key] = self._array(events, key)
            elif key in _TOP:
                doc[key] = self._value(event, value, events)
            else:
                self._skip(event, events)
        self._end(events)
        return doc

    def _end(self, events: Events) -> None:
        for _ in events:  # ijson reports trailing garbage only when read to the end
            pass

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise fatal(self.rel, "is nested too deeply to read; this is not an annotation file")

    def _keys(self, events: Events) -> Iterator[str]:
        """Keys of the object just opened, up to its end; the caller consumes each value."""
        while True:
            event, value = next(events)
            if event == "end_map":
                self.depth -= 1
                return
            yield value

    def _array(self, events: Events, section: str) -> list[Any]:
        self._enter()
        out: list[Any] = []
        for event, _ in _until("end_array", events):
            if event == "start_map":
                out.append(self._object(events, _KEEP[section], sentences=section == "images"))
            else:
                self._skip(event, events)
                out.append(None)  # not an object: reported by the parser by its index
            if section == "annotations":
                self._count()
        self.depth -= 1
        return out

    def _object(self, events: Events, keep: frozenset[str], *, sentences: bool) -> dict[str, Any]:
        self._enter()
        record: dict[str, Any] = {}
        for key in self._keys(events):
            event, value = next(events)
            if key in keep:
                record[key] = self._value(event, value, events)
            elif key == "sentences" and sentences:
                record[key] = self._sentences(event, value, events)
            else:
                self._skip(event, events)
        return record

    def _sentences(self, event: str, value: Any, events: Events) -> Any:
        if event != "start_array":
            return self._value(event, value, events)  # refused by the parser, with its value
        self._enter()
        out: list[Any] = []
        for event, value in _until("end_array", events):
            self._count()
            if event == "start_map":
                out.append(_reduce(self._object(events, _SENTENCE_KEYS, sentences=False)))
            else:
                out.append(self._value(event, value, events))
        self.depth -= 1
        return out

    def _count(self) -> None:
        self.captions += 1
        if self.captions > self.max_captions:
            raise too_many_captions(self.rel, self.max_captions)

    def _value(self, event: str, value: Any, events: Events) -> Any:
        """Build the whole value that starts with (event, value)."""
        if event == "start_map":
            self._enter()
            obj: dict[str, Any] = {}
            for key in self._keys(events):
                obj[key] = self._value(*next(events), events)
            return obj
        if event == "start_array":
            self._enter()
            items = [self._value(e, v, events) for e, v in _until("end_array", events)]
            self.depth -= 1
            return items
        return value

    def _skip(self, event: str, events: Events) -> None:
        if event not in ("start_map", "start_array"):
            return
        depth = 1
        for event, _ in events:
            if event in ("start_map", "start_array"):
                depth += 1
                if self.depth + depth > MAX_DEPTH:
                    raise fatal(
                        self.rel, "is nested too deeply to read; this is not an annotation file"
                    )
            elif event in ("end_map", "end_array"):
                depth -= 1
                if depth == 0:
                    return


def _until(end: str, events: Events) -> Iterator[tuple[str, Any]]:
    for event, value in events:
        if event == end:
            return
        yield event, value


def _reduce(sentence: dict[str, Any]) -> Sentence | dict[str, Any]:
    # The same rule as json_formats.sentence_text: "raw", else the tokens joined. Anything else
    # stays as read, so the parser refuses it with its value and path.
    raw, tokens = sentence.get("raw"), sentence.get("tokens")
    if isinstance(raw, str):
        return Sentence(raw)
    if raw is None and isinstance(tokens, list):
        return Sentence(" ".join(map(str, tokens)))
    return sentence
