"""Named datasets: a name (``customer_data_2024``) recorded for one file and its SHA-256, so
that tools take the name where they take a path. The record is a row in the state DB; a file
that changed since it was registered is refused by name, never read as if it were the same.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import Conflict, NotFound
from core.names import validate_name
from core.state import Base, ensure_tables, utcnow

REGISTER_HINT = "Register it: `agent data register {name} FILE` (a CSV, Parquet or JSONL file)."


class DatasetRow(Base):
    __tablename__ = "dataset_registry"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    registered_by: Mapped[str] = mapped_column(String(128))
    registered_at = mapped_column(DateTime(timezone=True), default=utcnow)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _row(r: DatasetRow) -> dict[str, Any]:
    return {
        "name": r.name,
        "path": r.path,
        "sha256": r.sha256,
        "size": r.size,
        "registered_by": r.registered_by,
        "registered_at": r.registered_at.isoformat() if r.registered_at else "",
    }


class DatasetRegistry:
    """Register, look up and list named dataset files."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, DatasetRow)

    def register(self, name: str, path: Path, *, by: str, replace: bool = False) -> dict[str, Any]:
        """Record ``name`` for the file at ``path`` (already resolved and confined by the
        caller) with its digest; an existing name only with ``replace``."""
        validate_name("dataset", name)
        digest, size = file_sha256(path), path.stat().st_size
        with Session(self.engine) as s, s.begin():
            row = s.get(DatasetRow, name)
            if row is not None and not replace:
                raise Conflict(
                    f"dataset {name!r} is already registered for {row.path}",
                    hint=f"Pass --replace to point {name} at the new file, or choose another name.",
                )
            if row is None:
                row = DatasetRow(name=name)
                s.add(row)
            row.path, row.sha256, row.size = str(path), digest, size
            row.registered_by, row.registered_at = by, utcnow()
            s.flush()
            return _row(row)

    def get(self, name: str) -> dict[str, Any] | None:
        with Session(self.engine) as s:
            row = s.get(DatasetRow, name)
            return _row(row) if row is not None else None

    def list(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [_row(r) for r in s.scalars(select(DatasetRow).order_by(DatasetRow.name))]

    def resolve(self, name: str) -> Path:
        """The file registered as ``name``, whose bytes are still the ones registered."""
        entry = self.get(name)
        if entry is None:
            raise NotFound(
                f"no dataset file or registered dataset named {name!r}",
                hint=REGISTER_HINT.format(name=name) + " `agent data list` shows the names.",
            )
        path = Path(entry["path"])
        if not path.is_file():
            raise NotFound(
                f"dataset {name!r} was registered for {path}, which no longer exists",
                hint=f"Register the new file: `agent data register {name} FILE --replace`.",
            )
        digest = file_sha256(path)
        if digest != entry["sha256"]:
            raise Conflict(
                f"dataset {name!r} ({path}) changed since it was registered "
                f"(sha256 {digest[:12]}… != {entry['sha256'][:12]}…); refusing to read it by name",
                hint=f"If the change is meant, register it again: "
                f"`agent data register {name} {path} --replace`.",
            )
        return path
