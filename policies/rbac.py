"""Identity and authorization: who an actor is, and what it may do.

Deny by default. Roles come from ``roles.yaml`` (parsed into strict models: a typo or a string
where a boolean belongs is an error, never a grant), never from what a caller claims.

Effective rights:
- a person holds their role's permissions;
- an agent holds its profile's role permissions *intersected* with its person's, and never a
  production right (``AGENT_NEVER``): agents may request, people act;
- a workflow principal (an automatic step such as the promotion workflow's QA re-evaluation or
  the approved executor) holds the fixed permissions listed in ``WORKFLOW_PRINCIPALS`` and acts
  on behalf of a listed person, so the audit names both.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from core.errors import InvalidInput, PermissionDenied
from policies.rights import ADMIN_PERMISSION, AGENT_NEVER, APPROVE_PERMISSION

__all__ = ["ADMIN_PERMISSION", "AGENT_NEVER", "APPROVE_PERMISSION", "Actor", "ActorKind", "Policy"]

# Named principals for automatic workflow steps. Their outcome is computed by the tool they
# call (a re-evaluation, an approved plan), never supplied by a caller.
WORKFLOW_PRINCIPALS: dict[str, frozenset[str]] = {
    # The promotion workflow before the decision: evidence, the automated QA re-evaluation and
    # opening the request. It changes nothing in production.
    "promotion-workflow": frozenset(
        {
            "registry:read",
            "evaluation:run",
            "evaluation:read",
            "approvals:read",
            "deploy:read",
            "validation:automated",
            "promotion:open",
        }
    ),
    # Runs exactly what a listed human approved (a promotion's plan, a rollback request); the
    # tools it calls refuse it anything without an approved request.
    "approval-executor": frozenset(
        {"registry:read", "approvals:read", "deploy:read", "deploy:production", "deploy:rollback"}
    ),
    # The monitoring policy (thresholds.yaml ``monitoring.auto_rollback``): rolls production
    # back to an earlier approved version when the live version breaches an SLO. Its tool
    # measures the breach itself from the prediction log; no caller supplies it.
    "monitoring-policy": frozenset(
        {"registry:read", "approvals:read", "deploy:read", "deploy:rollback"}
    ),
}


# Recording-only principals: they name automatic bookkeeping in the audit log (the first pin
# of a new home's policy, the start of the audit anchor file). No person stands behind them,
# so they are not WORKFLOW_PRINCIPALS (those act for a listed person with fixed rights): they
# hold no permission and authorize() refuses them everything. Their names are reserved.
SYSTEM_PRINCIPALS = ("policy-pin", "audit-anchor")


class ActorKind(StrEnum):
    HUMAN = "human"
    AGENT = "agent"
    WORKFLOW = "workflow"


class Actor(BaseModel, frozen=True):
    name: str
    kind: ActorKind
    role: str
    on_behalf_of: str | None = None
    # True only when the person's identity came from a credential (a personal token), not
    # from a claim such as --as.
    authenticated: bool = False
    # How an agent was reached from outside (``mcp``: an MCP client). It grants nothing and
    # takes nothing away: rights still come from the profile and the person. The audit log
    # records it (``detail.via``) and ``describe()`` names it, so a row says who asked how.
    channel: str | None = Field(default=None, max_length=32)

    @property
    def responsible_human(self) -> str:
        return self.name if self.kind == ActorKind.HUMAN else (self.on_behalf_of or "")

    def describe(self) -> str:
        if self.kind == ActorKind.AGENT:
            if self.channel:
                return (
                    f"{self.channel} client via {self.name} ({self.role}) for {self.on_behalf_of}"
                )
            return f"agent {self.name} ({self.role}) for {self.on_behalf_of}"
        if self.kind == ActorKind.WORKFLOW:
            if self.on_behalf_of is None:
                return f"system {self.name} (for no person)"
            return f"workflow {self.name} for {self.on_behalf_of}"
        return f"{self.name} ({self.role})"

    @property
    def identity(self) -> str:
        """How the responsible person's identity is known: ``token`` or ``claimed``."""
        return "token" if self.authenticated else "claimed"


def system_actor(name: str) -> Actor:
    """The actor of an automatic bookkeeping row (see ``SYSTEM_PRINCIPALS``)."""
    if name not in SYSTEM_PRINCIPALS:
        raise ValueError(f"unknown system principal {name!r}")
    return Actor(name=name, kind=ActorKind.WORKFLOW, role="System")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Strict):
    name: str = ""
    grants: str = ""
    trust: Literal["TRUSTED", "OBSERVED", "UNTRUSTED"] = "OBSERVED"
    permissions: frozenset[str] = frozenset()


class Profile(_Strict):
    name: str = ""
    role: str
    persona: str = ""


class Person(_Strict):
    name: str = ""
    role: str
    approver: StrictBool = False


class ApprovalRules(_Strict):
    # Pending and approved-but-unexecuted requests expire after this many hours.
    ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # An agent's request to roll back: one approver, a short life.
    rollback_ttl_hours: float = Field(default=2.0, gt=0, le=24 * 7)


