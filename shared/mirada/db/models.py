"""The storage schema. Typed SQLAlchemy 2.0 models; Alembic migrations mirror this file.

Writers: status changes of runs and workers happen only in `mirada.queue`; result rows are
written only by `mirada.results` (inside the transaction that finishes a run), except cached
2-D projections (`mirada.projections.store_projection`); dataset rows only by
`mirada.datasets.store`; embedding-cache rows only by `mirada.embedding_cache`. Runs
imported from a result bundle are inserted finished, with their results, by `mirada.bundles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from mirada.domain import Device, Dtype, RunStatus, Task, WorkerStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite drops tzinfo on the way back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class db_now(FunctionElement[datetime]):  # lower case: reads as the SQL function it is
    """The DATABASE's current UTC time (plus `offset_seconds`), as a SQL expression.

    Liveness (heartbeats, "stopped heartbeating", run start and finish) is decided on this one
    clock, never a process's own: a worker whose clock is minutes off must not look dead.
    PostgreSQL: now() (the server's clock; a timestamptz, like the columns). SQLite has no
    server: 'now' is the clock of the machine holding the file, which every process sharing
    the file runs on. It is rendered in exactly the text form SQLAlchemy stores DateTime
    values in on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff', UTC), so SQL-side comparisons with
    stored values order correctly as text and the value reads back like any other. Staleness
    cutoffs are computed in SQL too (`Worker.heartbeat_at < db_now(-60)`): both sides of every
    comparison come from the database.
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "db_now"

    def __init__(self, offset_seconds: float = 0.0) -> None:
        super().__init__(literal(float(offset_seconds), Float()))


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    # %f is seconds with milliseconds ("SS.SSS"); pad to the stored microseconds.
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', {offset} || ' seconds') || '000')"


@compiles(db_now, "postgresql")
def _db_now_postgresql(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(now() + {offset} * interval '1 second')"


def enum_column_type(enum: type[StrEnum], length: int) -> Enum:
    """A StrEnum stored as its plain value in VARCHAR(`length`), as the migrations create it.

    No database enum type and no CHECK constraint (so no migration); SQLAlchemy refuses values
    outside the enum on the way in and returns enum members on the way out.
    """
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


def status_column_type(enum: type[StrEnum]) -> Enum:
    """A status enum in VARCHAR(16)."""
    return enum_column_type(enum, 16)


class DeviceList(TypeDecorator[list[Device]]):
    """A list of devices stored as a JSON list of their values (as the migrations create it),
    read back as `Device` members."""

    impl = JSON()
    cache_ok = True

    def process_bind_param(self, value: Sequence[str] | None, dialect: Any) -> list[str] | None:
        return None if value is None else [Device(v).value for v in value]

    def process_result_value(self, value: list[str] | None, dialect: Any) -> list[Device] | None:
        return None if value is None else [Device(v) for v in value]


# Integer ids are never reused, so a link or export naming run 12 never shows another run.
# PostgreSQL sequences never hand a number out twice; SQLite reuses max(id)+1 after a delete
# of the newest row unless the table is AUTOINCREMENT (migration 0003 rebuilt older tables).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        bytes: LargeBinary(),
        str: String(255),
    }


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_format: Mapped[str] = mapped_column(String(32))
    source_path: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[Item]] = relationship(
        back_populates="dataset", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class Image(Base):
    """An image file stored once under $MIRADA_HOME/images/<sha256>.<ext>."""

    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    ext: Mapped[str] = mapped_column(String(8))
    width: Mapped[int]
    height: Mapped[int]
    original_format: Mapped[str | None] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class ImageBlob(Base):
    """The stored bytes of an image (kind "image") or its thumbnail (kind "thumb").

    Kept when the database is shared (PostgreSQL), so a worker or dashboard on another machine
    fetches the images it lacks instead of needing the importing machine's disk.
    """

    __tablename__ = "image_blobs"

    sha256: Mapped[str] = mapped_column(
        ForeignKey("images.sha256", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    data: Mapped[bytes]


class Item(Base):
    """One image as it appears in one dataset."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("dataset_id", "filename"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    filename: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[int]

    dataset: Mapped[Dataset] = relationship(back_populates="items", lazy="raise")
    captions: Mapped[list[Caption]] = relationship(
        back_populates="item", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class Caption(Base):
    __tablename__ = "captions"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    position: Mapped[int]

    item: Mapped[Item] = relationship(back_populates="captions", lazy="raise")


class HardwareProfile(Base):
    """What a run ran on; deduplicated by a hash of its fields."""

    __tablename__ = "hardware_profiles"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str]
    os: Mapped[str]
    cpu_model: Mapped[str]
    cpu_cores: Mapped[int]
    ram_bytes: Mapped[int] = mapped_column(BigInteger)
    gpu_name: Mapped[str | None]
    gpu_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    python_version: Mapped[str] = mapped_column(String(32))
    torch_version: Mapped[str | None] = mapped_column(String(64))
    cuda_version: Mapped[str | None] = mapped_column(String(32))
    transformers_version: Mapped[str | None] = mapped_column(String(64))
    open_clip_version: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    hostname: Mapped[str]
    pid: Mapped[int]
    labels: Mapped[list[Any]] = mapped_column(default=list)
    devices: Mapped[list[Device]] = mapped_column(DeviceList(), default=list)
    hardware_profile_id: Mapped[int | None] = mapped_column(ForeignKey("hardware_profiles.id"))
    status: Mapped[WorkerStatus] = mapped_column(
        status_column_type(WorkerStatus), default=WorkerStatus.active
    )
    # On the database's clock (see db_now), as mirada.queue writes every later heartbeat.
    started_at: Mapped[datetime] = mapped_column(default=db_now())
    heartbeat_at: Mapped[datetime] = mapped_column(default=db_now())
    stopped_at: Mapped[datetime | None]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status_id", "status", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[str] = mapped_column(String(500))
    # enums stored as their plain values, in the VARCHAR lengths the migrations gave them
    task: Mapped[Task] = mapped_column(enum_column_type(Task, 16))
    device: Mapped[Device] = mapped_column(enum_column_type(Device, 8), default=Device.auto)
    resolved_device: Mapped[Device | None] = mapped_column(enum_column_type(Device, 16))
    dtype: Mapped[Dtype] = mapped_column(enum_column_type(Dtype, 8), default=Dtype.fp32)
    batch_size: Mapped[int] = mapped_column(default=32)
    requires: Mapped[str | None] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RunStatus] = mapped_column(
        status_column_type(RunStatus), default=RunStatus.queued
    )
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"), index=True)
    hardware_profile_id: Mapped[int | None] = mapped_column(ForeignKey("hardware_profiles.id"))
    model_fingerprint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Set only on runs imported from a result bundle (mirada.bundles): where the run was
    # executed and its id there. Such a run arrives succeeded and is never executed here.
    origin_host: Mapped[str | None]
    origin_run_id: Mapped[int | None]
    # The bundle's content id: importing the same run again finds it (unique; NULLs allowed).
    origin_bundle_sha256: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    imported_at: Mapped[datetime | None]


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    category: Mapped[str | None] = mapped_column(String(200))
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Timing(Base):
    __tablename__ = "timings"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    batch_size: Mapped[int | None]


class RunEmbedding(Base):
    """All embeddings of one kind for a run, as one contiguous float32 blob (row-major)."""

    __tablename__ = "run_embeddings"
    __table_args__ = (UniqueConstraint("run_id", "kind"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "image" | "text"
    count: Mapped[int]
    dim: Mapped[int]
    data: Mapped[bytes]
    row_ids: Mapped[bytes]  # int64 item ids (image) or caption ids (text), same order as data


class EmbeddingCache(Base):
    """One cached vector per (model fingerprint+preprocessing+dtype key, content hash)."""

    __tablename__ = "embedding_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    content_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes]
    created: Mapped[datetime] = mapped_column(default=utcnow)


class ItemResult(Base):
    """Per-image outcome of a run, for drill-down, worst-first sorting and paired tests."""

    __tablename__ = "item_results"
    __table_args__ = (UniqueConstraint("run_id", "item_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    correct: Mapped[bool | None]
    rank: Mapped[int | None]
    score: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class GeneratedCaption(Base):
    __tablename__ = "generated_captions"
    __table_args__ = (UniqueConstraint("run_id", "item_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RunArtifact(Base):
    """Named binary/JSON products of a run: similarity matrix, projections, reports."""

    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes]
    created: Mapped[datetime] = mapped_column(default=utcnow)
