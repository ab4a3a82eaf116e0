"""The routing table the gateway answers from: precomputed once per revision.

Weighted picks follow a fixed smooth weighted round-robin schedule (so a 10 % canary gets
exactly one request in ten, spread evenly), and a request with a routing key always lands on
the same version for a given set of weights (CRC32 of the key into 1000 buckets).
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import reduce

from core.serving.loader import LoadedVersion

BUCKETS = 1000  # sticky-routing and weight resolution: 0.1 %


def weight_schedule(weights: list[float]) -> tuple[int, ...]:
    """Indices into ``weights`` in smooth weighted round-robin order (nginx's algorithm).

    Weights are taken at 0.1 % resolution and reduced by their GCD, so 90/10 gives a
    10-slot cycle with the minority route spread evenly rather than bunched.
    """
    units = [round(w * BUCKETS / 100) for w in weights]
    if not any(units):
        raise ValueError("at least one weight must be positive")
    g = reduce(math.gcd, [u for u in units if u])
    units = [u // g for u in units]
    total = sum(units)
    current = [0] * len(units)
    order = []
    for _ in range(total):
        for i, u in enumerate(units):
            current[i] += u
        best = max(range(len(units)), key=lambda i: current[i])
        current[best] -= total
        order.append(best)
    return tuple(order)


@dataclass
class RoutingTable:
    revision: int
    strategy: str
    live: tuple[LoadedVersion, ...]  # versions with traffic, in route order (canary last)
    weights: tuple[float, ...]
    shadows: tuple[LoadedVersion, ...] = ()
    standby: tuple[LoadedVersion, ...] = ()
    prefixes: dict[str, bytes] = field(default_factory=dict)
    _schedule: tuple[LoadedVersion, ...] = field(init=False, repr=False)
    _bounds: tuple[int, ...] = field(init=False, repr=False)
    _next: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._schedule = tuple(self.live[i] for i in weight_schedule(list(self.weights)))
        bounds, acc = [], 0
        for w in self.weights:
            acc += round(w * BUCKETS / 100)
            bounds.append(acc)
        self._bounds = tuple(bounds)

    def pick(self) -> LoadedVersion:
        """The next version in the weighted schedule (called from the event loop only)."""
        i = self._next
        self._next = i + 1 if i + 1 < len(self._schedule) else 0
        return self._schedule[i]

    def pick_sticky(self, key: bytes) -> LoadedVersion:
        """The version a routing key maps to: stable while the weights stay the same, and a
        key on the canary stays there as the canary's share grows (the canary range is last)."""
        bucket = zlib.crc32(key) % BUCKETS
        i = bisect_right(self._bounds, bucket)
        return self.live[min(i, len(self.live) - 1)]

    @property
    def versions(self) -> tuple[LoadedVersion, ...]:
        return self.live + self.shadows + self.standby
