"""The members of a result bundle as declared types: export (mirada.bundles.build) writes
through them and import (mirada.bundles.load) reads through them, so whatever one writes the
other accepts, and whatever import accepts every reader (`mirada show`, exports, the pages)
can show.

Why pydantic v2: the members are nested JSON with dozens of fields, and declared models give
typed, located errors ("results.json: metrics[3].value: ...") for free; dataclasses would need
a hand-written reader per field, which is what this module replaced. Models are strict (no
"3" for 3, no true for 1), forbid unknown keys, and refuse non-finite numbers (`1e999` parses
to infinity).

A bundle is untrusted input (anyone can edit one and redo its checksums), so beyond types:
- values: numbers finite; proportions and their CIs in 0..1 with low <= value <= high (kinds
  from mirada.metrics.names); counters non-negative and within their columns; times between
  2000-01-01 and tomorrow; run options through the same parser and checks `mirada queue`
  uses (mirada.tasks.parse_options, run_options.check_dtype); text by the dataset importer's
  rule (mirada.datasets.entries.text_problem: no NUL, no lone surrogates) and column lengths;
- consistency (`check_bundle`, across members): item and caption indices in range, one result
  and one generated caption per item, one metric per name and category, embeddings that cover
  every item (image) or caption (text) once with one dimension, finite and nonzero, and
  artifacts that parse as their name says (a confusion matrix square in its labels, benchmark
  records through mirada.benchmark_records, projections as float32 [N, 2]).
The checks across members and the export side are in mirada.bundles.schema_checks; manifest.json
(layout, sizes, checksums, schema version) is checked by mirada.bundles.archive.
Every refusal is a BundleError of one line naming the member and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from mirada.bundles.archive import BundleError
from mirada.datasets.entries import MAX_CATEGORY_CHARS, text_problem
from mirada.db.models import Base, Dataset, HardwareProfile, Metric, Run, RunArtifact, Timing
from mirada.domain import Device, Dtype, Task, choices
from mirada.errors import MiradaError
from mirada.metrics.names import SCORE_CEILINGS, MetricKind, kind_of
from mirada.queue import MAX_ATTEMPTS, MAX_BATCH_SIZE
from mirada.run_options import BenchmarkRunOptions, check_dtype
from mirada.tasks import parse_options

EMBEDDING_KINDS = ("image", "text")
INT32 = 2**31 - 1  # an Integer column on PostgreSQL
INT64 = 2**63 - 1  # a BigInteger column
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_JSON_DEPTH = 32
# Tolerance of low <= value <= high: a bootstrap bound can differ from the point estimate in
# its last bits when every resample gives the same value.
CI_SLACK = 1e-9


def _length(model: type[Base], name: str) -> int | None:
    length = getattr(model.__table__.c[name].type, "length", None)
    return int(length) if length is not None else None


def dataset_fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over (filename, image SHA-256) in dataset order: the same images under the
    same names, whatever the database ids."""
    h = hashlib.sha256()
    for filename, sha in pairs:
        h.update(_fingerprint_line(filename, sha))
    return h.hexdigest()


def _fingerprint_line(filename: str, sha: str) -> bytes:
    return json.dumps([filename, sha], ensure_ascii=False).encode() + b"\n"


# ---- value types --------------------------------------------------------------------------


def _text(value: str) -> str:
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("is not a SHA-256 (64 lowercase hex digits)")
    return value


def _ext(value: str) -> str:
    if not (value.isascii() and value.isalnum() and 1 <= len(value) <= 8):
        raise ValueError(f"{value!r} is not a file extension")
    return value.lower()


def _choice(enum: Any) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        try:
            return enum(value)
        except ValueError:
            raise ValueError(
                f"unknown value {value!r} (a newer Mirada's?); one of: {', '.join(choices(enum))}"
            ) from None

    return parse


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError("must be a time with its UTC offset")
    latest = datetime.now(UTC) + timedelta(days=1)
    if not EARLIEST <= parsed <= latest:
        raise ValueError(f"{value} is outside {EARLIEST.date()} .. {latest.date()}")
    return parsed


