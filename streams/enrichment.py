"""Enrichment lookups: title genre, OCA site, device family.

The platform's catalogs (titles, OCAs, devices) would come from their owners' services; here
they come from an optional JSON catalog file, and every lookup has a sane fallback derived
from the id itself, so an unknown title or a new OCA never blocks or drops an event.

Catalog file (`<data_dir>/catalog/enrichment.json`, all keys optional)::

    {"titles": {"<title_id>": {"genre": "drama"}},
     "ocas": {"<oca_id>": {"site": "oca-comcast-us-east"}},
     "device_families": {"<device_type>/<os>": "samsung_tizen"}}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.events import Event

UNKNOWN = "unknown"
_OCA_INDEX = re.compile(r"-\d{2,}$")
_NON_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    return _NON_SLUG.sub("_", text.lower()).strip("_") or UNKNOWN


@dataclass(frozen=True)
class Catalog:
    """Lookup tables; empty tables mean every value comes from the fallbacks."""

    genres: dict[str, str] = field(default_factory=dict)
    oca_sites: dict[str, str] = field(default_factory=dict)
    device_families: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Catalog:
        """Read a catalog file; a missing file is an empty catalog."""
        if not path.exists():
            return cls()
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            genres={k: str(v.get("genre", UNKNOWN)) for k, v in doc.get("titles", {}).items()},
            oca_sites={k: str(v.get("site", k)) for k, v in doc.get("ocas", {}).items()},
            device_families={k.lower(): str(v) for k, v in doc.get("device_families", {}).items()},
        )

    def genre(self, title_id: str) -> str:
        """The title's genre, "unknown" when the catalog does not know it."""
        return self.genres.get(title_id, UNKNOWN)

    def oca_site(self, oca_id: str) -> str:
        """The site (cluster of caches) an OCA belongs to.

        Fallback: the id without its trailing instance number (`oca-isp-us-east-02` ->
        `oca-isp-us-east`), which is how appliances at one site are named.
        """
        return self.oca_sites.get(oca_id) or _OCA_INDEX.sub("", oca_id) or oca_id

    def device_family(self, device_type: str, os: str) -> str:
        """The platform family (what an app release targets): `<device_type>_<os>` fallback."""
        key = f"{device_type}/{os}".lower()
        return self.device_families.get(key) or f"{device_type}_{_slug(os)}"

    def enrich(self, event: Event) -> Event:
        """The event with `extra["enrichment"]` set (the envelope itself is unchanged)."""
        enrichment = {
            "genre": self.genre(event.title_id),
            "oca_site": self.oca_site(event.network.oca_id),
            "device_family": self.device_family(event.device.device_type, event.device.os),
        }
        return event.model_copy(update={"extra": {**event.extra, "enrichment": enrichment}})


def catalog_path(data_dir: Path) -> Path:
    """Where the worker looks for the enrichment catalog."""
    return data_dir / "catalog" / "enrichment.json"
