"""CMCD (CTA-5004 / CTA-5004-B) reports: decoding and checking, pure functions.

A CMCD report is an RFC 8941 structured-field dictionary, as the players write it with the
SVTA common-media-library encoder that hls.js 1.7 and dash.js 5 use:

    e=ps,sid="6e2f...",cid="title-1",sta=p,br=(3000),bl=(12000),mtp=(25000),sn=3,ts=1700000000000,v=2

In v2 the measurements (`br`, `bl`, `mtp`, `bsd`...) are inner lists whose items may carry an
object-type parameter (`br=(3000;ot=v 128;ot=a)`); in v1 (CDN logs) they are plain numbers.
`decode_report` accepts both and returns a `CmcdReport` of plain Python values, or raises
`CmcdError` with a machine-readable reason and a human detail that says which key broke.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import http_sf

from contract.deadletter import (
    CMCD_INVALID_VALUE,
    CMCD_SYNTAX,
)

# The value type of each key CTA-5004-B defines (common-media-library's CMCD_KEY_TYPES).
_NUMBER_LIST: Final = frozenset(
    {"ab", "bl", "br", "bsa", "bsd", "bsda", "lab", "lb", "mtp", "pb", "tab", "tb", "tbl", "tpb"}
)
_STRING_LIST: Final = frozenset({"ec", "nor"})
_INTEGER: Final = frozenset(
    {"d", "dfa", "dl", "ltc", "msd", "pt", "rc", "rtp", "sn", "ts", "ttfb", "ttfbb", "ttlb", "v"}
)
_NUMBER: Final = frozenset({"pr"})
_BOOLEAN: Final = frozenset({"bg", "bs", "nr", "su"})
_STRING: Final = frozenset(
    {"cdn", "cen", "cid", "cmsdd", "cmsds", "cs", "h", "nrr", "sid", "smrt", "url"}
)
_TOKEN: Final = frozenset({"e", "ot", "sf", "st", "sta"})

# Limits from CTA-5004-B (string keys are at most 64 characters, hostnames and urls more).
_MAX_STRING: Final = {"h": 128, "url": 2048, "nor": 2048, "cmsdd": 4096, "cmsds": 4096}
_DEFAULT_MAX_STRING: Final = 64
_MAX_CUSTOM_STRING: Final = 256

PLAYER_STATES: Final = frozenset({"s", "p", "k", "r", "a", "w", "e", "f", "q", "d"})


class CmcdError(ValueError):
    """A report that cannot be decoded: `reason` is the machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CmcdReport:
    """One decoded report: standard keys as plain values, custom keys (`a-b`) apart.

    Number lists keep the value for video (`ot=v`) or, without object types, the first item.
    Token values are plain strings; `ec` is always a list of strings (dash.js sends a number).
    """

    keys: dict[str, Any]
    custom: dict[str, Any]

    def get(self, key: str) -> Any:
        """The value of a standard key, or None."""
        return self.keys.get(key)

    def int_of(self, key: str) -> int | None:
        """A numeric key rounded to an int, or None."""
        value = self.keys.get(key)
        return None if value is None else round(value)


def decode_report(line: str) -> CmcdReport:
    """Decode one CMCD report (a structured-field dictionary); raises `CmcdError`."""
    text = line.strip()
    if not text:
        raise CmcdError(CMCD_SYNTAX, "the report is empty")
    try:
        parsed = http_sf.parse(text.encode("ascii"), tltype="dictionary")
    except UnicodeEncodeError as exc:
        raise CmcdError(
            CMCD_SYNTAX,
            f"CMCD is ASCII only (RFC 8941); non-ASCII character at column {exc.start + 1}",
        ) from exc
    except ValueError as exc:  # http_sf.StructuredFieldError is a ValueError
        raise CmcdError(CMCD_SYNTAX, f"not a CMCD dictionary: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CmcdError(CMCD_SYNTAX, "not a CMCD dictionary")
    keys: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for key, member in parsed.items():
        value = member[0] if isinstance(member, tuple) else member
        if _is_custom(key):
            custom[key] = _plain(value)
            if isinstance(custom[key], str) and len(custom[key]) > _MAX_CUSTOM_STRING:
                raise CmcdError(
                    CMCD_INVALID_VALUE, f"{key}: longer than {_MAX_CUSTOM_STRING} characters"
                )
            continue
        keys[key] = _typed(key, value)
    return CmcdReport(keys, custom)


def _is_custom(key: str) -> bool:
    # CTA-5004: custom keys carry a hyphen (reverse-DNS prefix, e.g. com.example-member).
    return "-" in key[1:-1]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item[0] if isinstance(item, tuple) else item) for item in value]
    if isinstance(value, http_sf.Token):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return value


