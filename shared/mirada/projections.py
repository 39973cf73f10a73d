"""2-D projections of a run's stored embeddings for the dashboard, computed once and stored.

`get_projection(run_id, method, kind)` reads the RunArtifact "projection:<method>:<kind>"
(npy float32 [n, 2]) or computes it with `mirada.metrics.projection.project` and stores it
through `store_projection`, the only writer here. kind is "image", "text" or "joint" (image
rows, then text rows). t-SNE on more than MAX_TSNE_POINTS rows uses a deterministic subsample
(`subsample_index(total, MAX_TSNE_POINTS)`, seed 0, sorted); the artifact's content type records
the total and the number of rows it holds, so a stale or differently sampled artifact is
recomputed rather than misread.

PCA facts carry the share of the total variance each of the two components explains
(`explained_variance`): the variance of a PCA coordinate over the summed variance of the
embedding's dimensions, both over the projected rows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import delete, select

from mirada.db import DatabaseReadOnly, read_session, write_session
from mirada.db.models import RunArtifact, RunEmbedding
from mirada.errors import MiradaError
from mirada.queries.common import NO_CATEGORY, caption_frame, item_frame, run_info
from mirada.queries.similarity import load_embeddings

Kind = Literal["image", "text", "joint"]
KINDS: tuple[str, ...] = ("image", "text", "joint")
METHODS: tuple[str, ...] = ("pca", "tsne")
MAX_TSNE_POINTS = 2000
SUBSAMPLE_SEED = 0


@dataclass(frozen=True)
class Projection:
    xy: np.ndarray  # float32 [n, 2]
    index: np.ndarray  # int64 [n]: positions into `row_kinds` / `row_ids` (all rows)
    row_kinds: np.ndarray  # str [total]: "image" or "text" for every row
    row_ids: np.ndarray  # int64 [total]: item ids (image rows) or caption ids (text rows)
    total: int
    cached: bool  # read from a stored artifact
    # PCA: the share of the variance of the projected rows each component explains
    explained: tuple[float, float] | None = None

    @property
    def subsampled(self) -> bool:
        return len(self.index) < self.total


@dataclass(frozen=True)
class ProjectionFacts:
    total: int  # rows of the embedding set(s)
    shown: int  # rows projected (fewer when t-SNE subsampled)
    subsampled: bool
    cached: bool  # read from a stored artifact
    explained: tuple[float, float] | None = None  # PCA: variance share of PC1, PC2


def artifact_name(method: str, kind: str) -> str:
    return f"projection:{method}:{kind}"


def _content_type(total: int, n: int) -> str:
    return f"application/x-npy; total={total}; n={n}; seed={SUBSAMPLE_SEED}"


def subsample_index(total: int, limit: int, seed: int = SUBSAMPLE_SEED) -> np.ndarray:
    """Sorted positions of a deterministic subsample of `limit` of `total` rows (all if fewer)."""
    if total <= limit:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=limit, replace=False)).astype(np.int64)


def _rows(run_id: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors [total, D], row kinds [total], row ids [total]) for a projection kind."""
    if kind not in KINDS:
        raise MiradaError(f"unknown embedding kind {kind!r}; use one of {', '.join(KINDS)}")
    parts = ["image", "text"] if kind == "joint" else [kind]
    vecs, kinds, ids = [], [], []
    for part in parts:
        loaded = load_embeddings(run_id, part)
        if loaded is None:
            raise MiradaError(f"run {run_id} has no stored {part} embeddings")
        row_ids, v = loaded
        vecs.append(v)
        ids.append(row_ids)
        kinds.append(np.full(len(row_ids), part))
    return np.concatenate(vecs), np.concatenate(kinds), np.concatenate(ids)