def json_value(value: Any, depth: int = 0) -> None:
    """Plain JSON both backends store: finite numbers, text by the text rule, bounded depth."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > INT64:
            raise ValueError(f"holds the integer {value}, beyond 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"holds the non-finite number {value!r}")
    elif isinstance(value, str):
        _text(value)
    elif isinstance(value, list):
        for v in value:
            json_value(v, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            _text(k)
            json_value(v, depth + 1)
    else:
        raise ValueError(f"holds a {type(value).__name__}, not JSON")


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    json_value(value)
    return value


Text = Annotated[str, AfterValidator(_text)]
Name = Annotated[Text, AfterValidator(_not_blank)]
Sha256 = Annotated[str, AfterValidator(_sha256)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=INT32)]  # an Integer column
Positive = Annotated[int, Field(ge=1, le=INT32)]
Bytes = Annotated[int, Field(ge=0, le=INT64)]  # a BigInteger column
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
Time = Annotated[datetime, BeforeValidator(_time), PlainSerializer(datetime.isoformat)]
TaskName = Annotated[Task, BeforeValidator(_choice(Task)), PlainSerializer(str)]
DeviceName = Annotated[Device, BeforeValidator(_choice(Device)), PlainSerializer(str)]
DtypeName = Annotated[Dtype, BeforeValidator(_choice(Dtype)), PlainSerializer(str)]


# Text bounded by the column it is stored in.
ModelId = Annotated[Name, Field(max_length=_length(Run, "model_id"))]
Label = Annotated[Name, Field(max_length=_length(Run, "requires"))]
DatasetName = Annotated[Name, Field(max_length=_length(Dataset, "name"))]
Category = Annotated[Name, Field(max_length=MAX_CATEGORY_CHARS)]
MetricKey = Annotated[Name, Field(max_length=_length(Metric, "name"))]
TimingKey = Annotated[Name, Field(max_length=_length(Timing, "name"))]
Unit = Annotated[Text, Field(max_length=_length(Timing, "unit"))]
ArtifactName = Annotated[Name, Field(max_length=_length(RunArtifact, "name"))]
ContentType = Annotated[Name, Field(max_length=_length(RunArtifact, "content_type"))]
Fingerprint = Annotated[Name, Field(max_length=_length(HardwareProfile, "fingerprint"))]
Version32 = Annotated[Text, Field(max_length=_length(HardwareProfile, "python_version"))]
Version64 = Annotated[Text, Field(max_length=_length(HardwareProfile, "torch_version"))]
Index = Annotated[int, Strict(), Field(ge=0, le=INT64)]
# JSON has no tuples: a pair is a list of two, read laxly as a sequence of strict values.
CaptionRef = Annotated[tuple[Index, Annotated[Finite, Strict()]], Strict(False)]
ClassScore = Annotated[tuple[Annotated[Text, Strict()], Annotated[Finite, Strict()]], Strict(False)]


STRICT = ConfigDict(strict=True, allow_inf_nan=False)


class Doc(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)


M = TypeVar("M", bound=Doc)


# ---- run.json --------------------------------------------------------------------------------


class Origin(Doc):
    host: Name
    run_id: Positive


class Hardware(Doc):
    """mirada.db.models.HardwareProfile, less its id and creation time (a test keeps the two
    in step)."""

    fingerprint: Fingerprint
    hostname: Text
    os: Text
    cpu_model: Text
    cpu_cores: Count
    ram_bytes: Bytes
    gpu_name: Text | None = None
    gpu_memory_bytes: Bytes | None = None
    python_version: Version32
    torch_version: Version64 | None = None
    cuda_version: Version32 | None = None
    transformers_version: Version64 | None = None
    open_clip_version: Version64 | None = None
    details: JsonObject = Field(default_factory=dict)


class RunDoc(Doc):
    dataset_fingerprint: Sha256
    origin: Origin
    model_id: ModelId
    task: TaskName
    device: DeviceName
    resolved_device: DeviceName | None = None
    dtype: DtypeName
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
    requires: Label | None = None
    options: JsonObject = Field(default_factory=dict)
    attempts: Count
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)]
    progress_done: Count
    progress_total: Count
    model_fingerprint: JsonObject | None = None
    created: Time
    started_at: Time | None = None
    finished_at: Time | None = None
    hardware: Hardware | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RunDoc:
        if self.requires is not None and self.requires != self.requires.strip():
            raise ValueError("requires: a worker label has no surrounding spaces")
        if self.progress_done > self.progress_total:
            raise ValueError(
                f"progress_done {self.progress_done} exceeds progress_total {self.progress_total}"
            )
        if self.started_at and self.finished_at and self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        try:  # the checks `mirada queue` applies to the same options
            typed = parse_options(self.task, self.options)
            check_dtype(typed, self.dtype)
        except MiradaError as exc:
            raise ValueError(f"options: {exc}") from None
        if isinstance(typed, BenchmarkRunOptions):
            for size in typed.batch_sizes or ():
                if not 1 <= size <= MAX_BATCH_SIZE:
                    raise ValueError(f"options: batch size {size} is outside 1..{MAX_BATCH_SIZE}")
        return self


# ---- dataset.json ----------------------------------------------------------------------------


class ImageDoc(Doc):
    sha256: Sha256
    ext: Annotated[str, AfterValidator(_ext)]
    width: Positive
    height: Positive
    original_format: Annotated[Text, Field(max_length=16)] | None = None
    size_bytes: Bytes


class ItemDoc(Doc):
    filename: Name
    category: Category | None = None
    captions: list[Name]
    image: ImageDoc


class DatasetHead(Doc):
    """dataset.json as import reads it: its items arrive one at a time (DatasetItems)."""

    name: DatasetName
    source_format: Text | None = None
    fingerprint: Sha256
    items: list[ItemDoc]


class DatasetItems:
    """The checks across dataset.json's items, one item at a time, keeping only what they
    need (each filename once, each image's description once, the running fingerprint):
    DatasetDoc runs them over its list, import over the member's stream."""

    def __init__(self) -> None:
        self.filenames: dict[str, int] = {}
        self.images: dict[str, tuple[Any, ...]] = {}  # sha256 -> ImageDoc's values in order
        self._fingerprint = hashlib.sha256()

    def add(self, n: int, it: ItemDoc) -> None:
        if (first := self.filenames.setdefault(it.filename, n)) != n:
            raise ValueError(
                f"items {first} and {n} have the same filename {it.filename!r}; "
                "a dataset names each image once"
            )
        image = tuple(getattr(it.image, f) for f in ImageDoc.model_fields)
        if self.images.setdefault(it.image.sha256, image) != image:
            raise ValueError(
                f"items[{n}].image: image {it.image.sha256[:12]} is described twice, differently"
            )
        self._fingerprint.update(_fingerprint_line(it.filename, it.image.sha256))

    def check_fingerprint(self, fingerprint: str) -> None:
        if self._fingerprint.hexdigest() != fingerprint:
            raise ValueError("fingerprint does not match the items")


class DatasetDoc(DatasetHead):
    @model_validator(mode="after")
    def _consistent(self) -> DatasetDoc:
        checks = DatasetItems()
        for n, it in enumerate(self.items):
            checks.add(n, it)
        checks.check_fingerprint(self.fingerprint)
        return self

    @property
    def n_captions(self) -> int:
        return sum(len(it.captions) for it in self.items)


def _kept(shape: Any) -> Callable[[Any], Any]:
    """A JSON column's validator: `shape` checks it, the JSON itself is stored as given (a
    score written 1 stays 1, so a re-export is byte-identical)."""
    model = isinstance(shape, type) and issubclass(shape, BaseModel)  # carries its config
    adapter = TypeAdapter(shape, config=None if model else STRICT)

    def check(value: Any) -> Any:
        if value is None:
            return None
        adapter.validate_python(_json_object(value))
        return value

    return check


# ---- results.json ----------------------------------------------------------------------------


class MetricDetails(Doc):
    """The keys of Metric.details that readers rely on (mirada.metrics.types.MetricValue);
    other keys pass as plain JSON."""

    model_config = ConfigDict(extra="allow")
    n: Count | None = None
    interval_method: Text | None = None
    chance: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    chance_basis: Text | None = None
    trivial: Text | None = None
    unavailable: Text | None = None


class MetricDoc(Doc):
    name: MetricKey
    value: Finite | None = None
    category: Category | None = None
    ci_low: Finite | None = None
    ci_high: Finite | None = None
    details: Annotated[dict[str, Any] | None, BeforeValidator(_kept(MetricDetails))] = None

    @model_validator(mode="after")
    def _in_range(self) -> MetricDoc:
        low, value, high = self.ci_low, self.value, self.ci_high
        if (low is None) != (high is None):
            raise ValueError("a CI needs both ci_low and ci_high")
        if low is not None and high is not None:
            if value is None:
                raise ValueError("a CI without a value")
            slack = CI_SLACK * max(1.0, abs(value))
            if not low - slack <= value <= high + slack:
                raise ValueError(f"the CI [{low}, {high}] does not hold the value {value}")
        kind = kind_of(self.name)
        floor, ceiling = {
            MetricKind.proportion: (0.0, 1.0),
            MetricKind.rank: (1.0, math.inf),
        }.get(kind, (0.0, SCORE_CEILINGS.get(self.name, math.inf)))
        for field, x in (("value", value), ("ci_low", low), ("ci_high", high)):
            if x is not None and not floor <= x <= ceiling:
                upper = "" if math.isinf(ceiling) else f" .. {ceiling:g}"
                raise ValueError(f"{field} {x} of {self.name} ({kind}) is outside {floor:g}{upper}")
        return self


class TimingDoc(Doc):
    name: TimingKey
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]  # times, rates, counts
    unit: Unit
    batch_size: Positive | None = None


