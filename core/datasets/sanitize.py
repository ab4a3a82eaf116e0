"""``DatasetSanitizer``: length filters, key stripping, exact and near-duplicate removal and
redaction of e-mail addresses, phone numbers and API-key-like strings, with a summary of
every change and its reason.

Near-duplicates are found with MinHash over character 5-gram shingles and LSH banding
(candidates), then confirmed by the exact Jaccard similarity of the two rows' shingle sets,
so the threshold means what it says.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel

from core.datasets.dataset import Dataset
from core.datasets.tokens import TokenCounter
from core.errors import InvalidInput

MAX_LISTED = 200
REDACTIONS: dict[str, tuple[re.Pattern[str], str]] = {
    "email": (
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
        "[REDACTED_EMAIL]",
    ),
    "secret": (
        re.compile(
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
            r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,})"
            r"|(?i:\b(?:api[_-]?key|secret|token|password)\b\s*[:=]\s*)['\"]?[^\s'\"]{8,}"
        ),
        "[REDACTED_SECRET]",
    ),
    "phone": (
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}"
            r"(?![\w])"
        ),
        "[REDACTED_PHONE]",
    ),
}
# String fields that are structure, not text: never redacted.
_STRUCTURAL_KEYS = {"role", "type", "id", "tool_call_id", "name"}


class SanitizeSummary(BaseModel):
    """What changed: rows in and out, each dropped line with its reason, redaction counts."""

    input_rows: int
    output_rows: int
    dropped: dict[str, int]
    dropped_lines: list[dict[str, Any]]
    dropped_lines_truncated: bool
    redactions: dict[str, int]
    redacted_rows: int
    stripped_keys: dict[str, int]
    length_unit: str
    length_method: dict[str, str]
    near_duplicate: dict[str, Any]
    input_digest: str
    output_digest: str

    def text(self) -> str:
        parts = [f"{self.input_rows} rows in, {self.output_rows} out"]
        parts += [f"{n} dropped ({why})" for why, n in self.dropped.items() if n]
        parts += [f"{n} {kind} redacted" for kind, n in self.redactions.items() if n]
        parts += [f"key {k!r} removed from {n} rows" for k, n in self.stripped_keys.items() if n]
        return "; ".join(parts)


class SanitizeResult(NamedTuple):
    """``clean, summary = sanitizer.sanitize(ds)`` unpacks; ``sanitize(ds).save(path)`` writes
    the clean rows (the seed's spelling), and ``.summary`` says what changed."""

    dataset: Dataset
    summary: SanitizeSummary

    def save(self, path: str | Path) -> Path:
        return self.dataset.save(path)


def sanitize(dataset: Dataset, **options: Any) -> SanitizeResult:
    """``DatasetSanitizer(**options).sanitize(dataset)``: the defaults drop duplicates and
    redact e-mails, phone numbers and secrets."""
    return DatasetSanitizer(**options).sanitize(dataset)


@dataclass
class DatasetSanitizer:
    """Rules applied in order: strip keys, redact, length filter, exact then near duplicates.
    Lengths are counted by ``counter`` (tokens when tiktoken can run offline, else
    characters; the summary says which)."""

    min_length: int | None = None
    max_length: int | None = None
    strip_keys: tuple[str, ...] = ()
    drop_exact_duplicates: bool = True
    near_duplicate_threshold: float | None = 0.9
    redact: tuple[str, ...] = ("email", "phone", "secret")
    counter: TokenCounter | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.redact) - set(REDACTIONS)
        if unknown:
            raise InvalidInput(
                f"unknown redaction {', '.join(sorted(unknown))}",
                hint=f"Use any of: {', '.join(REDACTIONS)}.",
            )
        if self.near_duplicate_threshold is not None and not 0 < self.near_duplicate_threshold <= 1:
            raise InvalidInput("near_duplicate_threshold must be in (0, 1]")
        for v in (self.min_length, self.max_length):
            if v is not None and v < 0:
                raise InvalidInput("length limits must be non-negative")
        if self.min_length and self.max_length and self.min_length > self.max_length:
            raise InvalidInput("min_length is greater than max_length")

    def sanitize(self, dataset: Dataset) -> SanitizeResult:
        counter = self.counter or TokenCounter.auto()
        rows = [json.loads(json.dumps(r)) for r in dataset.rows]  # deep copy, JSON only
        lines = list(dataset.lines)
        stripped = {k: 0 for k in self.strip_keys}
        redactions = {k: 0 for k in self.redact}
        redacted_rows = 0
        for row in rows:
            if isinstance(row, dict):
                for key in self.strip_keys:
                    if key in row:
                        del row[key]
                        stripped[key] += 1
            counts = {k: 0 for k in self.redact}
            _redact_in_place(row, self.redact, counts)
            if any(counts.values()):
                redacted_rows += 1
                for k, n in counts.items():
                    redactions[k] += n
        work = Dataset(rows, name=dataset.name, lines=lines, columns=_columns(dataset, stripped))
        keep = [True] * len(rows)
        drops: list[dict[str, Any]] = []
        reasons = {"too_short": 0, "too_long": 0, "exact_duplicate": 0, "near_duplicate": 0}

        def drop(i: int, reason: str, detail: str) -> None:
            keep[i] = False
            reasons[reason] += 1
            if len(drops) < MAX_LISTED:
                drops.append({"line": lines[i], "reason": reason, "detail": detail})

        texts = work.texts()
        for i, text in enumerate(texts):
            n = counter.count(text)
            if self.min_length is not None and n < self.min_length:
                drop(i, "too_short", f"{n} {counter.unit} < {self.min_length}")
            elif self.max_length is not None and n > self.max_length:
                drop(i, "too_long", f"{n} {counter.unit} > {self.max_length}")
        if self.drop_exact_duplicates:
            first: dict[str, int] = {}
            for i, row in enumerate(rows):
                if not keep[i]:
                    continue
                key = hashlib.sha256(_canonical(row)).hexdigest()
                if key in first:
                    drop(i, "exact_duplicate", f"same as line {lines[first[key]]}")
                else:
                    first[key] = i
        if self.near_duplicate_threshold is not None:
            alive = [i for i in range(len(rows)) if keep[i]]
            for i, j, sim in near_duplicates(
                [texts[i] for i in alive], self.near_duplicate_threshold, seed=self.seed
            ):
                a, b = alive[i], alive[j]
                if keep[a] and keep[b]:
                    drop(b, "near_duplicate", f"Jaccard {sim:.2f} with line {lines[a]}")
        out = Dataset(
            [r for r, k in zip(rows, keep, strict=True) if k],
            name=dataset.name,
            lines=[ln for ln, k in zip(lines, keep, strict=True) if k],
            source=dataset.source,
            columns=work.columns,
        )
        summary = SanitizeSummary(
            input_rows=len(rows),
            output_rows=len(out),
            dropped=reasons,
            dropped_lines=sorted(drops, key=lambda d: d["line"]),
            dropped_lines_truncated=sum(reasons.values()) > len(drops),
            redactions=redactions,
            redacted_rows=redacted_rows,
            stripped_keys=stripped,
            length_unit=counter.unit,
            length_method=counter.describe(),
            near_duplicate={
                "threshold": self.near_duplicate_threshold,
                "method": "MinHash (128 permutations, LSH 32 bands) over character 5-grams, "
                "confirmed by exact Jaccard similarity",
            },
            input_digest=dataset.digest,
            output_digest=out.digest,
        )
        return SanitizeResult(out, summary)


