"""MonitoringService: reference profiles for registered versions and reports over the log.

Profiles come from the training dataset logged with a version's run (``datasets/NAME.parquet``;
an optimized version uses its source's), captured at registration or, for versions registered
before profiles existed, on first use; the report says which.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from core.errors import ModelOpsError, NotFound
from core.monitoring.feedback import read_feedback
from core.monitoring.profile import (
    FIRST_USE,
    REGISTRATION,
    ProfileStore,
    ReferenceProfile,
    build_profile,
)
from core.monitoring.report import version_report
from core.monitoring.window import read_window
from core.tasks import label_column_for

DEFAULT_DATASET = "training"


class MonitoringService:
    def __init__(self, engine: Any, registry: Any, reader: Any) -> None:
        self.engine = engine
        # ModelRegistry (or a callable returning it: MLflow loads only when a profile must be
        # built): logged datasets and verified model loading. ``reader``: fast lookups.
        self._registry = registry
        self.reader = reader
        self.profiles = ProfileStore(engine)

    @property
    def registry(self) -> Any:
        if callable(self._registry):
            self._registry = self._registry()
        return self._registry

    # Profiles ---------------------------------------------------------------------------
    def dataset_name(self, info: Any) -> str:
        name = info.tags.get("dataset_name")
        source = info.tags.get("optimized_from")
        if not name and source and source.isdigit() and source != info.version:
            name = self.reader.get(info.name, source).tags.get("dataset_name")
        return name or DEFAULT_DATASET

    def capture(self, info: Any, *, source: str = REGISTRATION) -> ReferenceProfile:
        """Build and store the profile of a version from its logged training dataset."""
        import pandas as pd

        dataset = self.dataset_name(info)
        path = self.registry.logged_dataset_path(info.name, info.version, dataset)
        frame = pd.read_parquet(path)
        profile = build_profile(
            frame,
            # Registered models name their label (core.byom); the quickstart's is "target".
            label_column=label_column_for(info.tags, None),
            source=source,
            dataset={
                "name": dataset,
                "rows": len(frame),
                "columns": [str(c) for c in frame.columns],
            },
        )
        self._predict_reference(info, profile)
        return self.profiles.put(info.name, info.version, info.artifact_sha256 or "", profile)

    def profile(self, info: Any) -> tuple[ReferenceProfile | None, str]:
        """The version's profile (built on first use if missing) and a sentence about it."""
        profile = self.profiles.get(info.name, info.version, info.artifact_sha256 or "")
        if profile is None:
            try:
                profile = self.capture(info, source=FIRST_USE)
            except (ModelOpsError, OSError, ValueError) as exc:
                return None, (
                    f"no reference profile: v{info.version} was registered without one and its "
                    f"training data could not be read ({exc})"
                )
        ds = profile.dataset
        what = (
            f"{profile.sample_rows}-row sample of the {ds.get('rows', profile.n_rows)}-row logged "
            f"training dataset {ds.get('name')!r}"
        )
        if profile.source == FIRST_USE:
            return profile, (
                f"built on first use from {what} (v{info.version} was registered before "
                "reference profiles were captured at registration)"
            )
        return profile, f"captured at registration: {what}"

    def _predict_reference(self, info: Any, profile: ReferenceProfile) -> None:
        """The model's answers on the reference sample (prediction drift, calibration)."""
        import pandas as pd

        from core.optimizer.predictor import OnnxPredictor

        numeric = [f for f in profile.features if profile.kinds[f] == "numeric"]
        try:
            model = self.registry.load(info.name, info.version)
            # A scikit-learn pipeline takes the sample as a DataFrame, strings included.
            x = pd.DataFrame({f: profile.samples[f] for f in profile.features})
            if not isinstance(model, OnnxPredictor):
                profile.predictions = np.asarray(model.predict(x))
                profile.probabilities = (
                    np.asarray(model.predict_proba(x), dtype=float)
                    if hasattr(model, "predict_proba")
                    else None
                )
            elif len(numeric) != len(profile.features):
                raise ValueError("its ONNX graph takes numbers only, the sample has categories")
            else:
                labels, proba = model.predict(x.to_numpy(dtype=np.float32))
                profile.predictions = np.asarray(labels)
                profile.probabilities = None if proba is None else np.asarray(proba, dtype=float)
        except (ModelOpsError, OSError, ValueError, TypeError) as exc:
            profile.notes.append(f"reference predictions not computed: {exc}")

    # Reports ----------------------------------------------------------------------------
    def report(
        self,
        model_name: str,
        versions: list[str],
        *,
        rules: dict[str, Any],
        environment: str = "production",
        window_seconds: float = 3600.0,
        overrides: dict[str, Any] | None = None,
        until: float | None = None,
        served_earlier: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The report of each version over the window, and the data its plots draw. With
        ``served_earlier``, also every other version that answered requests in the window
        (after the ones asked for, each marked ``served_earlier``): a version rolled back
        an hour ago is part of what the window saw."""
        window = read_window(
            self.engine, model_name, environment=environment, seconds=window_seconds, until=until
        )
        feedback = read_feedback(
            self.engine, model_name, environment=environment, since=window.since
        )
        out: dict[str, Any] = {
            "model_name": model_name,
            "environment": environment,
            "window": {
                "from": datetime.fromtimestamp(window.since, UTC).isoformat(timespec="seconds"),
                "to": datetime.fromtimestamp(window.until, UTC).isoformat(timespec="seconds"),
                "seconds": window_seconds,
                "rows": len(window),
                "truncated": window.truncated,
            },
            "notes": list(window.notes),
            "versions": [],
            "generated_at": time.time(),
        }
        if not len(window):
            out["notes"].append(
                f"the prediction log holds no requests for {model_name} on {environment} in the window"
            )
        plots: dict[str, Any] = {}
        asked = [str(v) for v in versions]
        extra = (
            sorted(
                {
                    v
                    for v, r in zip(window.version, window.role, strict=True)
                    if v and r != "shadow" and v not in asked
                },
                key=lambda v: (int(v), v) if v.isdigit() else (1 << 60, v),
            )
            if served_earlier
            else []
        )
        for version in asked + extra:
            try:
                info = self.reader.get(model_name, version)
            except NotFound as exc:
                out["notes"].append(str(exc))
                continue
            profile, described = self.profile(info)
            vr, plot = version_report(
                window, profile, info.version, rules=rules, overrides=overrides, feedback=feedback
            )
            vr["served_earlier"] = version in extra
            vr["reference_profile"] = {
                "description": described,
                "source": profile.source if profile else None,
                "sample_rows": profile.sample_rows if profile else 0,
            }
            out["versions"].append(vr)
            plots[info.version] = plot
        return out, plots
