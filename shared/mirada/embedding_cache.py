"""Reuse embeddings across runs: one vector per (model key, kind, content hash).

The key hashes the model fingerprint, preprocessing and dtype, so any change to those misses.
Vectors are written as soon as they are computed (not with the run's results): a crashed run
then resumes from what it already embedded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mirada.db import read_session, write_session
from mirada.db.models import EmbeddingCache

_CHUNK = 500  # stay well under SQLite's bound-parameter limit


def cache_key(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lookup(key: str, kind: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
    wanted = list(dict.fromkeys(hashes))
    found: dict[str, np.ndarray] = {}
    with read_session() as s:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = s.execute(
                select(EmbeddingCache.content_sha256, EmbeddingCache.vector).where(
                    EmbeddingCache.key == key,
                    EmbeddingCache.kind == kind,
                    EmbeddingCache.content_sha256.in_(chunk),
                )
            )
            for sha, blob in rows:
                found[sha] = np.frombuffer(blob, dtype=np.float32)
    return found


def store(key: str, kind: str, vectors: Mapping[str, np.ndarray]) -> None:
    if not vectors:
        return
    rows = [
        {
            "key": key,
            "kind": kind,
            "content_sha256": sha,
            "vector": np.ascontiguousarray(v, dtype=np.float32).tobytes(),
        }
        for sha, v in vectors.items()
    ]
    with write_session() as s:
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        for start in range(0, len(rows), _CHUNK):
            stmt = insert(EmbeddingCache).values(rows[start : start + _CHUNK])
            s.execute(stmt.on_conflict_do_nothing())
