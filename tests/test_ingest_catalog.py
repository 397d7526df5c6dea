"""The playback error catalog: complete, consistent, and usable as event payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contract.events import PlaybackError
from ingest.error_catalog import (
    CATEGORIES,
    ErrorCatalog,
    load_catalog,
    load_catalog_file,
    parse_catalog,
)


def test_catalog_has_every_category_and_enough_codes() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 25
    assert {e.category for e in catalog} == set(CATEGORIES)
    assert {e.severity for e in catalog} == {"fatal", "warning"}


@pytest.mark.parametrize(
    ("code", "category", "severity"),
    [
        ("NW-1001", "network", "warning"),
        ("DRM-2001", "drm", "fatal"),
        ("DRM-2002", "drm", "fatal"),
        ("CDN-3001", "cdn", "fatal"),
        ("CDN-3002", "cdn", "warning"),
        ("MAN-4001", "manifest", "fatal"),
        ("DEC-5001", "decoder", "fatal"),
        ("ENT-6001", "entitlement", "fatal"),
        ("DEV-7001", "device", "fatal"),
        ("DEV-7002", "device", "fatal"),
        ("DEV-7003", "device", "fatal"),
    ],
)
def test_well_known_codes(code: str, category: str, severity: str) -> None:
    entry = load_catalog()[code]
    assert (entry.category, entry.severity) == (category, severity)
    assert entry.meaning and entry.agent_action and entry.base_failure


def test_lookups() -> None:
    catalog = load_catalog()
    assert catalog.get("NOPE-0000") is None
    assert "CDN-3001" in catalog and "NOPE-0000" not in catalog
    with pytest.raises(KeyError):
        catalog["NOPE-0000"]
    cdn = catalog.by_category("cdn")
    assert cdn and all(e.category == "cdn" for e in cdn)
    assert all(e.is_fatal for e in catalog.by_severity("fatal"))
    oca = catalog.by_base_failure("oca_unreachable")
    assert [e.code for e in oca] == ["CDN-3001"]
    assert len(catalog.codes) == len(set(catalog.codes)) == len(catalog)
    assert "license_server_down" in catalog.base_failures


def test_every_code_fits_the_error_event_payload() -> None:
    # The stub emits catalog entries as `error` payloads: each must validate as one.
    for entry in load_catalog():
        payload = PlaybackError(
            code=entry.code,
            category=entry.category,
            severity=entry.severity,
            http_status=entry.http_status,
            message=entry.title,
        )
        assert payload.code == entry.code


def test_duplicate_codes_are_refused(tmp_path: Path) -> None:
    data = json.loads(json.dumps(load_catalog().model_dump()))
    data["errors"].append(data["errors"][0])
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="duplicate error code"):
        load_catalog_file(path)


def test_unknown_category_is_refused() -> None:
    data = load_catalog().model_dump()
    data["errors"][0]["category"] = "weather"
    with pytest.raises(ValidationError):
        parse_catalog(json.dumps(data))


def test_catalog_round_trips() -> None:
    catalog = load_catalog()
    assert ErrorCatalog.model_validate_json(catalog.model_dump_json()) == catalog
