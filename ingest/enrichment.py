"""What the collector derives for a player: network facts, device facts, the serving edge.

A real player knows its session, title and playback state; it does not know its ISP, ASN,
region, OCA or CDN tier, and often not its device type. The collector derives them:

- the client IP (the TCP peer, or X-Forwarded-For through `collector_trusted_proxy_hops`
  only) -> country, region, ASN and ISP from MaxMind-format databases (`maxminddb`);
- the User-Agent -> device type, OS and model/browser (`ua-parser`, a maintained parser);
- a CMCD `cdn` id or the segment host -> OCA and tier (`collector_cdn_hosts`).

Each event records which envelope facts were derived (`derived_facts`) and which nobody knew
(`unknown_facts`, value `unknown`, ASN 0); the rest were sent. The client IP is used for the
lookup only: it is never written into an event, a log line or a store.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb
from ua_parser import parse as parse_user_agent

from contract.events import UNKNOWN
from streamwatch.settings import CdnEdge, Settings

log = logging.getLogger(__name__)

# Where an event may name the host or CDN that serves its segments (SDK: top-level fields;
# CMCD: the translator puts `cdn` and `h` there).
CDN_HINT_KEYS: tuple[str, ...] = ("cdn", "cdn_host")
_GEO_FACTS = ("country", "region", "isp", "asn")
_MAX_FACT_CHARS = 128


@dataclass(frozen=True)
class ClientContext:
    """What the collector knows about the sender of one request."""

    ip: str | None
    user_agent: str | None


def client_address(remote: str | None, forwarded_for: str, trusted_proxy_hops: int) -> str | None:
    """The client's address as seen by the outermost trusted proxy (or the TCP peer).

    With N trusted proxies each appending to X-Forwarded-For, the Nth entry from the right is
    the address the outermost trusted proxy saw; entries further left are client-supplied and
    could be forged. With 0 trusted hops the header is ignored entirely.
    """
    if trusted_proxy_hops > 0:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if hops:
            return hops[-min(trusted_proxy_hops, len(hops))]
    return remote


def _parse_ip(address: str | None) -> str | None:
    if not address:
        return None
    candidate = address.strip()
    if candidate.startswith("[") and "]" in candidate:  # [v6]:port
        candidate = candidate[1 : candidate.index("]")]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


@dataclass(frozen=True)
class GeoFacts:
    """What the databases say about one address; None where they say nothing."""

    country: str | None = None
    region: str | None = None
    isp: str | None = None
    asn: int | None = None


_NO_GEO = GeoFacts()


class GeoLookup:
    """Country/region and ASN/ISP from MaxMind-format databases (either may be absent).

    Understands the MaxMind layouts (GeoLite2/GeoIP2 City, Country, ASN) and ipinfo's
    (`country`/`country_code`, `region`, `asn` as "AS123", `as_name`).
    """

    def __init__(self, city_db: Path | None, asn_db: Path | None) -> None:
        self._city = _open(city_db)
        self._asn = _open(asn_db)

    @property
    def configured(self) -> bool:
        """Whether any database is open."""
        return self._city is not None or self._asn is not None

    def lookup(self, ip: str | None) -> GeoFacts:
        """The facts for `ip` (an address string); all None without an answer."""
        address = _parse_ip(ip)
        if address is None or not self.configured:
            return _NO_GEO
        country = region = isp = None
        asn: int | None = None
        for reader in (self._city, self._asn):
            if reader is None:
                continue
            try:
                record = reader.get(address)
            except ValueError:
                continue
            if not isinstance(record, Mapping):
                continue
            country = country or _country_of(record)
            region = region or _region_of(record)
            found_asn, found_isp = _asn_of(record)
            asn = asn if asn is not None else found_asn
            isp = isp or found_isp
        return GeoFacts(country, region, isp, asn)

    def close(self) -> None:
        """Close the database files."""
        for reader in (self._city, self._asn):
            if reader is not None:
                reader.close()


def _open(path: Path | None) -> maxminddb.Reader | None:
    if path is None:
        return None
    # A configured but unreadable database is an operator error worth failing loudly for.
    return maxminddb.open_database(str(path))


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:_MAX_FACT_CHARS]
    return None


def _country_of(record: Mapping[str, Any]) -> str | None:
    for key in ("country", "registered_country"):
        value = record.get(key)
        code = _text(value.get("iso_code")) if isinstance(value, Mapping) else _text(value)
        if code and len(code) == 2:
            return code.upper()
    code = _text(record.get("country_code"))
    return code.upper() if code and len(code) == 2 else None


def _region_of(record: Mapping[str, Any]) -> str | None:
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], Mapping):
        first = subdivisions[0]
        names = first.get("names")
        name = names.get("en") if isinstance(names, Mapping) else None
        return _text(first.get("iso_code")) or _text(name)
    return _text(record.get("region"))


def _asn_of(record: Mapping[str, Any]) -> tuple[int | None, str | None]:
    number = record.get("autonomous_system_number")
    name = _text(record.get("autonomous_system_organization")) or _text(record.get("isp"))
    if number is None:
        raw = record.get("asn")
        if isinstance(raw, str) and raw.upper().startswith("AS") and raw[2:].isdigit():
            number = int(raw[2:])
        elif isinstance(raw, int):
            number = raw
        name = name or _text(record.get("as_name")) or _text(record.get("as_domain"))
    if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 2**32:
        return number, name
    return None, name


@dataclass(frozen=True)
class UaDevice:
    """Device facts read from a User-Agent; None where it says nothing."""

    device_type: str | None
    os: str | None
    device_model: str | None


_TV_OS = frozenset({"Tizen", "webOS", "Roku", "Android TV", "tvOS", "Chromecast", "Fire OS TV"})
_CONSOLE_MARKS = ("PlayStation", "Xbox", "XBOX", "Nintendo")
_MOBILE_OS = frozenset({"iOS", "iPadOS", "Android", "Windows Phone", "KaiOS", "HarmonyOS"})


@lru_cache(maxsize=8192)
def device_from_user_agent(user_agent: str) -> UaDevice:
    """Device type, OS and model (or browser) from a User-Agent, via ua-parser."""
    result = parse_user_agent(user_agent)
    os_family = result.os.family if result.os and result.os.family != "Other" else None
    device_family = (
        result.device.family if result.device and result.device.family != "Other" else None
    )
    browser = (
        result.user_agent.family
        if result.user_agent and result.user_agent.family != "Other"
        else None
    )
    os_name = None
    if os_family:
        os_name = f"{os_family} {result.os.major}" if result.os and result.os.major else os_family
    text = f"{device_family or ''} {os_family or ''}"
    device_type: str | None
    if any(mark in text for mark in _CONSOLE_MARKS):
        device_type = "console"
    elif os_family in _TV_OS or "TV" in (device_family or "").upper():
        device_type = "tv"
    elif os_family in _MOBILE_OS or device_family in ("iPhone", "iPad", "iPod"):
        device_type = "mobile"
    elif browser:
        device_type = "web"
    else:
        device_type = None
    model = device_family
    if model is None and browser:
        major = result.user_agent.major if result.user_agent else None
        model = f"{browser} {major}" if major else browser
    return UaDevice(
        device_type,
        os_name[:_MAX_FACT_CHARS] if os_name else None,
        model[:_MAX_FACT_CHARS] if model else None,
    )


def edge_for(names: Iterable[str], hosts: Mapping[str, CdnEdge]) -> CdnEdge | None:
    """The OCA and tier of the first of `names` (CDN ids or hosts) the host map knows."""
    if not hosts:
        return None
    for raw in names:
        name = raw.strip().lower().rstrip(".")
        if "://" in name:
            name = name.split("://", 1)[1]
        name = name.split("/", 1)[0].split(":", 1)[0] if not name.startswith("[") else name
        if not name:
            continue
        exact = hosts.get(name)
        if exact is not None:
            return exact
        parts = name.split(".")
        for i in range(1, len(parts)):
            wildcard = hosts.get("*." + ".".join(parts[i:]))
            if wildcard is not None:
                return wildcard
    return None


def _missing(container: Mapping[str, Any], key: str) -> bool:
    value = container.get(key)
    return value is None or value == UNKNOWN or (key == "asn" and value == 0)


class Enricher:
    """Fills the facts a v2 event left out and records where every fact came from."""

    def __init__(self, settings: Settings, geo: GeoLookup | None = None) -> None:
        self.geo = geo or GeoLookup(settings.geoip_city_db, settings.geoip_asn_db)
        self.hosts = {k.lower(): v for k, v in settings.collector_cdn_hosts.items()}
        self.dimensions = frozenset(settings.custom_dimensions)

    def close(self) -> None:
        """Release the databases."""
        self.geo.close()

    def enrich(self, obj: dict[str, Any], client: ClientContext) -> None:
        """Derive the missing facts of one wire-format event, in place; never raises.

        A v1 event sends everything (its contract requires it): nothing is derived. Values
        that are not objects are left for validation to reject.
        """
        try:
            self._enrich(obj, client)
        except Exception:  # enrichment must never lose an event
            log.exception("enrichment failed; the event keeps what it sent")

    def _enrich(self, obj: dict[str, Any], client: ClientContext) -> None:
        self._keep_configured_dimensions(obj)
        if obj.get("schema_version") == 1:
            obj["derived_facts"], obj["unknown_facts"] = [], []
            return
        # Absent and null both mean "not sent" (a v2 player may write `"network": null`).
        if obj.get("network") is None:
            obj["network"] = {}
        if obj.get("device") is None:
            obj["device"] = {}
        network, device = obj["network"], obj["device"]
        if not isinstance(network, dict) or not isinstance(device, dict):
            return
        derived: list[str] = []
        # What the sender itself says it could not measure (payload facts) is kept; the
        # envelope's facts are the collector's to account for.
        sent_unknown = obj.get("unknown_facts")
        unknown: list[str] = (
            [f for f in sent_unknown if isinstance(f, str) and f.startswith("payload.")][:16]
            if isinstance(sent_unknown, list)
            else []
        )

        geo = _NO_GEO
        if any(_missing(network, k) for k in _GEO_FACTS):
            geo = self.geo.lookup(client.ip)
        for key, value in (
            ("country", geo.country),
            ("region", geo.region),
            ("isp", geo.isp),
            ("asn", geo.asn),
        ):
            self._fill(network, "network", key, value, derived, unknown)

        edge = None
        if _missing(network, "oca_id") or _missing(network, "cdn_tier"):
            edge = edge_for(self._cdn_hints(obj), self.hosts)
        self._fill(network, "network", "oca_id", edge.oca_id if edge else None, derived, unknown)
        self._fill(
            network, "network", "cdn_tier", edge.cdn_tier if edge else None, derived, unknown
        )
        self._fill(network, "network", "connection_type", None, derived, unknown)

        ua = None
        if client.user_agent and any(
            _missing(device, k) for k in ("device_type", "os", "device_model")
        ):
            ua = device_from_user_agent(client.user_agent[:1024])
        self._fill(device, "device", "device_type", ua and ua.device_type, derived, unknown)
        self._fill(device, "device", "os", ua and ua.os, derived, unknown)
        self._fill(device, "device", "device_model", ua and ua.device_model, derived, unknown)
        self._fill(device, "device", "device_id", None, derived, unknown)
        self._fill(device, "device", "app_version", None, derived, unknown)
        obj["derived_facts"], obj["unknown_facts"] = derived, unknown

    def _keep_configured_dimensions(self, obj: dict[str, Any]) -> None:
        """Dimensions not named in Settings move to `extra` (kept, not carried further)."""
        dims = obj.get("dimensions")
        if not isinstance(dims, dict) or not dims:
            return
        unnamed = {k: v for k, v in dims.items() if k not in self.dimensions}
        if unnamed:
            obj["dimensions"] = {k: v for k, v in dims.items() if k in self.dimensions}
            extra = obj.get("extra")
            if isinstance(extra, dict):
                extra["unconfigured_dimensions"] = unnamed
            elif extra is None:
                obj["extra"] = {"unconfigured_dimensions": unnamed}

    @staticmethod
    def _fill(
        container: dict[str, Any],
        section: str,
        key: str,
        value: Any,
        derived: list[str],
        unknown: list[str],
    ) -> None:
        if not _missing(container, key):
            return  # sent by the client
        if value is not None:
            container[key] = value
            derived.append(f"{section}.{key}")
        else:
            container[key] = 0 if key == "asn" else UNKNOWN
            unknown.append(f"{section}.{key}")

    @staticmethod
    def _cdn_hints(obj: Mapping[str, Any]) -> list[str]:
        extra = obj.get("extra")
        sources = [obj, extra if isinstance(extra, Mapping) else {}]
        return [
            str(source[key])
            for source in sources
            for key in CDN_HINT_KEYS
            if isinstance(source.get(key), str)
        ]
