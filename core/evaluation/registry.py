"""A small registry of metrics by task kind, so callers can plug in their own metric functions.

Built-in metrics are registered here by name (they are computed in one vectorized pass by the
task modules); custom metrics are plain functions ``fn(y_true, y_pred, y_score) -> float``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import InvalidInput

MetricKind = Literal["classification", "regression", "text"]
KINDS: tuple[str, ...] = ("classification", "regression", "text")
MetricFn = Callable[..., float]


class MetricUnavailable(Exception):
    """Raised by a metric function when the metric is undefined on the given data.

    The orchestrator records ``reason`` in the result's ``unavailable`` mapping; a metric
    function must never return a made-up number (such as 0.0) instead.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    fn: MetricFn | None  # None for built-ins computed by the task module's vectorized pass
    higher_is_better: bool | None  # None: no better direction (e.g. length_ratio, best at 1)
    needs_score: bool
    builtin: bool
    description: str = ""


_REGISTRY: dict[tuple[str, str], MetricSpec] = {}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(
            f"unknown metric kind {kind!r}",
            hint=f"Use one of: {', '.join(KINDS)}.",
        )


def register_builtin(
    name: str,
    kind: str,
    *,
    higher_is_better: bool | None,
    needs_score: bool = False,
    description: str,
) -> None:
    """Declare a metric computed by the task module itself (so lookups and listings know it)."""
    _REGISTRY[(kind, name)] = MetricSpec(
        name, kind, None, higher_is_better, needs_score, True, description
    )


def register_metric(
    name: str,
    kind: MetricKind,
    *,
    higher_is_better: bool | None = True,
    needs_score: bool = False,
    replace: bool = False,
) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``fn(y_true, y_pred, y_score) -> float`` as metric ``name``.

    The function receives numpy arrays (``y_score`` may be None unless ``needs_score``) and
    raises :class:`MetricUnavailable` when the metric is undefined on the data.
    """
    _check_kind(kind)
    if not name or not name.replace("_", "").replace(".", "").isalnum():
        raise InvalidInput(
            f"invalid metric name {name!r}",
            hint="Use letters, digits, '_' and '.' only (names become MLflow metric keys).",
        )

    def decorator(fn: MetricFn) -> MetricFn:
        existing = _REGISTRY.get((kind, name))
        if existing is not None and (existing.builtin or not replace):
            raise InvalidInput(
                f"metric {name!r} is already registered for {kind}",
                hint="Pick another name, or pass replace=True to replace a custom metric.",
            )
        _REGISTRY[(kind, name)] = MetricSpec(
            name, kind, fn, higher_is_better, needs_score, False, (fn.__doc__ or "").strip()
        )
        return fn

    return decorator


def unregister_metric(name: str, kind: MetricKind) -> None:
    """Remove a custom metric (built-ins cannot be removed)."""
    spec = get_metric(name, kind)
    if spec.builtin:
        raise InvalidInput(f"{name!r} is a built-in {kind} metric and cannot be removed")
    del _REGISTRY[(kind, name)]


def known_metrics(kind: MetricKind) -> list[str]:
    """Names of all metrics (built-in and custom) registered for ``kind``, sorted."""
    _check_kind(kind)
    return sorted(name for (k, name) in _REGISTRY if k == kind)


def get_metric(name: str, kind: MetricKind) -> MetricSpec:
    """Look a metric up by name; an unknown name raises InvalidInput listing the known ones."""
    _check_kind(kind)
    spec = _REGISTRY.get((kind, name))
    if spec is None:
        raise InvalidInput(
            f"unknown {kind} metric {name!r}",
            hint=f"Known {kind} metrics: {', '.join(known_metrics(kind))}. "
            "Register your own with @register_metric(name, kind).",
        )
    return spec


def resolve_metric_names(names: Any, kind: MetricKind) -> list[str]:
    """Validate a requested metric list (None -> all built-ins of the kind)."""
    if names is None:
        return sorted(n for (k, n), s in _REGISTRY.items() if k == kind and s.builtin)
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidInput(f"metric names must be strings, got {name!r}")
        get_metric(name, kind)
        if name not in out:
            out.append(name)
    return out
