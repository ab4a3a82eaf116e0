"""Permission names that carry a rule of their own (plain constants: cheap to import)."""

from __future__ import annotations

APPROVE_PERMISSION = "approvals:decide"
ADMIN_PERMISSION = "policy:admin"

# Rights that move production or decide for people: no LLM agent ever holds them, whatever
# its profile or its person may do. Agents may request (promotion:request, rollback:request).
AGENT_NEVER = frozenset(
    {
        APPROVE_PERMISSION,
        ADMIN_PERMISSION,
        "deploy:production",
        "deploy:rollback",
        "deploy:stop",
        "validation:automated",
    }
)
