"""Experiment tracking over MLflow (``ExperimentTracker``), run comparison with
uncertainty, and the tracked training behind the ``ml-experiment-tracker`` workflow."""

from core.experiments.compare import RunComparison, compare_runs
from core.experiments.environment import capture_environment
from core.experiments.tracker import ExperimentTracker, RunSummary, TrackedRun

__all__ = [
    "ExperimentTracker",
    "RunComparison",
    "RunSummary",
    "TrackedRun",
    "capture_environment",
    "compare_runs",
]
