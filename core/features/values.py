"""Checked values for the feature store: view names, versions, entity ids, feature dicts,
event times, and the local embedding used when the caller passes none."""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidInput
from core.names import is_valid_name

DIMENSION = 64
_VERSION_MAX = 64


def hash_embedding(features: dict[str, Any], dimension: int = DIMENSION) -> list[float]:
    """A local, deterministic embedding of a feature dict (signed feature hashing): a number
    adds its value at its name's slot, a string or boolean adds +-1 at ``name=value``'s slot.
    The last slot is a constant 1 so no row has a zero vector (cosine needs a norm)."""
    vec = [0.0] * dimension
    for name, value in features.items():
        if value is None:
            continue
        token = (
            name
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else f"{name}={value}"
        )
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % (dimension - 1)
        sign = 1.0 if digest[4] & 1 else -1.0
        amount = float(value) if token == name else 1.0
        vec[slot] += sign * amount
    vec[-1] = 1.0
    return vec


def to_timestamp(value: Any) -> float:
    """Seconds since the epoch for a datetime, an ISO 8601 string or a number (naive = UTC)."""
    if value is None:
        return time.time()
    if isinstance(value, bool):
        raise InvalidInput("event_time must be a time, not a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InvalidInput("event_time must be finite")
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"event_time {value!r} is not an ISO 8601 time") from exc
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise InvalidInput(
        f"event_time must be a datetime, ISO string or number, not {type(value).__name__}"
    )


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def check_view(view: str) -> str:
    if not is_valid_name(view) or not view[-1].isalnum():
        raise InvalidInput(
            f"invalid feature view name {view!r}",
            hint="Use letters, digits, '.', '_' or '-', starting and ending with a letter or digit.",
        )
    return view


def check_version(version: str) -> str:
    version = str(version)
    if not version or len(version) > _VERSION_MAX or not is_valid_name(version):
        raise InvalidInput(f"invalid feature version {version!r}", hint="e.g. '1' or '2024-06-01'.")
    return version


def check_entity(entity_id: Any) -> str:
    if isinstance(entity_id, bool) or not isinstance(entity_id, (str, int)):
        raise InvalidInput("entity ids are strings or integers")
    text = str(entity_id)
    if not text or len(text) > 256 or "\0" in text:
        raise InvalidInput(f"invalid entity id {text[:40]!r} (1-256 characters)")
    return text


def check_features(features: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(features, dict) or not features:
        raise InvalidInput("features must be a non-empty object of name -> value")
    out = {}
    for name, value in features.items():
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidInput(f"invalid feature name {str(name)[:40]!r}")
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # numpy scalars
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"feature {name!r} is {value}: only finite numbers are stored")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise InvalidInput(
                f"feature {name!r} is a {type(value).__name__}: values are numbers, strings, "
                "booleans or null"
            )
        out[name] = value
    return out
