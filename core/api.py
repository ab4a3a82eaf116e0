"""Thin library facades for the seed's names: ``ModelEvaluator`` over ``core.evaluation``
and ``InferenceOptimizer`` over ``core.optimizer`` (the same functions the tools call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ModelEvaluator:
    """Evaluate predictions, or a fitted model on a frame (``core.evaluation.evaluate``)."""

    def __init__(self, task: str = "classification", metrics: list[str] | None = None) -> None:
        self.task = task
        self.metrics = metrics

    def evaluate(self, y_true: Any, y_pred: Any, y_score: Any = None, **kwargs: Any) -> Any:
        from core.evaluation import evaluate

        kwargs.setdefault("metrics", self.metrics)
        return evaluate(self.task, y_true, y_pred, y_score, **kwargs)

    def evaluate_model(self, model: Any, X: Any, y: Any, **kwargs: Any) -> Any:
        """Score ``model`` on ``X`` (``predict_proba`` when it has one) and evaluate."""
        score = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        if score is not None and score.ndim == 2 and score.shape[1] == 2:
            score = score[:, 1]
        return self.evaluate(y, model.predict(X), score, **kwargs)


class InferenceOptimizer:
    """ONNX export with a parity gate, optional quantization and benchmarks
    (``core.optimizer.optimize``) for one goal: latency, size or throughput."""

    def __init__(self, goal: str = "latency") -> None:
        self.goal = goal

    def optimize(
        self, model: Any, X_sample: Any, X_holdout: Any, *, out_dir: str | Path, **kwargs: Any
    ) -> Any:
        from core.optimizer import optimize

        return optimize(model, X_sample, X_holdout, goal=self.goal, out_dir=out_dir, **kwargs)
