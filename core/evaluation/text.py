"""Text / LLM output metrics: exact match, token-level F1 and length ratio.

- exact_match: prediction == reference after stripping surrounding whitespace.
- token_f1: SQuAD-style bag-of-tokens F1 per row (lower-cased, punctuation removed,
  whitespace tokens), averaged over rows; two empty strings count as a match.
- length_ratio: total prediction tokens / total reference tokens (whitespace tokens), as in
  BLEU's length ratio; 1.0 means the outputs are as long as the references.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.evaluation._inputs import as_1d, check_lengths, describe_rows, missing_rows
from core.evaluation.registry import register_builtin

_KIND = "text"
register_builtin("exact_match", _KIND, higher_is_better=True, description="stripped equality")
register_builtin("token_f1", _KIND, higher_is_better=True, description="bag-of-tokens F1")
register_builtin(
    "length_ratio", _KIND, higher_is_better=None, description="prediction/reference tokens"
)
METRICS = ("exact_match", "token_f1", "length_ratio")
_PUNCT = str.maketrans("", "", string.punctuation)


@dataclass
class TextOutcome:
    references: np.ndarray
    predictions: np.ndarray | None
    pred_problem: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def _check_strings(name: str, arr: np.ndarray) -> None:
    not_str = np.flatnonzero([not isinstance(v, str) for v in arr])
    if len(not_str):
        raise InvalidInput(
            f"{name} must hold strings, but {describe_rows(not_str)} do not "
            f"(e.g. {arr[not_str[0]]!r})",
            hint="Pass the generated text and the reference text as str.",
        )


def prepare_text(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    refs = as_1d("y_true", y_true, dtype=object)
    preds = as_1d("y_pred", y_pred, dtype=object)
    check_lengths(len(refs), y_pred=preds)
    if len(refs) == 0:
        raise InvalidInput("the evaluation set is empty", hint="Evaluate on at least one row.")
    bad = missing_rows(refs)
    if len(bad):
        raise InvalidInput(
            f"y_true (references) contains missing values in {describe_rows(bad)}",
            hint="Every evaluated row needs a reference text.",
        )
    _check_strings("y_true", refs)
    bad = missing_rows(preds)
    if len(bad):
        return refs, None, f"predictions contain missing values (None/NaN) in {describe_rows(bad)}"
    _check_strings("y_pred", preds)
    return refs, preds, None


def normalize_tokens(text: str) -> list[str]:
    return text.lower().translate(_PUNCT).split()


def token_f1_rows(references: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    out = np.empty(len(references), dtype=np.float64)
    for i, (ref, pred) in enumerate(zip(references, predictions, strict=True)):
        r, p = normalize_tokens(ref), normalize_tokens(pred)
        if not r or not p:
            out[i] = float(r == p)
            continue
        same = sum((Counter(r) & Counter(p)).values())
        out[i] = 0.0 if same == 0 else 2 * same / (len(r) + len(p))
    return out


def exact_match_rows(references: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    return np.fromiter(
        (p.strip() == r.strip() for r, p in zip(references, predictions, strict=True)),
        dtype=np.float64,
        count=len(references),
    )


def token_counts(texts: np.ndarray) -> np.ndarray:
    return np.fromiter((len(t.split()) for t in texts), dtype=np.float64, count=len(texts))


def compute_text(y_true: Any, y_pred: Any) -> TextOutcome:
    refs, preds, problem = prepare_text(y_true, y_pred)
    out = TextOutcome(refs, preds, problem)
    if preds is None:
        for name in METRICS:
            out.unavailable[name] = problem or "no predictions"
        return out
    out.metrics["exact_match"] = float(exact_match_rows(refs, preds).mean())
    out.metrics["token_f1"] = float(token_f1_rows(refs, preds).mean())
    ref_tokens = token_counts(refs).sum()
    if ref_tokens == 0:
        out.unavailable["length_ratio"] = "every reference is empty (zero reference tokens)"
    else:
        out.metrics["length_ratio"] = float(token_counts(preds).sum() / ref_tokens)
    return out
