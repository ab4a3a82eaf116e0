"""Per-process request guards: a token-bucket rate limit, the Idempotency-Key store, and the
console's sessions (server-side, keyed by a random cookie value; the token itself is never
kept, only its id, so a revoked or expired token ends its sessions at the next request).

All three live in the server process's memory: one ``agent serve`` process is the unit (a
restart forgets idempotency keys and sessions; approvals stay single-use in the state DB).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.server.responses import ApiError

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft says
IDEMPOTENCY_TTL_S = 24 * 3600
IDEMPOTENCY_WAIT_S = 120.0


class RateLimiter:
    """``per_minute`` requests a minute per key, with bursts up to ``burst``."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one request from ``key``'s bucket, or raise 429 with Retry-After."""
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                wait = (1.0 - tokens) / self.rate
                self._buckets[key] = (tokens, now)
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many chat requests for this token; retry in {wait:.1f} s",
                    "The server limits chat requests per personal token (agent serve --chat-rate).",
                    headers={"Retry-After": str(max(1, int(wait + 0.999)))},
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle buckets (they would be full again)
                cutoff = now - self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] >= cutoff}


@dataclass
class _Entry:
    fingerprint: str
    created: float
    done: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    body: Any = None


def fingerprint(route: str, payload: Any) -> str:
    canon = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{route}\n{canon}".encode()).hexdigest()


class IdempotencyStore:
    """A mutating request sent twice with the same Idempotency-Key acts once: the second gets
    the first one's response (also while the first is still running: it waits for it)."""

    def __init__(self, ttl_s: float = IDEMPOTENCY_TTL_S, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def run(
        self, person: str, key: str | None, print_: str, act: Callable[[], Any]
    ) -> tuple[int, Any, bool]:
        """(status, body, replayed). ``act`` returns the body of a 200 or raises ApiError."""
        if key is None:
            return _outcome(act)
        if not IDEMPOTENCY_KEY.match(key):
            raise ApiError(
                422,
                "invalid_input",
                "Idempotency-Key must be 1-255 visible ASCII characters",
                "Send a fresh random value (e.g. a UUID) per intended action.",
            )
        slot = (person, key)
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            entry = self._entries.get(slot)
            owner = entry is None
            if owner:
                entry = self._entries[slot] = _Entry(print_, now)
        if entry.fingerprint != print_:
            raise ApiError(
                422,
                "invalid_input",
                "this Idempotency-Key was already used for a different request",
                "Use a new Idempotency-Key for a new action.",
            )
        if not owner:
            if not entry.done.wait(IDEMPOTENCY_WAIT_S):
                raise ApiError(409, "conflict", "the first request with this key is still running")
            return entry.status, entry.body, True
        try:
            status, body, _ = _outcome(act)
        except BaseException:
            # A bug (500): forget the key so a retry runs again rather than replaying nothing.
            with self._lock:
                self._entries.pop(slot, None)
            entry.status, entry.body = 500, None
            entry.done.set()
            raise
        entry.status, entry.body = status, body
        entry.done.set()
        return status, body, False

    def _expire(self, now: float) -> None:
        while self._entries:
            slot, first = next(iter(self._entries.items()))
            if now - first.created < self.ttl_s and len(self._entries) < self.max_entries:
                break
            if not first.done.is_set():
                break
            self._entries.popitem(last=False)


def _outcome(act: Callable[[], Any]) -> tuple[int, Any, bool]:
    try:
        return 200, act(), False
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return exc.status, exc.body(), False


@dataclass
class ConsoleSession:
    sid: str
    person: str
    token_id: str
    csrf: str
    expires: float


class SessionStore:
    """Console sign-ins: cookie value -> person, token id and the session's CSRF token."""

    def __init__(self, lifetime_s: float = 12 * 3600) -> None:
        self.lifetime_s = lifetime_s
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def create(self, person: str, token_id: str, token_expires_in_s: float) -> ConsoleSession:
        life = max(1.0, min(self.lifetime_s, token_expires_in_s))
        s = ConsoleSession(
            sid=secrets.token_urlsafe(32),
            person=person,
            token_id=token_id,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + life,
        )
        with self._lock:
            now = time.time()
            self._sessions = {k: v for k, v in self._sessions.items() if v.expires > now}
            self._sessions[s.sid] = s
        return s

    def get(self, sid: str | None) -> ConsoleSession | None:
        if not sid:
            return None
        with self._lock:
            s = self._sessions.get(sid)
            if s is not None and s.expires <= time.time():
                self._sessions.pop(sid, None)
                return None
            return s

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def end_for_token(self, token_id: str) -> None:
        with self._lock:
            self._sessions = {k: v for k, v in self._sessions.items() if v.token_id != token_id}


def same_secret(given: str | None, expected: str) -> bool:
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())
