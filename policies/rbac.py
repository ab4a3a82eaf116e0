"""Identity and authorization: who an actor is, and whether a role grants a permission.

Deny by default. Roles come from ``roles.yaml``, never from what a caller claims: an actor's
role is looked up from the person or agent profile it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from core.errors import InvalidInput, PermissionDenied

APPROVE_PERMISSION = "approvals:decide"


class ActorKind(StrEnum):
    HUMAN = "human"
    AGENT = "agent"


class Actor(BaseModel, frozen=True):
    name: str
    kind: ActorKind
    role: str
    on_behalf_of: str | None = None

    @property
    def responsible_human(self) -> str:
        return self.name if self.kind == ActorKind.HUMAN else (self.on_behalf_of or "")

    def describe(self) -> str:
        if self.kind == ActorKind.AGENT:
            return f"agent {self.name} ({self.role}) for {self.on_behalf_of}"
        return f"{self.name} ({self.role})"


@dataclass(frozen=True)
class Role:
    name: str
    grants: str
    trust: str
    permissions: frozenset[str]


@dataclass(frozen=True)
class Profile:
    name: str
    role: str
    persona: str


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    approver: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Policy:
    roles: dict[str, Role]
    profiles: dict[str, Profile]
    people: dict[str, Person]
    source: str = field(default="")

    @classmethod
    def from_yaml(cls, path: Path) -> Policy:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"cannot read roles file {path}: {exc}") from exc
        roles = {
            n: Role(
                n,
                r.get("grants", ""),
                r.get("trust", "OBSERVED"),
                frozenset(r.get("permissions") or []),
            )
            for n, r in (data.get("roles") or {}).items()
        }
        profiles = {
            n: Profile(n, p["role"], p.get("persona", ""))
            for n, p in (data.get("profiles") or {}).items()
        }
        people = {
            n: Person(n, p["role"], bool(p.get("approver", False)))
            for n, p in (data.get("people") or {}).items()
        }
        for who, role in [(p.name, p.role) for p in profiles.values()] + [
            (p.name, p.role) for p in people.values()
        ]:
            if role not in roles:
                raise InvalidInput(f"{path}: {who} has unknown role {role!r}")
        return cls(roles, profiles, people, str(path))

    # Identity -------------------------------------------------------------------------
    def human(self, name: str | None) -> Actor:
        if not name:
            raise PermissionDenied(
                "no identity given",
                hint="Pass --as NAME or set MODELOPS_USER to a person in roles.yaml.",
            )
        person = self.people.get(name)
        if person is None:
            raise PermissionDenied(
                f"{name!r} is not a person listed in roles.yaml",
                hint=f"Listed people: {', '.join(sorted(self.people))}.",
            )
        return Actor(name=name, kind=ActorKind.HUMAN, role=person.role)

    def agent(self, profile: str, on_behalf_of: str) -> Actor:
        prof = self.profiles.get(profile)
        if prof is None:
            raise PermissionDenied(
                f"unknown agent profile {profile!r}",
                hint=f"Profiles: {', '.join(sorted(self.profiles))}.",
            )
        self.human(on_behalf_of)
        return Actor(name=profile, kind=ActorKind.AGENT, role=prof.role, on_behalf_of=on_behalf_of)

    def approvers(self) -> list[str]:
        return sorted(p.name for p in self.people.values() if p.approver)

    def trust(self, actor: Actor) -> str:
        role = self.roles.get(actor.role)
        return role.trust if role else "UNTRUSTED"

    # Authorization --------------------------------------------------------------------
    def authorize(self, actor: Actor, permission: str) -> Decision:
        """Deny unless the actor is known, its role is the one on file, and the role grants it."""
        if actor.kind == ActorKind.HUMAN:
            person = self.people.get(actor.name)
            if person is None:
                return Decision(False, f"{actor.name!r} is not listed in roles.yaml")
            if person.role != actor.role:
                return Decision(False, f"{actor.name} holds role {person.role}, not {actor.role}")
        else:
            prof = self.profiles.get(actor.name)
            if prof is None:
                return Decision(False, f"unknown agent profile {actor.name!r}")
            if prof.role != actor.role:
                return Decision(
                    False, f"profile {actor.name} has role {prof.role}, not {actor.role}"
                )
            if not actor.on_behalf_of or actor.on_behalf_of not in self.people:
                return Decision(False, f"agent {actor.name} must act on behalf of a listed person")
        if permission == APPROVE_PERMISSION:
            if actor.kind != ActorKind.HUMAN:
                return Decision(False, "agents can never approve")
            if not self.people[actor.name].approver:
                return Decision(False, f"{actor.name} is not a listed approver")
            return Decision(True, f"{actor.name} is a listed approver")
        role = self.roles[actor.role]
        if permission in role.permissions:
            return Decision(True, f"role {role.name} grants {permission}")
        return Decision(False, f"role {role.name} does not grant {permission}")

    def require(self, actor: Actor, permission: str) -> None:
        d = self.authorize(actor, permission)
        if not d.allowed:
            raise PermissionDenied(f"{actor.describe()} may not {permission}: {d.reason}")


@lru_cache(maxsize=8)
def load_policy(policies_dir: Path) -> Policy:
    return Policy.from_yaml(Path(policies_dir) / "roles.yaml")