class ValidationRules(_Strict):
    # True: approvers may decide only after a human QATester (not the requester) validated.
    require_human: StrictBool = False


class RolloutRules(_Strict):
    # Requests the candidate must have served on a canary step before it may advance.
    min_requests_per_step: int = Field(default=100, ge=0)


class AgentRules(_Strict):
    """Bounds on what one LLM agent run may ask for, whatever the model replies: a reply (or
    a run, hand-offs included) past them stops the run; the calls past the limit are not made."""

    # StrictInt: "16" or 16.0 in the file is an error, not a number.
    max_tool_calls_per_reply: StrictInt = Field(default=16, ge=1, le=1000)
    max_tool_calls_per_run: StrictInt = Field(default=64, ge=1, le=10_000)

    @model_validator(mode="after")
    def _reply_within_run(self) -> AgentRules:
        if self.max_tool_calls_per_reply > self.max_tool_calls_per_run:
            raise ValueError(
                f"max_tool_calls_per_reply ({self.max_tool_calls_per_reply}) exceeds "
                f"max_tool_calls_per_run ({self.max_tool_calls_per_run})"
            )
        return self


# Sections added after homes were pinned: left out of ``Policy.digest`` while they equal their
# defaults, so every existing pin (which records the digest of a policy without them) still
# matches; a policy that changes one gets a new digest, as any change must.
_DIGEST_OPTIONAL: dict[str, BaseModel] = {"agents": AgentRules()}


class Decision(BaseModel, frozen=True):
    allowed: bool
    reason: str


