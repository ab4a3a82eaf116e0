"""Reference profiles: what a version's training data looked like, stored with the version.

A profile holds, per feature, its kind, a bounded random sample (the drift tests' reference),
quantiles and a histogram of the full data; optionally the model's predictions on the sample
(the reference for prediction drift and for the calibration check behind estimated
performance). It is captured at registration from the logged training dataset; versions
registered earlier get one on first use, and the profile records which (``source``).

Stored in the state DB (``monitoring_profiles``), keyed by model, version and artifact digest,
as a compressed ``.npz`` blob plus a JSON summary.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import JSON, DateTime, Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.state import Base, ensure_tables, utcnow

SAMPLE_ROWS = 5000
HIST_BINS = 20
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
MAX_CATEGORIES = 1000
SEED = 7
REGISTRATION, FIRST_USE = "registration", "first_use"


class ProfileRow(Base):
    __tablename__ = "monitoring_profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(32))
    artifact_sha256: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(32))  # registration | first_use
    summary: Mapped[dict] = mapped_column(JSON)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("model_name", "version", "artifact_sha256"),)


@dataclass
class ReferenceProfile:
    features: list[str]
    kinds: dict[str, str]
    samples: dict[str, np.ndarray]  # numeric: float64; categorical: object array
    stats: dict[str, dict[str, Any]]
    n_rows: int
    dataset: dict[str, Any] = field(default_factory=dict)
    source: str = REGISTRATION
    label_column: str | None = None
    # The model on the sample rows (absent when it could not be computed; reason in notes).
    predictions: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None  # the sample's true labels, when the data had them
    notes: list[str] = field(default_factory=list)

    @property
    def sample_rows(self) -> int:
        return len(next(iter(self.samples.values()))) if self.samples else 0

    def summary(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "kinds": self.kinds,
            "stats": self.stats,
            "n_rows": self.n_rows,
            "sample_rows": self.sample_rows,
            "dataset": self.dataset,
            "source": self.source,
            "label_column": self.label_column,
            "has_predictions": self.predictions is not None,
            "has_probabilities": self.probabilities is not None,
            "has_labels": self.labels is not None,
            "notes": self.notes,
        }

    # Serialization ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.features):
            values = self.samples[name]
            if self.kinds[name] == "numeric":
                arrays[f"f{i}"] = values.astype(np.float64)
            else:
                arrays[f"f{i}"] = np.array([json.dumps(_plain(v)) for v in values], dtype=str)
        for key in ("predictions", "probabilities", "labels"):
            value = getattr(self, key)
            if value is not None:
                arrays[key] = (
                    value
                    if value.dtype.kind in "fiub"
                    else np.array([json.dumps(_plain(v)) for v in value], dtype=str)
                )
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_stored(cls, summary: dict[str, Any], blob: bytes) -> ReferenceProfile:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            samples: dict[str, np.ndarray] = {}
            for i, name in enumerate(summary["features"]):
                raw = data[f"f{i}"]
                samples[name] = (
                    raw
                    if summary["kinds"][name] == "numeric"
                    else np.array([json.loads(v) for v in raw], dtype=object)
                )
            extra = {
                key: (
                    data[key]
                    if data[key].dtype.kind != "U"
                    else np.array([json.loads(v) for v in data[key]], dtype=object)
                )
                if key in data.files
                else None
                for key in ("predictions", "probabilities", "labels")
            }
        return cls(
            features=list(summary["features"]),
            kinds=dict(summary["kinds"]),
            samples=samples,
            stats=summary["stats"],
            n_rows=int(summary["n_rows"]),
            dataset=summary.get("dataset", {}),
            source=summary.get("source", REGISTRATION),
            label_column=summary.get("label_column", summary.get("target")),
            notes=list(summary.get("notes", [])),
            **extra,
        )


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def column_kind(values: Any) -> str:
    """numeric for numbers (booleans included), categorical for anything else."""
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    return (
        "numeric"
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)
        else "categorical"
    )


def build_profile(
    frame: Any,
    *,
    features: list[str] | None = None,
    label_column: str | None = "target",
    source: str = REGISTRATION,
    dataset: dict[str, Any] | None = None,
    sample_rows: int = SAMPLE_ROWS,
) -> ReferenceProfile:
    """A profile of a pandas DataFrame's feature columns (all but ``label_column`` by default)."""
    import pandas as pd

    if label_column is not None and label_column not in frame.columns:
        label_column = None
    cols = features or [str(c) for c in frame.columns if c != label_column]
    n = len(frame)
    rng = np.random.default_rng(SEED)
    idx = np.sort(rng.choice(n, size=sample_rows, replace=False)) if n > sample_rows else None
    kinds: dict[str, str] = {}
    samples: dict[str, np.ndarray] = {}
    stats: dict[str, dict[str, Any]] = {}
    for col in cols:
        s = frame[col]
        kind = column_kind(s)
        kinds[col] = kind
        picked = s if idx is None else s.iloc[idx]
        if kind == "numeric":
            full = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
            samples[col] = pd.to_numeric(picked, errors="coerce").to_numpy(dtype=np.float64)
            stats[col] = numeric_stats(full)
        else:
            samples[col] = picked.to_numpy(dtype=object)
            counts = s.value_counts(dropna=True)
            stats[col] = {
                "missing": int(s.isna().sum()),
                "categories": {str(k): int(v) for k, v in counts.head(MAX_CATEGORIES).items()},
                "n_categories": int(len(counts)),
            }
    labels = None
    if label_column is not None:
        picked = frame[label_column] if idx is None else frame[label_column].iloc[idx]
        labels = picked.to_numpy()
    return ReferenceProfile(
        cols, kinds, samples, stats, n, dict(dataset or {}), source, label_column, labels=labels
    )


def numeric_stats(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    out: dict[str, Any] = {"missing": int(len(values) - len(finite)), "count": int(len(finite))}
    if len(finite) == 0:
        return out
    counts, edges = np.histogram(finite, bins=HIST_BINS)
    out.update(
        mean=float(finite.mean()),
        std=float(finite.std()),
        quantiles={str(q): float(v) for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES), strict=True)},
        histogram={"edges": edges.tolist(), "counts": counts.tolist()},
    )  # fmt: skip
    return out


class ProfileStore:
    """Profiles in the state DB, one per model version and artifact."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, ProfileRow)

    def get(
        self, model_name: str, version: str, artifact_sha256: str = ""
    ) -> ReferenceProfile | None:
        with Session(self.engine) as s:
            row = s.scalar(
                select(ProfileRow).where(
                    ProfileRow.model_name == model_name,
                    ProfileRow.version == str(version),
                    ProfileRow.artifact_sha256 == (artifact_sha256 or ""),
                )
            )
            return None if row is None else ReferenceProfile.from_stored(row.summary, row.blob)

    def put(
        self, model_name: str, version: str, artifact_sha256: str, profile: ReferenceProfile
    ) -> ReferenceProfile:
        """Store a profile; the first one stored for a version wins (a race keeps it)."""
        from sqlalchemy.exc import IntegrityError

        try:
            with Session(self.engine) as s, s.begin():
                s.add(
                    ProfileRow(
                        model_name=model_name,
                        version=str(version),
                        artifact_sha256=artifact_sha256 or "",
                        source=profile.source,
                        summary=json.loads(json.dumps(profile.summary(), default=str)),
                        blob=profile.to_bytes(),
                    )
                )
        except IntegrityError:
            stored = self.get(model_name, version, artifact_sha256)
            if stored is not None:
                return stored
            raise
        return profile