class ItemDetails(Doc):
    """The keys of a match run's ItemResult.details that readers rely on (mirada.results);
    other keys pass as plain JSON. Caption references are caption indices (build.py)."""

    model_config = ConfigDict(extra="allow")
    # absent or a list (readers iterate `details.get(key, [])`), never null
    top: list[CaptionRef] = Field(default_factory=list)
    reranked: list[CaptionRef] = Field(default_factory=list)
    category_correct: bool | None = None
    zeroshot_pred: Text | None = None
    category_top1: Text | None = None
    zeroshot_scores: list[ClassScore] | None = None
    # SigLIP-family runs: the model's sigmoid probability for its zero-shot class
    zeroshot_prob: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    # out-of-fold predictions of the linear probe and kNN (mirada.metrics.probe; k in KNN_KS)
    probe_pred: Category | None = None
    probe_correct: bool | None = None
    knn1_pred: Category | None = None
    knn1_correct: bool | None = None
    knn5_pred: Category | None = None
    knn5_correct: bool | None = None


class ItemResultDoc(Doc):
    item: Index
    correct: bool | None = None
    rank: Positive | None = None
    score: Finite | None = None
    details: Annotated[dict[str, Any] | None, BeforeValidator(_kept(ItemDetails))] = None


class CaptionFlags(Doc):
    model_config = ConfigDict(extra="allow")
    repeated_ngram_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    verbatim_repeat: bool | None = None
    degenerate: bool | None = None
    reasons: list[Text] | None = None


