"""Datasets for training and fine-tuning: JSONL/CSV/Parquet, validation of the chat and
prompt/completion formats, sanitizing, content digests, seeded splits, MLflow lineage."""

from core.datasets.dataset import PROMPT_COMPLETION, TABULAR, Dataset, ValidationReport
from core.datasets.io import LineError
from core.datasets.sanitize import (
    DatasetSanitizer,
    SanitizeResult,
    SanitizeSummary,
    near_duplicates,
    sanitize,
)
from core.datasets.tokens import TokenCounter
from core.datasets.validate import CHAT, FORMATS

__all__ = [
    "CHAT",
    "FORMATS",
    "PROMPT_COMPLETION",
    "TABULAR",
    "Dataset",
    "DatasetSanitizer",
    "LineError",
    "SanitizeResult",
    "SanitizeSummary",
    "TokenCounter",
    "ValidationReport",
    "near_duplicates",
    "sanitize",
]
