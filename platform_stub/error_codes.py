"""Which catalog errors the stub injects, where in a session, and how often.

The meaning of a code (category, severity, HTTP status, title) comes from the shared
catalog `ingest/error_catalog.json`; the stub only adds *when* and *how often*. A code
listed here but missing from the catalog is dropped, so the stub never emits an unknown code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ingest.error_catalog import ErrorCatalog, load_catalog

# Where in a session an error can strike.
Phase = Literal["play", "manifest", "license", "segments", "first_frame", "playback"]


@dataclass(frozen=True)
class InjectedError:
    """One catalog code with the stub's base rate and the session phase it strikes in."""

    code: str
    category: str
    severity: str
    http_status: int | None
    message: str
    phase: Phase
    # Startup phases: probability per session. Playback: expected occurrences per hour.
    rate: float
    device_types: tuple[str, ...] = ()  # empty = any device

    @property
    def fatal(self) -> bool:
        """Whether this error ends the session."""
        return self.severity == "fatal"

    def payload_json(self) -> str:
        """The `payload` object of an error event, pre-encoded (it never varies)."""
        body: dict[str, object] = {
            "event_type": "error",
            "code": self.code,
            "category": self.category,
            "severity": self.severity,
            "http_status": self.http_status,
            "message": self.message,
        }
        return json.dumps(body, separators=(",", ":"))


# (code, phase, rate, device types). Rates make a normal run land at roughly 0.4 %
# start failures and 0.5-1 % playback failures, the range large services report.
_BASE_RATES: tuple[tuple[str, Phase, float, tuple[str, ...]], ...] = (
    ("ENT-6002", "play", 0.0005, ()),
    ("ENT-6001", "play", 0.0002, ()),
    ("DEV-7003", "play", 0.0003, ()),
    ("DEV-7002", "play", 0.0001, ()),
    ("DEV-7001", "play", 0.00005, ()),
    ("NW-1003", "manifest", 0.0002, ()),
    ("MAN-4001", "manifest", 0.0004, ()),
    ("MAN-4003", "manifest", 0.0002, ()),
    ("DRM-2001", "license", 0.0003, ()),
    ("DRM-2003", "license", 0.0002, ()),
    ("DRM-2002", "license", 0.0002, ("tv", "console")),
    ("CDN-3001", "segments", 0.0003, ()),
    ("DEC-5001", "first_frame", 0.0002, ()),
    ("DEC-5003", "first_frame", 0.0001, ()),
    ("NW-1002", "playback", 0.012, ()),
    ("NW-1005", "playback", 0.003, ()),
    ("CDN-3004", "playback", 0.003, ()),
    ("NW-1001", "playback", 0.6, ()),
    ("CDN-3002", "playback", 0.4, ()),
    ("CDN-3003", "playback", 0.1, ()),
    ("DEC-5002", "playback", 0.3, ()),
    ("DRM-2004", "playback", 0.05, ()),
    ("DEV-7004", "playback", 0.05, ("mobile",)),
)

# Codes the scenarios use for their faults, by the catalog's base_failure.
FAULT_BASE_FAILURES: dict[str, str] = {
    "oca_outage": "oca_unreachable",
    "oca_outage_warning": "oca_overloaded",
    "drm_license_outage": "license_server_down",
    "bad_app_release": "app_crash",
    "isp_congestion": "throughput_collapse",
}


def _injected(catalog: ErrorCatalog, code: str, phase: Phase, rate: float) -> InjectedError:
    entry = catalog[code]
    return InjectedError(
        code=entry.code,
        category=entry.category,
        severity=entry.severity,
        http_status=entry.http_status,
        message=entry.title,
        phase=phase,
        rate=rate,
    )


@dataclass(frozen=True)
class ErrorTable:
    """The stub's injected errors, resolved against the catalog."""

    base: tuple[InjectedError, ...]
    by_code: dict[str, InjectedError]
    dropped: tuple[str, ...]  # codes with a base rate that the catalog does not know
    fault_codes: dict[tuple[str, bool], str]  # (fault name, fatal) -> code

    def phase(self, phase: Phase, device_type: str) -> tuple[InjectedError, ...]:
        """Base-rate errors that can strike `device_type` in `phase`."""
        return tuple(
            e
            for e in self.base
            if e.phase == phase and (not e.device_types or device_type in e.device_types)
        )

    def fault(self, name: str, *, fatal: bool) -> InjectedError:
        """The catalog code a scenario uses for fault `name` (see FAULT_BASE_FAILURES)."""
        return self.by_code[self.fault_codes[(name, fatal)]]


def build_error_table(catalog: ErrorCatalog | None = None) -> ErrorTable:
    """Resolve the stub's base rates against the catalog (the shared one by default)."""
    catalog = catalog or load_catalog()
    base: list[InjectedError] = []
    dropped: list[str] = []
    for code, phase, rate, device_types in _BASE_RATES:
        if code not in catalog:
            dropped.append(code)
            continue
        item = _injected(catalog, code, phase, rate)
        base.append(
            InjectedError(
                item.code,
                item.category,
                item.severity,
                item.http_status,
                item.message,
                item.phase,
                item.rate,
                device_types,
            )
        )
    by_code = {e.code: _injected(catalog, e.code, "playback", 0.0) for e in catalog}
    fault_codes: dict[tuple[str, bool], str] = {}
    for name, base_failure in FAULT_BASE_FAILURES.items():
        for entry in catalog.by_base_failure(base_failure):
            fault_codes.setdefault((name, entry.is_fatal), entry.code)
    return ErrorTable(tuple(base), by_code, tuple(dropped), fault_codes)
