"""Who is looking: the support agent's identity.

Every lookup needs an agent identity; without one it is refused (and the refusal audited).
Identity comes from one of:

- a trusted request header set by an authenticating proxy in front of the console (e.g.
  `X-Forwarded-User` from an OIDC proxy), when `support_trusted_header` is configured;
- the console's own login, checked against salted PBKDF2 hashes in the agents file
  (`streamwatch support add-agent NAME` writes it);
- the CLI's `--agent NAME` (an operator on the machine, who can read the indices anyway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streamwatch.settings import Settings

IdentitySource = Literal["header", "login", "cli"]

# Agent names are short printable identifiers (user names or emails from the proxy); anything
# else is rejected rather than written into the audit trail.
_AGENT_NAME = re.compile(r"^[A-Za-z0-9._@+\-]{1,128}$")

_PBKDF2_ITERATIONS = 200_000


@dataclass(frozen=True)
class AgentIdentity:
    """An authenticated support agent."""

    name: str
    source: IdentitySource


def valid_agent_name(name: str) -> bool:
    """True for a name fit for the audit trail."""
    return bool(_AGENT_NAME.fullmatch(name))


def agent_from_name(name: str | None, source: IdentitySource) -> AgentIdentity | None:
    """An identity for a trusted name, None when absent or malformed."""
    if name is None:
        return None
    name = name.strip()
    return AgentIdentity(name, source) if valid_agent_name(name) else None


def agent_from_headers(headers: Mapping[str, str], settings: Settings) -> AgentIdentity | None:
    """The agent named by the configured trusted header, if that header is configured and set.

    Header names are case-insensitive in HTTP, so the lookup is too.
    """
    header = settings.support_trusted_header
    if not header:
        return None
    wanted = header.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return agent_from_name(value, "header")
    return None


# --- the console's own login -------------------------------------------------------------


def hash_password(password: str, *, iterations: int = _PBKDF2_ITERATIONS) -> str:
    """`pbkdf2_sha256$ITER$SALT$HASH` (base64) for the agents file."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check `password` against a `hash_password` string in constant time."""
    try:
        scheme, iters, salt_b64, hash_b64 = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, int(iters))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def agents_file(settings: Settings) -> Path:
    """Where the console's agent credentials live."""
    return settings.support_agents_file or settings.data_dir / "support" / "agents.json"


def load_agents(path: Path) -> dict[str, str]:
    """{agent name: password hash}; empty when the file does not exist or is unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if valid_agent_name(str(k))}


def save_agent(path: Path, name: str, password: str) -> None:
    """Add or replace one agent's credentials (file mode 0600: it holds password hashes)."""
    if not valid_agent_name(name):
        raise ValueError(f"agent name must match {_AGENT_NAME.pattern}")
    agents = load_agents(path)
    agents[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(agents, indent=2, sort_keys=True), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def login(name: str, password: str, settings: Settings) -> AgentIdentity | None:
    """The agent when `name`/`password` match the agents file, else None."""
    stored = load_agents(agents_file(settings)).get(name.strip())
    if stored is None or not verify_password(password, stored):
        return None
    return AgentIdentity(name.strip(), "login")
