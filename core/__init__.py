"""The MLOps engine: registry, training, evaluation, serving and deployment, datasets,
feature store, experiment tracking and fine-tuning.

Usable as a plain library: nothing here imports ``tools``, ``policies`` or ``agents``.
The Python API below loads lazily (``import core`` imports no mlflow, chromadb or openai)::

    from core import (ModelRegistry, ModelEvaluator, InferenceOptimizer, FeatureStore,
                      ExperimentTracker, Dataset, DatasetSanitizer, sanitize,
                      FineTuningJob)

See docs/python-api.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "ModelRegistry": ("core.registry", "ModelRegistry"),
    "ModelEvaluator": ("core.api", "ModelEvaluator"),
    "InferenceOptimizer": ("core.api", "InferenceOptimizer"),
    "FeatureStore": ("core.features.store", "FeatureStore"),
    "ExperimentTracker": ("core.experiments.tracker", "ExperimentTracker"),
    "Dataset": ("core.datasets.dataset", "Dataset"),
    "DatasetSanitizer": ("core.datasets.sanitize", "DatasetSanitizer"),
    "sanitize": ("core.datasets.sanitize", "sanitize"),
    "FineTuningJob": ("core.finetuning.job", "FineTuningJob"),
    "HonestyMetadata": ("core.honesty", "HonestyMetadata"),
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