def store_projection(run_id: int, name: str, content_type: str, xy: np.ndarray) -> None:
    """Store (or replace) one projection artifact as npy float32 [n, 2]."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(xy, dtype=np.float32), allow_pickle=False)
    with write_session() as s:
        s.execute(delete(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.name == name))
        s.add(RunArtifact(run_id=run_id, name=name, content_type=content_type, data=buf.getvalue()))


def _read(run_id: int, name: str) -> tuple[str, np.ndarray] | None:
    with read_session() as s:
        row = s.execute(
            select(RunArtifact.content_type, RunArtifact.data).where(
                RunArtifact.run_id == run_id, RunArtifact.name == name
            )
        ).first()
    if row is None:
        return None
    return row[0], np.load(io.BytesIO(row[1]), allow_pickle=False)


def total_variance(vectors: np.ndarray, chunk: int = 8192) -> float:
    """The summed variance of the columns of [n, D] `vectors` (population variance), in float64
    a chunk of rows at a time so a large float16/32 set is never copied whole."""
    n = vectors.shape[0]
    if n < 2:
        return 0.0
    mean = np.zeros(vectors.shape[1], dtype=np.float64)
    for start in range(0, n, chunk):
        mean += vectors[start : start + chunk].sum(axis=0, dtype=np.float64)
    mean /= n
    squares = 0.0
    for start in range(0, n, chunk):
        part = vectors[start : start + chunk].astype(np.float64) - mean
        squares += float(np.einsum("ij,ij->", part, part))
    return squares / n


def explained_variance(xy: np.ndarray, vectors: np.ndarray) -> tuple[float, float] | None:
    """(PC1, PC2) shares of the variance of `vectors` that PCA coordinates `xy` explain: each
    coordinate is the centred data on a unit eigenvector, so its variance is that component's
    eigenvalue over n. None when the vectors do not vary."""
    total = total_variance(vectors)
    if total <= 0:
        return None
    var = np.asarray(xy, dtype=np.float64).var(axis=0)
    return float(var[0] / total), float(var[1] / total)


def get_projection(
    run_id: int, method: str = "pca", kind: str = "image", *, max_points: int | None = None
) -> Projection:
    """The stored projection of a run's embeddings, computing and storing it when missing."""
    if method not in METHODS:
        raise MiradaError(f"unknown projection method {method!r}; use 'tsne' or 'pca'")
    vectors, row_kinds, row_ids = _rows(run_id, kind)
    total = len(row_ids)
    limit = (
        max_points if max_points is not None else (MAX_TSNE_POINTS if method == "tsne" else total)
    )
    index = subsample_index(total, limit)
    name = artifact_name(method, kind)
    expected = _content_type(total, len(index))
    rows = vectors if len(index) == total else vectors[index]  # no copy of a whole set
    stored = _read(run_id, name)
    cached = stored is not None and stored[0] == expected and stored[1].shape == (len(index), 2)
    if stored is not None and cached:
        xy = stored[1].astype(np.float32)
    else:
        from mirada.metrics.projection import project

        xy = project(rows, method, seed=SUBSAMPLE_SEED)  # type: ignore[arg-type]
        try:
            store_projection(run_id, name, expected, xy)
        except DatabaseReadOnly:
            pass  # only a cache: a read-only database computes it again next time
    explained = explained_variance(xy, rows) if method == "pca" else None
    return Projection(xy, index, row_kinds, row_ids, total, cached, explained)


def projection_frame(
    run_id: int, method: str = "pca", kind: str = "image", *, max_points: int | None = None
) -> tuple[pd.DataFrame, ProjectionFacts]:
    """Scatter-ready rows (x, y, kind, category, filename, text, item_id) plus facts about
    sampling. Image rows show their first caption; caption rows carry their image's item_id."""
    info = run_info(run_id)
    if info is None:
        raise MiradaError(f"run {run_id} does not exist; see `mirada runs`")
    proj = get_projection(run_id, method, kind, max_points=max_points)
    items = item_frame(info.dataset_id).set_index("item_id")
    caps = caption_frame(info.dataset_id)
    first_caption = caps.drop_duplicates("item_id").set_index("item_id")["text"]
    cap_meta = caps.set_index("caption_id")
    kinds = proj.row_kinds[proj.index]
    ids = proj.row_ids[proj.index]
    is_img = kinds == "image"
    item_of = np.where(
        is_img, ids, cap_meta["item_id"].reindex(ids).fillna(-1).to_numpy(dtype=np.int64)
    )
    category = items["category"].reindex(item_of).fillna(NO_CATEGORY).to_numpy()
    filename = items["filename"].reindex(item_of).fillna("").to_numpy()
    text = np.where(
        is_img,
        first_caption.reindex(item_of).fillna("").to_numpy(),
        cap_meta["text"].reindex(ids).fillna("").to_numpy(),
    )
    df = pd.DataFrame(
        {
            "x": proj.xy[:, 0].astype(np.float64),
            "y": proj.xy[:, 1].astype(np.float64),
            "kind": kinds,
            "category": category,
            "filename": filename,
            "text": text,
            "item_id": item_of,  # the image (or the caption's image); -1 when unknown
        }
    )
    facts = ProjectionFacts(
        proj.total, len(proj.index), proj.subsampled, proj.cached, proj.explained
    )
    return df, facts


AUTO_COMPUTE_MAX_ROWS = 1000


@dataclass(frozen=True)
class ProjectionStatus:
    total: int  # rows to project
    stored: bool  # a valid artifact exists
    auto: bool  # cheap enough to compute on page load


def projection_status(run_id: int, method: str, kind: str) -> ProjectionStatus:
    """Whether a projection is stored or cheap to compute, without loading embeddings."""
    parts = ["image", "text"] if kind == "joint" else [kind]
    with read_session() as s:
        counts = dict(
            s.execute(
                select(RunEmbedding.kind, RunEmbedding.count).where(
                    RunEmbedding.run_id == run_id, RunEmbedding.kind.in_(parts)
                )
            ).all()
        )
        ctype = s.scalar(
            select(RunArtifact.content_type).where(
                RunArtifact.run_id == run_id, RunArtifact.name == artifact_name(method, kind)
            )
        )
    total = int(sum(counts.get(p, 0) for p in parts))
    limit = MAX_TSNE_POINTS if method == "tsne" else total
    shown = min(total, limit)
    return ProjectionStatus(
        total=total,
        stored=ctype == _content_type(total, shown),
        auto=shown <= (AUTO_COMPUTE_MAX_ROWS if method == "pca" else 500),
    )
