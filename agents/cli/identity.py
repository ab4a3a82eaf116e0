"""Who is at the CLI: a personal token when there is one, else a claimed name.

The token comes from ``MODELOPS_TOKEN`` or from ``$XDG_CONFIG_HOME/modelops/token`` (default
``~/.config/modelops/token``), which must be readable by its owner only (mode 0600).
``policies.tokens.resolve_human`` applies the policy's identity mode.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PermissionDenied

if TYPE_CHECKING:
    from policies.rbac import Actor, Policy
    from policies.tokens import TokenInfo
    from tools.context import Services

TOKEN_ENV = "MODELOPS_TOKEN"


def token_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "modelops" / "token"


def read_cli_token() -> tuple[str | None, str]:
    """(the token or None, where it came from, for messages)."""
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env, TOKEN_ENV
    path = token_file()
    try:
        st = path.stat()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        raise PermissionDenied(f"cannot read the token file {path}: {exc}") from exc
    where = f"the token file {path}"
    if not stat.S_ISREG(st.st_mode):
        raise PermissionDenied(f"{where} is not a regular file", hint=f"Remove it: rm -r {path}")
    if st.st_mode & 0o077:
        raise PermissionDenied(
            f"{where} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); not using it",
            hint=f"Make it private: chmod 600 {path}",
        )
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PermissionDenied(f"cannot read {where}: {exc}") from exc
    if not text:
        raise PermissionDenied(f"{where} is empty", hint=f"Put your token in it, or remove {path}.")
    return text, where


def resolve_cli_human(
    services: Services, claimed: str | None, policy: Policy | None = None
) -> tuple[Actor, TokenInfo | None]:
    """The acting person for a CLI command, and the token that proved it (None for a claim).
    ``policy``: resolve under it instead of the policy in force (``agent policy repin``
    authorizes under the policy it restores, since none is in force)."""
    from policies.tokens import resolve_human

    token, where = read_cli_token()
    return resolve_human(
        policy if policy is not None else services.policy,
        token=token,
        claimed=claimed,
        store=lambda: services.tokens,
        token_source=where or "the token",
    )
