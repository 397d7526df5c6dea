"""Personal data the console handles only in masked or hashed form.

A member's email is stored in the member directory as a salted hash (for exact lookup) and a
masked form (for display). The raw address never leaves `email_hash`: it is never indexed,
logged, audited or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from pydantic import SecretStr


def normalize_email(email: str) -> str:
    """The canonical form hashed for lookup: NFKC, trimmed, lower-cased.

    Agents type what the caller spells out; case and stray spaces must not make a miss.
    """
    return unicodedata.normalize("NFKC", email).strip().lower()


def looks_like_email(text: str) -> bool:
    """True when `text` is shaped like one address (one '@' with text on both sides)."""
    local, sep, domain = text.strip().partition("@")
    return bool(sep and local and domain and "@" not in domain and " " not in text.strip())


def email_hash(email: str, salt: SecretStr) -> str:
    """HMAC-SHA256 of the normalized email keyed with the deployment's salt, hex-encoded.

    A keyed hash (not a bare SHA-256) so that the directory cannot be reversed with a list of
    known addresses by anyone who lacks the salt.
    """
    key = salt.get_secret_value().encode("utf-8")
    return hmac.new(key, normalize_email(email).encode("utf-8"), hashlib.sha256).hexdigest()


def _mask_part(part: str) -> str:
    return f"{part[0]}***" if part else "***"


def mask_email(email: str) -> str:
    """`jane.doe@example.com` -> `j***@e***.com`: enough for a caller to recognise it."""
    norm = normalize_email(email)
    local, _, domain = norm.partition("@")
    host, dot, tld = domain.rpartition(".")
    if not dot:  # a domain without a dot: mask it whole
        return f"{_mask_part(local)}@{_mask_part(domain)}"
    return f"{_mask_part(local)}@{_mask_part(host)}.{tld}"


def mask_id(value: str, keep: int = 4) -> str:
    """Show only the last `keep` characters of an identifier (for logs and case notes)."""
    if len(value) <= keep:
        return "*" * len(value)
    return "…" + value[-keep:]
