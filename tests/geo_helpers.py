"""Small MaxMind-format databases with known ranges, written by `mmdb-writer` in the test.

Every address a test uses has its own country, region, ASN and ISP, so picking the wrong hop
of an X-Forwarded-For chain (a proxy, a forged entry, the TCP peer) shows as a wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet


@dataclass(frozen=True)
class Place:
    """What the test databases say about one network."""

    network: str
    country: str
    region: str
    asn: int
    isp: str


CLIENT_V4 = Place("203.0.113.0/24", "US", "CA", 64501, "Client Net v4")
CLIENT_V6 = Place("2001:db8:1::/48", "DE", "BE", 64502, "Client Net v6")
PROXY = Place("192.0.2.0/24", "FR", "IDF", 64510, "Proxy Co")
FORGED = Place("198.18.0.0/15", "BR", "SP", 64520, "Forged Net")
LOOPBACK_V4 = Place("127.0.0.0/8", "NL", "NH", 64500, "Loop Net v4")
LOOPBACK_V6 = Place("::1/128", "SE", "AB", 64503, "Loop Net v6")
PLACES = (CLIENT_V4, CLIENT_V6, PROXY, FORGED, LOOPBACK_V4, LOOPBACK_V6)


def write_test_databases(directory: Path) -> tuple[Path, Path]:
    """A GeoLite2-City-shaped and a GeoLite2-ASN-shaped database for `PLACES`."""
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    for place in PLACES:
        city.insert_network(
            IPSet([place.network]),
            {
                "country": {"iso_code": place.country, "names": {"en": place.country}},
                "subdivisions": [{"iso_code": place.region, "names": {"en": place.region}}],
            },
        )
        asn.insert_network(
            IPSet([place.network]),
            {
                "autonomous_system_number": place.asn,
                "autonomous_system_organization": place.isp,
            },
        )
    city_path, asn_path = directory / "test-city.mmdb", directory / "test-asn.mmdb"
    city.to_db_file(str(city_path))
    asn.to_db_file(str(asn_path))
    return city_path, asn_path
