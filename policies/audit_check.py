"""The in-order walk behind ``AuditLog.check()``: contiguity, links, hashes, head, anchor."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

GENESIS = "0" * 64
INTENT = "intent"
# The entry written when a log starts writing its head to the anchor file (policies/audit_anchor.py).
ANCHOR_STARTED = "audit.anchor_started"

_HASHED = (
    "seq",
    "ts",
    "actor",
    "actor_kind",
    "role",
    "on_behalf_of",
    "action",
    "permission",
    "decision",
    "outcome",
    "detail",
    "reason",
    "prev_hash",
)


def entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 of an entry's hashed fields. ``authenticated`` is hashed whenever it is set;
    rows written before the column existed hold NULL there and hash without it."""
    data = {k: fields[k] for k in _HASHED}
    if fields.get("authenticated") is not None:
        data["authenticated"] = bool(fields["authenticated"])
    canon = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


class AuditCheck(BaseModel):
    """The result of ``AuditLog.check()``."""

    ok: bool
    entries: int  # entries verified in order (all of them when ok)
    head_seq: int | None  # what the head row records (None: the head row is missing)
    head_hash: str | None
    first_bad_seq: int | None = None
    problem: str = ""
    # Intent rows with no completion yet: in progress, or interrupted by a crash.
    open_intents: list[int] = []
    # The anchor file outside the state DB (None: this log has none configured).
    anchor_file: str | None = None
    anchor_lines: int = 0
    anchor_newest_seq: int | None = None
    anchor_started_seq: int | None = None  # the chain's audit.anchor_started entry
    # What the chain was compared against, in one sentence.
    compared: str = ""


class Scan:
    """The in-order walk of ``check()``: contiguity, links, hashes, anchor, open intents."""

    def __init__(
        self,
        head_seq: int,
        head_hash: str,
        anchor: tuple[int, str] | None,
        anchored: dict[int, str] | None = None,
    ) -> None:
        self.head_seq, self.head_hash, self.anchor = head_seq, head_hash, anchor
        # seq -> hash from the anchor file: every entry it names must hold that hash.
        self.anchored = anchored or {}
        self.expected, self.prev, self.count = 1, GENESIS, 0
        self.bad: tuple[int, str] | None = None
        self.open_intents: set[int] = set()
        self.anchor_seen = False
        self.started_seq: int | None = None

    def step(self, d: dict[str, Any]) -> bool:
        seq = d["seq"]
        if seq != self.expected:
            self.bad = (
                self.expected,
                f"entry {self.expected} is missing (the next entry is {seq}): rows were deleted",
            )
        elif d["prev_hash"] != self.prev:
            self.bad = (
                seq,
                f"entry {seq} does not link to entry {seq - 1}: entries were edited, "
                "deleted and renumbered, or reordered",
            )
        elif entry_hash(d) != d["hash"]:
            self.bad = (seq, f"entry {seq} does not match its hash: it was edited")
        elif self.anchored.get(seq, d["hash"]) != d["hash"]:
            self.bad = (
                seq,
                f"entry {seq} is not the one the anchor file recorded (its hash there is "
                f"{self.anchored[seq][:12]}…, the chain's is {d['hash'][:12]}…): the history "
                "was rewritten",
            )
        elif self.anchor and seq == self.anchor[0]:
            self.anchor_seen = True
            if d["hash"] != self.anchor[1]:
                self.bad = (seq, f"entry {seq} is not the one anchored: the history was rewritten")
        if self.bad is not None:
            return False
        detail = d["detail"] if isinstance(d["detail"], dict) else {}
        if self.started_seq is None and d["action"] == ANCHOR_STARTED:
            self.started_seq = seq
        if d["outcome"] == INTENT:
            self.open_intents.add(seq)
        elif isinstance(detail.get("intent_seq"), int):
            self.open_intents.discard(detail["intent_seq"])
        self.prev, self.expected, self.count = d["hash"], seq + 1, self.count + 1
        return True

    def finish(self) -> None:
        last = self.expected - 1
        if last < self.head_seq:
            self.bad = (
                last + 1,
                f"the head records seq {self.head_seq} but the log ends at seq {last}: "
                f"{_span(last + 1, self.head_seq)} deleted (or the head was edited)",
            )
        elif self.head_hash != self.prev:
            self.bad = (
                self.head_seq or 1,
                f"the head hash does not match entry {last}'s hash: the head was edited or the "
                "last entry replaced",
            )
        elif self.anchor and not self.anchor_seen:
            self.bad = (self.anchor[0], f"the anchored entry {self.anchor[0]} is not in the log")


def _span(first: int, last: int) -> str:
    return f"entry {first} was" if first == last else f"entries {first}..{last} were"
