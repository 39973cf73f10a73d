"""Checks across the members of a result bundle (mirada.bundles.schema declares each member):
indices in range, embeddings that cover every item or caption once with one dimension, finite
and nonzero, artifacts that parse as their name says; and export's side, which runs the same
models and checks before it writes, so export never writes what import would refuse.

Memory (issue 22 §3): dataset.json's items and results.json's per-item results and generated
captions are validated one entry at a time as they stream from the bundle (`read_dataset`,
`check_bundle`), through the same models as the whole documents, and only compact records are
kept: a dataset item as the store's NewItem, a per-item result as its validated JSON (decoded
again a chunk at a time when written). A 200,000-item match run imports in well under 1 GB.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from mirada.benchmark_records import load_measurement, load_records
from mirada.bundles.archive import DATASET, RESULTS, RUN, BundleError, json_bytes
from mirada.bundles.schema import (
    Count,
    DatasetDoc,
    DatasetHead,
    DatasetItems,
    Doc,
    GeneratedCaptionDoc,
    ItemDoc,
    ItemResultDoc,
    Name,
    Positive,
    ResultsDoc,
    ResultsHead,
    RunDoc,
    Text,
    embedding_member,
    json_value,
    parse,
    unique,
)
from mirada.datasets.store import NewImage, NewItem
from mirada.errors import MiradaError
from mirada.metrics import names
from mirada.metrics.probe import PROBE_ARTIFACT
from mirada.results import MEASUREMENT_ARTIFACT, VARIANTS_ARTIFACT

PROBE_KEYS = frozenset((names.PROBE_ACCURACY, *(names.knn_accuracy(k) for k in names.KNN_KS)))

ZEROSHOT_CONFUSION = "zeroshot_confusion"
CAPTION_CORPUS = "caption_corpus"
JSON_TYPE = "application/json"
NPY_TYPE = "application/x-npy"
PROJECTION = re.compile(r"projection:(pca|tsne):(image|text|joint)")


@dataclass(frozen=True)
class Embedding:
    kind: str
    rows: np.ndarray  # int64 [N]: item indices (image) or caption indices (text)
    vectors: np.ndarray  # float32 [N, D]


def check_embedding(kind: str, vectors: np.ndarray, rows: np.ndarray, expected: int) -> None:
    """An embedding set as the pages read it: one finite, nonzero row per item (image) or
    caption (text); `vectors` float32 [N, D] and `rows` int64 [N] already."""
    name = f"bundle {embedding_member(kind)}"
    if vectors.shape[1] < 1:
        raise BundleError(f"{name}: vectors have no dimensions")
    if len(rows) != len(vectors):
        raise BundleError(f"{name}: {len(vectors)} vectors but {len(rows)} rows")
    if len(rows) != expected or not np.array_equal(np.sort(rows), np.arange(expected)):
        what = "item" if kind == "image" else "caption"
        raise BundleError(
            f"{name}: rows must name every {what} of {DATASET} once ({expected}), "
            f"not {len(rows)} rows"
        )
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise BundleError(f"{name}: row {int(np.argmin(finite))} is not all finite numbers")
    zero = ~vectors.any(axis=1)
    if zero.any():
        raise BundleError(f"{name}: row {int(np.argmax(zero))} is all zeros (no direction)")


def _json_artifact(data: bytes, where: str) -> Any:
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        json_value(doc)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{where}: not plain JSON ({exc})") from None
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


class Confusion(Doc):
    labels: list[Name]
    matrix: list[list[Count]]

    @model_validator(mode="after")
    def _square(self) -> Confusion:
        unique(self.labels, "labels: label")
        n = len(self.labels)
        if len(self.matrix) != n or any(len(row) != n for row in self.matrix):
            raise ValueError(f"matrix must be {n}x{n} for its {n} labels")
        return self


Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ProbeMethod(Doc):
    """One classifier of the PROBE_ARTIFACT (mirada.metrics.probe.build_probe_report)."""

    n: Count
    correct: Count
    per_fold: list[Share]
    matrix: list[list[Count]]
    recall: dict[Name, Share]
    messages: list[Text]


class ProbeDoc(Doc):
    """The PROBE_ARTIFACT: its confusion matrices square in the labels and summing to n."""

    seed: Annotated[int, Field(ge=0, le=2**32 - 1)]
    max_folds: Positive
    folds: Positive | None
    c_grid: list[PositiveNumber]
    validation_fraction: Share
    chosen_c: list[PositiveNumber]
    labels: list[Name]
    sizes: dict[Name, Count]
    methods: dict[Name, ProbeMethod]
    skipped: list[Text]
    reason: Text | None

    @model_validator(mode="after")
    def _consistent(self) -> ProbeDoc:
        unique(self.labels, "labels: label")
        k, folds = len(self.labels), self.folds or 0
        if (self.reason is None) == (folds == 0):
            raise ValueError("needs either folds or a reason why there are none")
        if self.chosen_c and len(self.chosen_c) != folds:
            raise ValueError(f"chosen_c has {len(self.chosen_c)} values for {folds} folds")
        if set(self.sizes) != set(self.labels):
            raise ValueError("sizes must name each label once")
        for key, m in self.methods.items():
            if key not in PROBE_KEYS:
                raise ValueError(f"methods: unknown metric {key!r} (a newer Mirada's?)")
            if len(m.matrix) != k or any(len(row) != k for row in m.matrix):
                raise ValueError(f"methods.{key}.matrix must be {k}x{k} for its {k} labels")
            if sum(map(sum, m.matrix)) != m.n or sum(m.matrix[i][i] for i in range(k)) != m.correct:
                raise ValueError(f"methods.{key}: matrix disagrees with n or correct")
            if len(m.per_fold) != folds or set(m.recall) != set(self.labels):
                raise ValueError(f"methods.{key}: per_fold or recall disagrees with folds/labels")
        return self


def check_artifact(name: str, content_type: str, data: bytes, member: str) -> None:
    """An artifact parses as its name says (mirada.results lists the names)."""
    where = f"bundle {member} (artifact {name!r})"
    projection = PROJECTION.fullmatch(name)
    want = NPY_TYPE if projection else JSON_TYPE
    if content_type.split(";")[0].strip() != want:
        raise BundleError(f"{where}: content type {content_type!r} is not {want}")
    if projection:
        try:
            xy = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise BundleError(f"{where}: not a .npy array ({exc})") from None
        if xy.dtype != np.float32 or xy.ndim != 2 or xy.shape[1] != 2:
            raise BundleError(f"{where}: must be float32 [N, 2], not {xy.dtype} {xy.shape}")
        if not np.isfinite(xy).all():
            raise BundleError(f"{where}: holds non-finite numbers")
        return
    if name == VARIANTS_ARTIFACT or name == MEASUREMENT_ARTIFACT:
        try:
            _json_artifact(data, where)
            (load_records if name == VARIANTS_ARTIFACT else load_measurement)(data, where)
        except MiradaError as exc:
            raise BundleError(str(exc)) from None
        return
    doc = _json_artifact(data, where)
    if name == ZEROSHOT_CONFUSION:
        parse(Confusion, doc, f"{member} (artifact {name!r})")
    elif name == PROBE_ARTIFACT:
        parse(ProbeDoc, doc, f"{member} (artifact {name!r})")
    elif name == CAPTION_CORPUS:
        if not isinstance(doc, dict):
            raise BundleError(f"{where}: must be a JSON object")
    else:
        raise BundleError(f"{where}: unknown artifact name (a newer Mirada's?)")


@dataclass(frozen=True)
class DatasetRecords:
    """dataset.json after every check, its items as compact records in order."""

    head: DatasetHead  # its `items` empty
    items: list[NewItem]
    images: dict[str, NewImage]  # by SHA-256
    n_captions: int


def read_dataset(head: Any, entries: Iterable[Any]) -> DatasetRecords:
    """dataset.json from its document less its items (`head`) and its items one at a time."""
    doc = parse(DatasetHead, head, DATASET)
    checks, items, n_captions = DatasetItems(), [], 0
    for n, raw in enumerate(entries):
        it = parse(ItemDoc, raw, DATASET, ("items", n))
        try:
            checks.add(n, it)
        except ValueError as exc:
            raise BundleError(f"bundle {DATASET}: {exc}") from None
        items.append(NewItem(it.filename, it.image.sha256, it.category, list(it.captions)))
        n_captions += len(it.captions)
    try:
        checks.check_fingerprint(doc.fingerprint)
    except ValueError as exc:
        raise BundleError(f"bundle {DATASET}: {exc}") from None
    images = {sha: NewImage(*values) for sha, values in checks.images.items()}
    return DatasetRecords(doc, items, images, n_captions)


@dataclass(frozen=True)
class Checked:
    """A bundle's results after every check, indices still the bundle's own."""

    results: ResultsHead  # its `items` and `captions` are below, one JSON row each
    items: list[bytes]  # [item, correct, rank, score, details]
    captions: list[bytes]  # [item, text, scores, flags]
    embeddings: list[Embedding]
    artifacts: dict[str, tuple[str, bytes]]


def _row(values: list[Any]) -> bytes:
    return json.dumps(values, allow_nan=False, separators=(",", ":")).encode()


def check_bundle(
    n_items: int,
    n_captions: int,
    results: ResultsHead,
    items: Iterable[Any],
    captions: Iterable[Any],
    read: Callable[[str], bytes],
    read_npy: Callable[[str, str, int], np.ndarray],
) -> Checked:
    """Check `results` (and its per-item `items` and `captions`, validated one at a time)
    against a dataset of `n_items` items and `n_captions` captions, and read and check the
    members it names."""

    def index(value: int, limit: int, where: str) -> None:
        if value >= limit:
            raise BundleError(f"bundle {RESULTS}: {where} {value} is out of range (0..{limit - 1})")

    def once(seen: np.ndarray, value: int, what: str, n: int) -> None:
        if seen[value]:
            raise BundleError(f"bundle {RESULTS}: {what} {value!r} appears twice (again at {n})")
        seen[value] = True

    item_rows, seen = [], np.zeros(n_items, bool)
    for n, raw in enumerate(items):
        r = parse(ItemResultDoc, raw, RESULTS, ("items", n))
        index(r.item, n_items, f"items[{n}].item")
        once(seen, r.item, "items: a result for item", n)
        for key in ("top", "reranked"):
            for pair in (r.details or {}).get(key) or ():
                index(pair[0], n_captions, f"items[{n}].details.{key}: caption")
        item_rows.append(_row([r.item, r.correct, r.rank, r.score, r.details]))
    caption_rows, seen = [], np.zeros(n_items, bool)
    for n, raw in enumerate(captions):
        c = parse(GeneratedCaptionDoc, raw, RESULTS, ("captions", n))
        index(c.item, n_items, f"captions[{n}].item")
        once(seen, c.item, "captions: a generated caption for item", n)
        caption_rows.append(_row([c.item, c.text, c.scores, c.flags]))

    embeddings = []
    dims: dict[str, int] = {}
    for ref in results.embeddings:
        vectors = read_npy(ref.member, "float32", 2)
        rows = read_npy(embedding_member(ref.kind, rows=True), "int64", 1)
        check_embedding(ref.kind, vectors, rows, n_items if ref.kind == "image" else n_captions)
        dims[ref.kind] = vectors.shape[1]
        embeddings.append(Embedding(ref.kind, rows, vectors))
    if len(set(dims.values())) > 1:
        raise BundleError(
            f"bundle {RESULTS}: image vectors have {dims['image']} dimensions and text vectors "
            f"{dims['text']}; one model embeds both in one space"
        )

    artifacts = {}
    for a in results.artifacts:
        data = read(a.member)
        check_artifact(a.name, a.content_type, data, a.member)
        artifacts[a.name] = (a.content_type, data)
    return Checked(results, item_rows, caption_rows, embeddings, artifacts)


def export_members(
    run: dict[str, Any],
    dataset: dict[str, Any],
    results: dict[str, Any],
    members: dict[str, bytes],
    run_id: int,
) -> None:
    """Export's side: add the three JSON members to `members` through their models, after
    the same consistency checks as import (embeddings and artifacts already in `members`)."""
    try:
        run_doc = parse(RunDoc, run, RUN)
        dataset_doc = parse(DatasetDoc, dataset, DATASET)
        results_doc = parse(ResultsDoc, results, RESULTS)
        check_bundle(
            len(dataset_doc.items),
            dataset_doc.n_captions,
            results_doc,
            results_doc.items,
            results_doc.captions,
            members.__getitem__,
            lambda name, _dtype, _ndim: np.load(io.BytesIO(members[name]), allow_pickle=False),
        )
    except BundleError as exc:
        raise BundleError(
            f"run {run_id} cannot be exported as a bundle: an import would refuse it ({exc})"
        ) from None
    checked: tuple[tuple[str, Doc], ...] = (
        (RUN, run_doc),
        (DATASET, dataset_doc),
        (RESULTS, results_doc),
    )
    for member, doc in checked:
        members[member] = json_bytes(doc.model_dump(mode="json"))
