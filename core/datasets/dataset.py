"""``Dataset``: rows read from JSONL, CSV or Parquet, with format validation, a content
digest, seeded splits and MLflow lineage.

Rows are kept as JSON-like dicts together with the line (JSONL) or data row (CSV/Parquet)
they came from, so every later report can point back into the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.datasets.io import (
    DEFAULT_MAX_ERRORS,
    LineError,
    file_format,
    is_missing,
    non_finite_cells,
    read_jsonl,
    read_table,
    write_jsonl,
)
from core.datasets.tokens import TokenCounter
from core.datasets.validate import CHAT, FORMATS, PROMPT_COMPLETION, detect_format, text_of
from core.datasets.validate import validate_row as _validate_row
from core.errors import InvalidInput
from core.names import validate_name

TABULAR = "tabular"
SPLIT_NAMES = ("train", "validation", "test")


class ValidationReport(BaseModel):
    """What ``Dataset.validate`` found: ``ok`` only when no row has an error."""

    name: str
    format: str
    rows: int
    valid_rows: int
    invalid_rows: int
    errors: list[LineError]
    total_errors: int
    errors_truncated: bool
    length_unit: str = Field(description="tokens or characters")
    length_method: dict[str, str]
    lengths: dict[str, float] = Field(description="min / mean / max / total per row")
    over_max_length: list[int] = Field(default=[], description="lines longer than max_length")
    digest: str

    @property
    def ok(self) -> bool:
        return self.invalid_rows == 0 and self.total_errors == 0

    def summary(self) -> str:
        state = "valid" if self.ok else f"{self.invalid_rows} invalid row(s)"
        return f"{self.name}: {self.rows} {self.format} rows, {state}"


class Dataset:
    """Rows (dicts) with the line each came from. Build with ``Dataset.load(path)``,
    ``from_jsonl``/``from_csv``/``from_parquet``, ``from_records`` or ``from_pandas``."""

    def __init__(
        self,
        rows: list[Any],
        *,
        name: str = "dataset",
        lines: list[int] | None = None,
        source: str | None = None,
        columns: list[str] | None = None,
        parse_errors: list[LineError] | None = None,
        bad_lines: int = 0,
        bad_rows: int = 0,
    ) -> None:
        validate_name("dataset", name)
        self.rows = list(rows)
        self.name = name
        self.lines = list(lines) if lines is not None else list(range(1, len(self.rows) + 1))
        self.source = source
        self.columns = columns
        # Problems found while reading: JSONL lines that did not parse (``bad_lines``, not in
        # ``rows``) and rows with non-finite cells (``bad_rows``, in ``rows``). ``validate``
        # reports them and ``require_valid`` refuses them.
        self.parse_errors = list(parse_errors or [])
        self.bad_lines = bad_lines
        self.bad_rows = bad_rows

    # Construction ---------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, name: str | None = None) -> Dataset:
        p = Path(path)
        kind = file_format(p)
        if kind == "jsonl":
            return cls.from_jsonl(p, name=name)
        return cls.from_csv(p, name=name) if kind == "csv" else cls.from_parquet(p, name=name)

    @classmethod
    def from_jsonl(
        cls, path: str | Path, *, name: str | None = None, max_errors: int = DEFAULT_MAX_ERRORS
    ) -> Dataset:
        p = Path(path)
        parsed, errors, bad = read_jsonl(p, max_errors=max_errors)
        return cls(
            [v for _, v in parsed],
            name=name or _name_of(p),
            lines=[n for n, _ in parsed],
            source=str(p),
            parse_errors=errors,
            bad_lines=bad,
        )

    @classmethod
    def from_csv(cls, path: str | Path, *, name: str | None = None) -> Dataset:
        p = Path(path)
        return cls._from_frame(read_table(p, "csv"), name or _name_of(p), str(p))

    @classmethod
    def from_parquet(cls, path: str | Path, *, name: str | None = None) -> Dataset:
        p = Path(path)
        return cls._from_frame(read_table(p, "parquet"), name or _name_of(p), str(p))

    @classmethod
    def from_records(cls, rows: list[dict[str, Any]], *, name: str = "dataset") -> Dataset:
        return cls(rows, name=name)

    @classmethod
    def from_pandas(cls, frame: Any, *, name: str = "dataset") -> Dataset:
        return cls._from_frame(frame, name, None)

    @classmethod
    def _from_frame(cls, frame: Any, name: str, source: str | None) -> Dataset:
        bad = non_finite_cells(frame)
        rows = [
            {k: (None if is_missing(v) else _plain(v)) for k, v in rec.items()}
            for rec in frame.to_dict(orient="records")
        ]
        return cls(
            rows,
            name=name,
            source=source,
            columns=[str(c) for c in frame.columns],
            parse_errors=bad,
            bad_rows=len({e.line for e in bad}),
        )

    # Writing --------------------------------------------------------------------------
    def to_jsonl(self, path: str | Path) -> Path:
        return write_jsonl(self.rows, Path(path))

    def to_csv(self, path: str | Path) -> Path:
        self._flat_frame().to_csv(Path(path), index=False)
        return Path(path)

    def to_parquet(self, path: str | Path) -> Path:
        self._flat_frame().to_parquet(Path(path), index=False)
        return Path(path)

    def save(self, path: str | Path) -> Path:
        kind = file_format(Path(path))
        if kind == "jsonl":
            return self.to_jsonl(path)
        return self.to_csv(path) if kind == "csv" else self.to_parquet(path)

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def _flat_frame(self) -> Any:
        """A frame whose nested values (messages, tool calls) are JSON strings."""
        import pandas as pd

        flat = [
            {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
            for r in self.rows
        ]
        return pd.DataFrame(flat, columns=self.columns)

    # What it is -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, rows={len(self)}, format={self.format!r})"

    @property
    def format(self) -> str:
        """``chat``, ``prompt_completion`` or ``tabular``, from the first row."""
        return next((f for f in map(detect_format, self.rows[:1]) if f), TABULAR)

    @property
    def digest(self) -> str:
        """SHA-256 over the rows as canonical JSON lines: the same content gives the same
        digest whichever file format it was read from or written to."""
        h = hashlib.sha256()
        for row in self.rows:
            h.update(_canonical(row))
            h.update(b"\n")
        return h.hexdigest()

    def texts(self) -> list[str]:
        """What each row trains on (chat contents, prompt + completion; a tabular row as JSON)."""
        if self.format == TABULAR:
            return [_canonical(r).decode() for r in self.rows]
        return [text_of(r) for r in self.rows]

    # Validation -----------------------------------------------------------------------
    def validate(
        self,
        format: str | None = None,
        *,
        max_errors: int = DEFAULT_MAX_ERRORS,
        counter: TokenCounter | None = None,
        max_length: int | None = None,
    ) -> ValidationReport:
        """Check every row against ``format`` (default: detected from the first row); report
        every bad row (errors up to ``max_errors``, all of them counted) and row lengths."""
        fmt = format or self.format
        if fmt not in (*FORMATS, TABULAR):
            raise InvalidInput(
                f"unknown dataset format {fmt!r}", hint=f"Use one of: {', '.join(FORMATS)}."
            )
        counter = counter or TokenCounter.auto()
        errors = list(self.parse_errors[:max_errors])
        total = max(self.bad_lines, len(self.parse_errors))
        invalid = self.bad_lines + self.bad_rows
        if fmt != TABULAR:
            for line, row in zip(self.lines, self.rows, strict=True):
                found = _validate_row(line, row, fmt)
                if found:
                    invalid += 1
                    total += len(found)
                    errors.extend(found[: max(0, max_errors - len(errors))])
            errors.sort(key=lambda e: e.line)
        if not self.rows and not total:
            errors.append(LineError(line=0, field="(file)", message="the dataset has no rows"))
            total, invalid = 1, 1
        lengths = [counter.count(t) for t in self.texts()]
        over = [
            ln for ln, n in zip(self.lines, lengths, strict=True) if max_length and n > max_length
        ]
        return ValidationReport(
            name=self.name,
            format=fmt,
            rows=len(self.rows) + self.bad_lines,
            valid_rows=len(self.rows) + self.bad_lines - invalid,
            invalid_rows=invalid,
            errors=errors,
            total_errors=total,
            errors_truncated=total > len(errors),
            length_unit=counter.unit,
            length_method=counter.describe(),
            lengths=_stats(lengths),
            over_max_length=over[:max_errors],
            digest=self.digest,
        )

    def require_valid(self, format: str | None = None, **kwargs: Any) -> ValidationReport:
        """``validate``, raising InvalidInput that lists the bad lines when any row is bad."""
        report = self.validate(format, **kwargs)
        if not report.ok:
            shown = "; ".join(str(e) for e in report.errors[:10])
            more = report.total_errors - min(10, len(report.errors))
            raise InvalidInput(
                f"{self.name}: {report.invalid_rows} of {report.rows} rows are invalid "
                f"({report.format}): {shown}" + (f"; and {more} more" if more > 0 else ""),
                hint="Run `agent data validate PATH` for the full list; fix or drop those lines.",
            )
        return report

    # Splits ---------------------------------------------------------------------------
    def split(
        self,
        fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
        *,
        seed: int = 42,
        stratify: str | None = None,
    ) -> dict[str, Dataset]:
        """Seeded train/validation/test split (two fractions: train/test). The same seed and
        rows always give the same split; ``stratify`` keeps a column's class shares."""
        import numpy as np

        if len(fractions) not in (2, 3) or any(f < 0 for f in fractions):
            raise InvalidInput("fractions must be two or three non-negative numbers")
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise InvalidInput(f"fractions must add up to 1, not {sum(fractions):g}")
        names = ("train", "test") if len(fractions) == 2 else SPLIT_NAMES
        n = len(self.rows)
        if n < len(fractions):
            raise InvalidInput(f"{n} rows cannot be split {len(fractions)} ways")
        rng = np.random.default_rng(seed)
        if stratify is None:
            groups = [rng.permutation(n)]
        else:
            keys = [json.dumps(r.get(stratify)) if isinstance(r, dict) else "" for r in self.rows]
            if self.rows and not all(isinstance(r, dict) and stratify in r for r in self.rows):
                raise InvalidInput(f"stratify column {stratify!r} is missing from some rows")
            by_key: dict[str, list[int]] = {}
            for i, k in enumerate(keys):
                by_key.setdefault(k, []).append(i)
            groups = [rng.permutation(np.array(ix)) for _, ix in sorted(by_key.items())]
        parts: dict[str, list[int]] = {k: [] for k in names}
        for idx in groups:
            bounds = np.cumsum([round(f * len(idx)) for f in fractions[:-1]])
            for part, chunk in zip(names, np.split(idx, bounds), strict=True):
                parts[part].extend(int(i) for i in chunk)
        return {
            part: Dataset(
                [self.rows[i] for i in sorted(ix)],
                name=f"{self.name}-{part}"[:128],
                lines=[self.lines[i] for i in sorted(ix)],
                source=self.source,
                columns=self.columns,
            )
            for part, ix in parts.items()
        }

    # Lineage --------------------------------------------------------------------------
    def mlflow_dataset(self, *, targets: str | None = None) -> Any:
        """This dataset as an MLflow dataset (schema, our content digest, its source)."""
        import warnings

        import mlflow

        frame = self._flat_frame()
        with warnings.catch_warnings():
            # Integer columns make MLflow warn about missing values: rows are checked here.
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer.*")
            return mlflow.data.from_pandas(
                frame,
                source=Path(self.source).resolve().as_uri() if self.source else None,
                name=self.name,
                targets=targets if targets in frame.columns else None,
                digest=self.digest[:32],
            )

    def log_to_mlflow(self, context: str = "training", *, targets: str | None = None) -> None:
        """Record this dataset as an input of the active MLflow run (lineage in the UI)."""
        import mlflow

        mlflow.log_input(self.mlflow_dataset(targets=targets), context=context)


def _name_of(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.stem)[:128]
    return stem if stem[:1].isalnum() else f"d{stem}"[:128]


def _plain(v: Any) -> Any:
    """numpy scalars to Python values (JSON and digests need them)."""
    return v.item() if hasattr(v, "item") and not isinstance(v, (list, dict, str)) else v


def _canonical(row: Any) -> bytes:
    return json.dumps(
        row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    ).encode()


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0, "total": 0}
    return {
        "min": min(values),
        "mean": round(sum(values) / len(values), 2),
        "max": max(values),
        "total": sum(values),
    }


__all__ = ["CHAT", "PROMPT_COMPLETION", "TABULAR", "Dataset", "ValidationReport"]
