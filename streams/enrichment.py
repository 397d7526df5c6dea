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
# Derived lookups remembered per catalog (OCA ids and device platforms are few; the cap
# keeps a flood of made-up ids from growing the worker's memory).
_MAX_CACHED = 10_000
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
    # oca_id -> site and (device_type, os) -> family, as derived (per event, they were
    # a regex substitution, a lower-casing and a slug each).
    _sites: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)
    _families: dict[tuple[str, str], str] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

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

    def enrichment(self, event: Event) -> dict[str, str]:
        """What `enrich` adds to an event: its genre, OCA site and device family."""
        oca_id = event.network.oca_id
        site = self._sites.get(oca_id)
        if site is None:
            site = self._remember(self._sites, oca_id, self.oca_site(oca_id))
        device = event.device
        platform = (device.device_type, device.os)
        family = self._families.get(platform)
        if family is None:
            family = self._remember(self._families, platform, self.device_family(*platform))
        genre = self.genre(event.title_id)
        return {"genre": genre, "oca_site": site, "device_family": family}

    @staticmethod
    def _remember(cache: dict[Any, str], key: Any, value: str) -> str:
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[key] = value
        return value

    def enrich(self, event: Event) -> Event:
        """A copy of the event with `extra["enrichment"]` set (the envelope unchanged)."""
        return event.model_copy(
            update={"extra": {**event.extra, "enrichment": self.enrichment(event)}}
        )

    def enrich_parsed(self, event: Event) -> Event:
        """`enrich` without the copy, for an event its caller has just parsed.

        Sets `extra["enrichment"]` in the event's own `extra` dict. Safe only because
        nobody else holds the event yet: parsing made it, with an `extra` dict of its own
        (a new dict per validation, never a shared default). The JSON is the same as
        `enrich`'s, key order included (a player's own `enrichment` key is replaced where
        it stands, as `{**extra, "enrichment": ...}` does). The copy of the whole frozen
        model per event was most of the enrichment's cost.
        """
        event.extra["enrichment"] = self.enrichment(event)
        return event


def catalog_path(data_dir: Path) -> Path:
    """Where the worker looks for the enrichment catalog."""
    return data_dir / "catalog" / "enrichment.json"