class GeneratedCaptionDoc(Doc):
    item: Index
    text: Text
    scores: Annotated[dict[str, Any] | None, BeforeValidator(_kept(dict[str, Finite | None]))] = (
        None
    )
    flags: Annotated[dict[str, Any] | None, BeforeValidator(_kept(CaptionFlags))] = None


class EmbeddingRef(Doc):
    kind: Literal["image", "text"]
    member: str

    @model_validator(mode="after")
    def _member(self) -> EmbeddingRef:
        if self.member != embedding_member(self.kind):
            raise ValueError(f"member must be {embedding_member(self.kind)!r}")
        return self


class ArtifactRef(Doc):
    name: ArtifactName
    content_type: ContentType
    member: Annotated[str, Field(pattern=r"^artifacts/[0-9]{1,6}\.bin$")]


def unique(values: list[Any], what: str) -> None:
    seen: set[Any] = set()
    for n, v in enumerate(values):
        if v in seen:
            raise ValueError(f"{what} {v!r} appears twice (again at {n})")
        seen.add(v)


class ResultsHead(Doc):
    """results.json as import reads it: its per-item `items` and `captions` arrive one at a
    time (mirada.bundles.schema_checks checks them as they come)."""

    metrics: list[MetricDoc]
    timings: list[TimingDoc]
    items: list[ItemResultDoc]
    captions: list[GeneratedCaptionDoc]
    embeddings: list[EmbeddingRef]
    artifacts: list[ArtifactRef]

    @model_validator(mode="after")
    def _unique_rows(self) -> ResultsHead:
        unique([(m.name, m.category) for m in self.metrics], "metrics: (name, category)")
        unique([(t.name, t.batch_size) for t in self.timings], "timings: (name, batch_size)")
        unique([r.item for r in self.items], "items: a result for item")
        unique([c.item for c in self.captions], "captions: a generated caption for item")
        unique([e.kind for e in self.embeddings], "embeddings: kind")
        unique([a.name for a in self.artifacts], "artifacts: name")
        unique([a.member for a in self.artifacts], "artifacts: member")
        return self


class ResultsDoc(ResultsHead):
    """results.json whole, as export writes it."""


def embedding_member(kind: str, rows: bool = False) -> str:
    return f"embeddings/{kind}{'.rows' if rows else ''}.npy"


# ---- reading and writing ---------------------------------------------------------------------


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problem(exc: ValidationError, at: tuple[int | str, ...] = ()) -> str:
    """The first error of `exc` as one line: where (below `at`), what, and the value given."""
    err = exc.errors(include_url=False)[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = _where(at + tuple(p for p in err["loc"] if not str(p).startswith("function-")))
    given = ""
    if err["type"] not in ("value_error", "missing") and not isinstance(err["input"], dict):
        given = f" (got {_shown(err['input'])})"
    return f"{where}: {msg}{given}" if where else f"{msg}{given}"


def parse(model: type[M], doc: Any, member: str, at: tuple[int | str, ...] = ()) -> M:
    """`doc` (a member's parsed JSON, or its part at `at`) as `model`, or a BundleError naming
    member and field."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise BundleError(f"bundle {member}: {problem(exc, at)}") from None