def _columns(dataset: Dataset, stripped: dict[str, int]) -> list[str] | None:
    if dataset.columns is None:
        return None
    return [c for c in dataset.columns if c not in stripped]


def _canonical(row: Any) -> bytes:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def redact_text(text: str, kinds: tuple[str, ...], counts: dict[str, int]) -> str:
    for kind in kinds:  # e-mail and secrets before phone numbers (digits inside them)
        pattern, label = REDACTIONS[kind]
        text, n = pattern.subn(label, text)
        counts[kind] += n
    return text


def _redact_in_place(value: Any, kinds: tuple[str, ...], counts: dict[str, int]) -> Any:
    ordered = tuple(k for k in REDACTIONS if k in kinds)
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                if k not in _STRUCTURAL_KEYS:
                    value[k] = redact_text(v, ordered, counts)
            else:
                _redact_in_place(v, ordered, counts)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str):
                value[i] = redact_text(v, ordered, counts)
            else:
                _redact_in_place(v, ordered, counts)
    return value


# Near-duplicates ----------------------------------------------------------------------------
_PERMS, _BANDS = 128, 32
_PRIME = (1 << 61) - 1


def _shingles(text: str, k: int = 5) -> set[int]:
    norm = " ".join(text.lower().split())
    if len(norm) <= k:
        return {hash_token(norm)} if norm else set()
    return {hash_token(norm[i : i + k]) for i in range(len(norm) - k + 1)}


def hash_token(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") % _PRIME


def near_duplicates(
    texts: list[str], threshold: float, *, seed: int = 0
) -> list[tuple[int, int, float]]:
    """(i, j, similarity) with i < j for every pair of texts whose shingle Jaccard similarity
    is at least ``threshold``; j is the later row (the one a sanitizer drops)."""
    import numpy as np

    sets = [_shingles(t) for t in texts]
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=_PERMS, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=_PERMS, dtype=np.uint64)
    rows_per_band = _PERMS // _BANDS
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for idx, s in enumerate(sets):
        if not s:
            continue
        x = np.fromiter(s, dtype=np.uint64)
        # (a*x + b) mod p on uint64 wraps; the wrapped values are still a fixed random hash.
        sig = ((np.outer(x, a) + b) % np.uint64(_PRIME)).min(axis=0)
        for band in range(_BANDS):
            key = sig[band * rows_per_band : (band + 1) * rows_per_band].tobytes()
            buckets.setdefault((band, key), []).append(idx)
    pairs: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) > 1:
            for pos, i in enumerate(members):
                for j in members[pos + 1 :]:
                    pairs.add((min(i, j), max(i, j)))
    out = []
    for i, j in sorted(pairs):
        inter = len(sets[i] & sets[j])
        sim = inter / len(sets[i] | sets[j])
        if sim >= threshold:
            out.append((i, j, sim))
    return out
