"""``FeatureStore`` on Chroma: versioned feature rows per entity with event times,
point-in-time reads, reuse-before-compute, nearest neighbours and feature metadata.

Layout: one collection per feature view (``fv-<view>``) holding one record per (entity,
version, event time), with the feature values as JSON in its metadata and an embedding that
is passed in or computed locally (``hash_embedding``); nothing ever asks Chroma to embed
text, which would download a model. A ``fv-views`` collection holds each view version's
metadata (features, implementation_status, validation note, created). Embedded mode
(a directory) is locked to one process (``core.features.lock``); to share a store, run a
Chroma server and connect with ``url``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel

from core.errors import ExternalServiceError, InvalidInput, NotFound
from core.features import lock
from core.features.values import (
    DIMENSION,
    check_entity,
    check_features,
    check_version,
    check_view,
    hash_embedding,
    iso,
    to_timestamp,
)
from core.honesty import ImplementationStatus

BATCH = 5000  # Chroma refuses batches over 5461 records
_META = "fv-views"


class FeatureRow(BaseModel):
    entity_id: str
    view: str
    version: str
    event_time: str  # ISO 8601, UTC
    event_timestamp: float  # the same, in seconds since the epoch
    features: dict[str, Any]
    implementation_status: str
    validation_note: str
    created: str


class Neighbour(BaseModel):
    entity_id: str
    distance: float
    version: str
    event_time: str
    features: dict[str, Any]


class ViewVersion(BaseModel):
    view: str
    version: str
    features: list[str]
    implementation_status: str
    validation_note: str
    description: str
    created: str
    rows: int


class FeatureStore:
    """Feature rows on Chroma. ``FeatureStore(path)`` opens an embedded store (one process
    at a time); ``FeatureStore(url="http://127.0.0.1:8000")`` a Chroma server."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        dimension: int = DIMENSION,
        lock_timeout_s: float = 5.0,
    ) -> None:
        if path is not None and url is not None:
            raise InvalidInput("give the store a directory (path) or a Chroma server url, not both")
        if path is None and url is None:
            # ``FeatureStore()``: the home's store (its Chroma server, else home/chroma).
            from core.settings import load_settings

            settings = load_settings()
            url = settings.chroma_url
            path = None if url else settings.resolved_chroma_path
        if dimension < 2:
            raise InvalidInput("dimension must be at least 2")
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self.dimension = dimension
        settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if url is not None:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise InvalidInput(
                    f"invalid Chroma server url {url!r}", hint="e.g. http://127.0.0.1:8000"
                )
            self.location = url
            self.path = None
            try:
                self.client = chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=settings,
                )
                self.client.heartbeat()
            except Exception as exc:  # connection refused, TLS, HTTP errors
                raise ExternalServiceError(
                    f"cannot reach the Chroma server at {url}: {type(exc).__name__}: {exc}",
                    hint="Start one with `chroma run --path DIR --host 127.0.0.1 --port PORT`.",
                ) from exc
        else:
            self.path = Path(path).expanduser().resolve()
            self.location = str(self.path)
            lock.acquire(self.path, timeout_s=lock_timeout_s)
            self.client = chromadb.PersistentClient(path=str(self.path), settings=settings)

    def close(self) -> None:
        """Let another process open the embedded store (the client is cached by Chroma)."""
        if self.path is not None:
            lock.release(self.path)

    # Collections ----------------------------------------------------------------------
    def _collection(self, view: str, *, create: bool) -> Any:
        name = f"fv-{check_view(view)}"
        if create:
            return self.client.get_or_create_collection(
                name, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
        try:
            return self.client.get_collection(name, embedding_function=None)
        except Exception as exc:
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                raise NotFound(
                    f"no feature view {view!r}",
                    hint="See `agent features views` for the views in this store.",
                ) from exc
            raise

    def _meta(self) -> Any:
        return self.client.get_or_create_collection(_META, embedding_function=None)

    # Metadata -------------------------------------------------------------------------
    def register_view(
        self,
        view: str,
        version: str,
        features: list[str],
        *,
        implementation_status: str = ImplementationStatus.IMPLEMENTED,
        validation_note: str = "",
        description: str = "",
    ) -> ViewVersion:
        """Record (or update) a view version's feature list and quality metadata."""
        check_view(view)
        version = check_version(version)
        status = ImplementationStatus(implementation_status).value
        meta = self._meta()
        key = f"{view}|{version}"
        existing = meta.get(ids=[key], include=["metadatas"])
        created = (existing["metadatas"][0] or {}).get("created") if existing["ids"] else None
        record = {
            "view": view,
            "version": version,
            "features": json.dumps(sorted(features)),
            "implementation_status": status,
            "validation_note": validation_note[:4000],
            "description": description[:4000],
            "created": created or iso(time.time()),
        }
        meta.upsert(ids=[key], embeddings=[[1.0, 0.0]], metadatas=[record])
        self._collection(view, create=True)
        return self.describe(view, version)[0]

    def describe(self, view: str, version: str | None = None) -> list[ViewVersion]:
        """Each version of a view with its features, implementation_status and validation note."""
        check_view(view)
        where: dict[str, Any] = {"view": view}
        if version is not None:
            where = {"$and": [where, {"version": check_version(version)}]}
        got = self._meta().get(where=where, include=["metadatas"])
        if not got["ids"]:
            raise NotFound(
                f"no feature view {view!r}" + (f" version {version!r}" if version else ""),
                hint="See `agent features views` for the views in this store.",
            )
        col = self._collection(view, create=True)
        out = []
        for m in got["metadatas"]:
            rows = len(col.get(where={"version": m["version"]}, include=[])["ids"])
            out.append(
                ViewVersion(
                    view=m["view"],
                    version=m["version"],
                    features=json.loads(m["features"]),
                    implementation_status=m["implementation_status"],
                    validation_note=m.get("validation_note", ""),
                    description=m.get("description", ""),
                    created=m["created"],
                    rows=rows,
                )
            )
        return sorted(out, key=lambda v: v.created)

    def views(self) -> list[ViewVersion]:
        got = self._meta().get(include=["metadatas"])
        names = sorted({m["view"] for m in got["metadatas"]})
        return [v for name in names for v in self.describe(name)]

    # Writing --------------------------------------------------------------------------
    def push_features(
        self,
        entity_id: str | int,
        features: dict[str, Any],
        view: str,
        version: str = "1",
        event_time: Any = None,
        *,
        embedding: list[float] | None = None,
        implementation_status: str = ImplementationStatus.IMPLEMENTED,
        validation_note: str = "",
    ) -> FeatureRow:
        """Store one entity's features for ``view``/``version`` as of ``event_time`` (default
        now). The same entity, version and event time overwrite; other times add history."""
        rows = self.push_many(
            [
                {
                    "entity_id": entity_id,
                    "features": features,
                    "event_time": event_time,
                    "embedding": embedding,
                }
            ],
            view,
            version,
            implementation_status=implementation_status,
            validation_note=validation_note,
        )
        return rows[0]

    def push_many(
        self,
        rows: Iterable[dict[str, Any]],
        view: str,
        version: str = "1",
        *,
        implementation_status: str = ImplementationStatus.IMPLEMENTED,
        validation_note: str = "",
        description: str = "",
    ) -> list[FeatureRow]:
        """``push_features`` for many rows (``entity_id``, ``features``, optional
        ``event_time`` and ``embedding``). Every row is checked before anything is written."""
        check_view(view)
        version = check_version(version)
        status = ImplementationStatus(implementation_status).value
        now = time.time()
        ids, embeddings, metadatas, out = [], [], [], []
        names: set[str] = set()
        for i, row in enumerate(rows):
            try:
                entity = check_entity(row.get("entity_id"))
                feats = check_features(row.get("features"))
                ts = to_timestamp(row.get("event_time"))
                emb = row.get("embedding") or hash_embedding(feats, self.dimension)
                if len(emb) != self.dimension or not all(math.isfinite(float(x)) for x in emb):
                    raise InvalidInput(f"embedding must be {self.dimension} finite numbers")
            except InvalidInput as exc:
                raise InvalidInput(f"row {i + 1}: {exc.message}", hint=exc.hint) from exc
            names.update(feats)
            ids.append(_record_id(entity, version, ts))
            embeddings.append([float(x) for x in emb])
            meta = {
                "entity_id": entity,
                "version": version,
                "event_time": ts,
                "created": now,
                "features": json.dumps(feats, allow_nan=False),
                "implementation_status": status,
                "validation_note": validation_note[:4000],
            }
            metadatas.append(meta)
            out.append(_row(view, meta))
        if not ids:
            raise InvalidInput("no feature rows to push")
        known = self._meta().get(ids=[f"{view}|{version}"], include=["metadatas"])
        if known["ids"]:
            names |= set(json.loads(known["metadatas"][0]["features"]))
        self.register_view(
            view,
            version,
            sorted(names),
            implementation_status=status,
            validation_note=validation_note,
            description=description,
        )
        col = self._collection(view, create=True)
        for start in range(0, len(ids), BATCH):
            end = start + BATCH
            col.upsert(
                ids=ids[start:end], embeddings=embeddings[start:end], metadatas=metadatas[start:end]
            )
        return out

    # Reading --------------------------------------------------------------------------
    def get_features(
        self,
        entity_ids: list[str | int],
        view: str,
        as_of: Any = None,
        *,
        version: str | None = None,
    ) -> dict[str, FeatureRow | None]:
        """Each entity's latest row at or before ``as_of`` (default: now), optionally of one
        version; None for an entity with no such row (point-in-time: nothing from the future)."""
        ids = [check_entity(e) for e in entity_ids]
        if not ids:
            return {}
        best = self._latest(self._collection(view, create=False), ids, as_of, version)
        return {e: (_row(view, best[e][1]) if e in best else None) for e in ids}

    def _latest(
        self, col: Any, ids: list[str], as_of: Any, version: str | None
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """entity -> (Chroma record id, metadata) of its latest row at or before ``as_of``.
        The record id is Chroma's own: a float read back from Chroma's metadata can differ
        from the one written in the last bit, so an id is never recomputed from it."""
        cutoff = to_timestamp(as_of)
        clauses: list[dict[str, Any]] = [{"event_time": {"$lte": cutoff}}]
        if version is not None:
            clauses.append({"version": check_version(version)})
        best: dict[str, tuple[str, dict[str, Any]]] = {}
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            where = {"$and": [{"entity_id": {"$in": chunk}}, *clauses]}
            got = col.get(where=where, include=["metadatas"])
            for rid, meta in zip(got["ids"], got["metadatas"], strict=True):
                cur = best.get(meta["entity_id"])
                if cur is None or (meta["event_time"], meta["created"]) > (
                    cur[1]["event_time"],
                    cur[1]["created"],
                ):
                    best[meta["entity_id"]] = (rid, meta)
        return best

    def get_or_compute(
        self,
        entity_id: str | int,
        fn: Callable[[str], dict[str, Any]],
        view: str,
        version: str = "1",
        *,
        as_of: Any = None,
        implementation_status: str = ImplementationStatus.IMPLEMENTED,
        validation_note: str = "",
    ) -> tuple[FeatureRow, bool]:
        """(row, reused): the stored row for this entity and version when there is one, else
        ``fn(entity_id)`` computed, stored and returned (reuse before regenerate)."""
        entity = check_entity(entity_id)
        try:
            found = self.get_features([entity], view, as_of, version=version)[entity]
        except NotFound:
            found = None
        if found is not None:
            return found, True
        row = self.push_features(
            entity,
            fn(entity),
            view,
            version,
            as_of,
            implementation_status=implementation_status,
            validation_note=validation_note,
        )
        return row, False

    def nearest(
        self,
        view: str,
        *,
        entity_id: str | int | None = None,
        features: dict[str, Any] | None = None,
        embedding: list[float] | None = None,
        k: int = 5,
        version: str | None = None,
    ) -> list[Neighbour]:
        """The ``k`` entities closest (cosine) to an entity's latest row, a feature dict or an
        embedding; each entity once, the query entity excluded."""
        col = self._collection(view, create=False)
        if sum(x is not None for x in (entity_id, features, embedding)) != 1:
            raise InvalidInput("give exactly one of entity_id, features or embedding")
        if not 1 <= k <= 1000:
            raise InvalidInput("k must be between 1 and 1000")
        exclude = None
        if entity_id is not None:
            exclude = check_entity(entity_id)
            latest = self._latest(col, [exclude], None, version).get(exclude)
            if latest is None:
                raise NotFound(f"entity {exclude!r} has no features in view {view!r}")
            got = col.get(ids=[latest[0]], include=["embeddings"])
            embedding = [float(x) for x in got["embeddings"][0]]
        elif features is not None:
            embedding = hash_embedding(check_features(features), self.dimension)
        if len(embedding) != self.dimension:
            raise InvalidInput(f"embedding must have {self.dimension} numbers")
        where = {"version": check_version(version)} if version is not None else None
        total = col.count()
        if total == 0:
            return []
        got = col.query(
            query_embeddings=[embedding],
            n_results=min(total, k * 4 + 1),
            where=where,
            include=["metadatas", "distances"],
        )
        out: list[Neighbour] = []
        seen: set[str] = set()
        for meta, dist in zip(got["metadatas"][0], got["distances"][0], strict=True):
            entity = meta["entity_id"]
            if entity == exclude or entity in seen:
                continue
            seen.add(entity)
            out.append(
                Neighbour(
                    entity_id=entity,
                    distance=float(dist),
                    version=meta["version"],
                    event_time=iso(meta["event_time"]),
                    features=json.loads(meta["features"]),
                )
            )
            if len(out) == k:
                break
        return out


def _record_id(entity: str, version: str, ts: float) -> str:
    return hashlib.sha256(f"{entity}\0{version}\0{ts!r}".encode()).hexdigest()[:40]


def _row(view: str, meta: dict[str, Any]) -> FeatureRow:
    return FeatureRow(
        entity_id=meta["entity_id"],
        view=view,
        version=meta["version"],
        event_time=iso(meta["event_time"]),
        event_timestamp=meta["event_time"],
        features=json.loads(meta["features"]),
        implementation_status=meta["implementation_status"],
        validation_note=meta.get("validation_note", ""),
        created=iso(meta["created"]),
    )