class Policy(_Strict):
    roles: dict[str, Role]
    profiles: dict[str, Profile]
    people: dict[str, Person]
    admins: tuple[str, ...] = ()
    identity: Literal["claimed", "token"] = "claimed"
    approvals: ApprovalRules = ApprovalRules()
    validation: ValidationRules = ValidationRules()
    rollout: RolloutRules = RolloutRules()
    agents: AgentRules = AgentRules()
    source: str = ""

    @model_validator(mode="after")
    def _check_references(self) -> Policy:
        for kind, entries in (("profile", self.profiles), ("person", self.people)):
            for who, entry in entries.items():
                if entry.role not in self.roles:
                    raise ValueError(f"{kind} {who} has unknown role {entry.role!r}")
        for who in self.admins:
            if who not in self.people:
                raise ValueError(f"admin {who!r} is not a listed person")
        reserved = set(self.profiles) | set(WORKFLOW_PRINCIPALS) | set(SYSTEM_PRINCIPALS)
        clash = set(self.people) & reserved
        if clash:
            raise ValueError(f"names used for both a person and an agent: {sorted(clash)}")
        return self

    @classmethod
    def from_mapping(cls, data: Any, source: str = "") -> Policy:
        if not isinstance(data, dict):
            raise InvalidInput(f"{source or 'roles file'}: expected a mapping at the top level")
        data = dict(data)
        for section in ("roles", "profiles", "people"):
            entries = data.get(section) or {}
            if not isinstance(entries, dict):
                raise InvalidInput(f"{source}: {section} must be a mapping")
            data[section] = {
                n: {**(v or {}), "name": n} if isinstance(v, dict) else v
                for n, v in entries.items()
            }
        try:
            return cls.model_validate({**data, "source": source})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in exc.errors()[:8]
            )
            raise InvalidInput(
                f"invalid policy {source}: {problems}",
                hint="Fix roles.yaml; booleans are true/false, unknown keys are refused.",
            ) from exc

    @classmethod
    def from_yaml(cls, path: Path) -> Policy:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"cannot read roles file {path}: {exc}") from exc
        return cls.from_mapping(data, str(path))

    @property
    def digest(self) -> str:
        """SHA-256 of the policy's content (not of its file's bytes or location)."""
        # mode="python" keeps frozensets as sets, so default=sorted orders them: mode="json"
        # turns them into lists in hash order, which differs between processes.
        skip = {"source"} | {
            k for k, default in _DIGEST_OPTIONAL.items() if getattr(self, k) == default
        }
        canon = json.dumps(
            self.model_dump(mode="python", exclude=skip), sort_keys=True, default=sorted
        )
        return hashlib.sha256(canon.encode()).hexdigest()

    # Identity -------------------------------------------------------------------------
    def human(self, name: str | None, *, authenticated: bool = False) -> Actor:
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
        return Actor(name=name, kind=ActorKind.HUMAN, role=person.role, authenticated=authenticated)

    def agent(
        self, profile: str, on_behalf_of: str | Actor, *, channel: str | None = None
    ) -> Actor:
        prof = self.profiles.get(profile)
        if prof is None:
            raise PermissionDenied(
                f"unknown agent profile {profile!r}",
                hint=f"Profiles: {', '.join(sorted(self.profiles))}.",
            )
        person = on_behalf_of if isinstance(on_behalf_of, Actor) else self.human(on_behalf_of)
        return Actor(
            name=profile,
            kind=ActorKind.AGENT,
            role=prof.role,
            on_behalf_of=person.responsible_human,
            authenticated=person.authenticated,
            channel=channel,
        )

    def workflow(self, principal: str, on_behalf_of: str | Actor) -> Actor:
        if principal not in WORKFLOW_PRINCIPALS:
            raise PermissionDenied(f"unknown workflow principal {principal!r}")
        person = on_behalf_of if isinstance(on_behalf_of, Actor) else self.human(on_behalf_of)
        return Actor(
            name=principal,
            kind=ActorKind.WORKFLOW,
            role="Workflow",
            on_behalf_of=person.responsible_human,
            authenticated=person.authenticated,
        )

    def approvers(self) -> list[str]:
        return sorted(p.name for p in self.people.values() if p.approver)

    def is_admin(self, name: str) -> bool:
        return name in self.admins and name in self.people

    def trust(self, actor: Actor) -> str:
        role = self.roles.get(actor.role)
        return role.trust if role else "UNTRUSTED"

    # Authorization --------------------------------------------------------------------
    def permissions(self, actor: Actor) -> frozenset[str]:
        """The actor's effective permissions (empty for anyone not on file)."""
        if actor.kind == ActorKind.HUMAN:
            person = self.people.get(actor.name)
            if person is None or person.role != actor.role:
                return frozenset()
            perms = set(self.roles[person.role].permissions)
            if person.approver:
                perms.add(APPROVE_PERMISSION)
            if self.is_admin(actor.name):
                perms.add(ADMIN_PERMISSION)
            return frozenset(perms)
        owner = self.people.get(actor.on_behalf_of or "")
        if owner is None:
            return frozenset()
        if actor.kind == ActorKind.WORKFLOW:
            return WORKFLOW_PRINCIPALS.get(actor.name, frozenset())
        prof = self.profiles.get(actor.name)
        if prof is None or prof.role != actor.role:
            return frozenset()
        person_perms = self.permissions(self.human(owner.name))
        return (self.roles[prof.role].permissions & person_perms) - AGENT_NEVER

    def authorize(self, actor: Actor, permission: str) -> Decision:
        """Deny unless the actor is on file and its effective permissions include this one."""
        if actor.kind == ActorKind.HUMAN:
            person = self.people.get(actor.name)
            if person is None:
                return Decision(allowed=False, reason=f"{actor.name!r} is not listed in roles.yaml")
            if person.role != actor.role:
                return Decision(
                    allowed=False, reason=f"{actor.name} holds role {person.role}, not {actor.role}"
                )
        elif actor.kind == ActorKind.WORKFLOW:
            if actor.name not in WORKFLOW_PRINCIPALS:
                return Decision(allowed=False, reason=f"unknown workflow principal {actor.name!r}")
        else:
            prof = self.profiles.get(actor.name)
            if prof is None:
                return Decision(allowed=False, reason=f"unknown agent profile {actor.name!r}")
            if prof.role != actor.role:
                return Decision(
                    allowed=False,
                    reason=f"profile {actor.name} has role {prof.role}, not {actor.role}",
                )
        if actor.kind != ActorKind.HUMAN and actor.on_behalf_of not in self.people:
            return Decision(
                allowed=False, reason=f"{actor.name} must act on behalf of a listed person"
            )
        if permission in self.permissions(actor):
            return Decision(allowed=True, reason=f"{actor.describe()} holds {permission}")
        return Decision(allowed=False, reason=self._denial(actor, permission))

    def _denial(self, actor: Actor, permission: str) -> str:
        if permission == APPROVE_PERMISSION:
            if actor.kind != ActorKind.HUMAN:
                return "only people approve: no agent or workflow ever holds approvals:decide"
            return f"{actor.name} is not a listed approver"
        if actor.kind == ActorKind.AGENT:
            if permission in AGENT_NEVER:
                return f"no agent holds {permission}: a person with it must act"
            if permission in self.roles[actor.role].permissions:
                owner = self.people[actor.on_behalf_of or ""]
                return (
                    f"{actor.on_behalf_of} ({owner.role}) does not hold {permission}, so an "
                    "agent acting for them does not either"
                )
            return f"role {actor.role} does not grant {permission}"
        if actor.kind == ActorKind.WORKFLOW:
            return f"workflow {actor.name} does not hold {permission}"
        if permission == ADMIN_PERMISSION:
            return f"{actor.name} is not a listed admin"
        return f"role {actor.role} does not grant {permission}"

    def require(self, actor: Actor, permission: str) -> None:
        d = self.authorize(actor, permission)
        if not d.allowed:
            raise PermissionDenied(f"{actor.describe()} may not {permission}: {d.reason}")


@lru_cache(maxsize=8)
def load_policy(policies_dir: Path) -> Policy:
    return Policy.from_yaml(Path(policies_dir) / "roles.yaml")