def _typed(key: str, value: Any) -> Any:
    """Check `value` against the type CTA-5004-B gives `key`; return it as a plain value."""
    for keys, check in _CHECKS:
        if key in keys:
            return check(key, value)
    # A key this version does not define: kept as it came (forward compatible).
    return _plain(value)


def _invalid(key: str, expected: str, value: Any) -> CmcdError:
    return CmcdError(CMCD_INVALID_VALUE, f"{key}: expected {expected}, got {_kind(value)}")


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(key, "an integer", value)
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _invalid(key, "a number", value)
    return float(value)


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(key, "a boolean", value)
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or isinstance(value, http_sf.Token):
        raise _invalid(key, "a string", value)
    limit = _MAX_STRING.get(key, _DEFAULT_MAX_STRING)
    if key in ("sid", "cid", "cdn", "h", "url") and len(value) > max(limit, 128):
        raise CmcdError(CMCD_INVALID_VALUE, f"{key}: longer than {max(limit, 128)} characters")
    return str(value)


def _token(key: str, value: Any) -> str:
    if not isinstance(value, http_sf.Token):
        raise _invalid(key, "a token", value)
    token = str(value)
    if key == "sta" and token not in PLAYER_STATES:
        raise CmcdError(CMCD_INVALID_VALUE, f"sta: unknown player state {token!r}")
    return token


def _number_from_list(key: str, value: Any) -> float:
    if isinstance(value, list):
        if not value:
            raise CmcdError(CMCD_INVALID_VALUE, f"{key}: empty list")
        chosen = value[0]
        for item in value:
            params = item[1] if isinstance(item, tuple) else {}
            # Video is `;ot=v` in the spec's examples and a bare `;v` from dash.js 5.2.
            if str(params.get("ot", "")) == "v" or params.get("v") is True:
                chosen = item
                break
        number = chosen[0] if isinstance(chosen, tuple) else chosen
    else:
        number = value  # CMCD v1: a bare number
    if isinstance(number, bool) or not isinstance(number, int | Decimal):
        raise CmcdError(CMCD_INVALID_VALUE, f"{key}: expected numbers, got {_kind(number)}")
    if number < 0:
        raise CmcdError(CMCD_INVALID_VALUE, f"{key}: negative value {number}")
    return float(number)


def _string_list(key: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [(value, {})]
    out: list[str] = []
    for item in items:
        v = item[0] if isinstance(item, tuple) else item
        if isinstance(v, bool) or not isinstance(v, str | int | Decimal | http_sf.Token):
            raise CmcdError(CMCD_INVALID_VALUE, f"{key}: expected strings, got {_kind(v)}")
        out.append(str(v))
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, http_sf.Token):
        return f"the token {str(value)!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | Decimal | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# Key families in the order `_typed` tries them, each with its check.
_CHECKS: tuple[tuple[frozenset[str], Callable[[str, Any], Any]], ...] = (
    (_NUMBER_LIST, _number_from_list),
    (_INTEGER, _integer),
    (_NUMBER, _number),
    (_BOOLEAN, _boolean),
    (_STRING, _string),
    (_TOKEN, _token),
    (_STRING_LIST, _string_list),
)
