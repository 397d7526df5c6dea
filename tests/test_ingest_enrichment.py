"""What the collector derives (contract v2), through the collector and real Kafka.

Clients are IPv4 and IPv6, reach the collector directly or behind 1 and 2 trusted proxies, or
forge X-Forwarded-For; the test databases give every address its own country, region, ASN and
ISP, so the wrong hop shows as the wrong answer. Device facts come from the User-Agent, the
OCA and tier from the CDN host map. Without a database the facts are `unknown` and the event
is accepted.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from contract.events import EVENT_ADAPTER
from ingest.collector import serve
from ingest.enrichment import GeoLookup, client_address, device_from_user_agent
from streamwatch import topics
from streamwatch.settings import CdnEdge, Settings
from tests.geo_helpers import (
    CLIENT_V4,
    CLIENT_V6,
    LOOPBACK_V4,
    LOOPBACK_V6,
    Place,
    write_test_databases,
)
from tests.test_ingest_collector import consume, event_id_of

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36"
)
TIZEN_TV = (
    "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "76.0.3809.146/6.0 TV Safari/537.36"
)


def player_event(**overrides: Any) -> dict[str, Any]:
    """A v2 event as a web player sends it: no network, no device facts."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "heartbeat",
        "schema_version": 2,
        "event_time": "2026-01-01T00:00:00Z",
        "session_id": f"s-{uuid.uuid4().hex[:10]}",
        "title_id": "t-1",
        "payload": {"bitrate_kbps": 3000, "buffer_ms": 9000, "throughput_kbps": None},
    }
    event.update(overrides)
    return event


@pytest.fixture(scope="module")
def geo_dbs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_test_databases(tmp_path_factory.mktemp("mmdb"))


# (collector host, trusted hops, X-Forwarded-For or None, where the client really is)
CASES: list[tuple[str, str, int, str | None, Place]] = [
    ("v4 direct", "127.0.0.1", 0, None, LOOPBACK_V4),
    ("v6 direct", "::1", 0, None, LOOPBACK_V6),
    ("v4 direct, spoofed XFF ignored", "127.0.0.1", 0, "203.0.113.7", LOOPBACK_V4),
    ("v4 behind 1 proxy", "127.0.0.1", 1, "203.0.113.7", CLIENT_V4),
    ("v6 behind 1 proxy", "127.0.0.1", 1, "2001:db8:1::5", CLIENT_V6),
    ("v4 behind 1 proxy, forged entry", "127.0.0.1", 1, "198.18.0.9, 203.0.113.7", CLIENT_V4),
    ("v4 behind 2 proxies", "127.0.0.1", 2, "203.0.113.7, 192.0.2.10", CLIENT_V4),
    ("v6 behind 2 proxies", "::1", 2, "2001:db8:1::5, 192.0.2.10", CLIENT_V6),
    (
        "v4 behind 2 proxies, forged entry",
        "127.0.0.1",
        2,
        "198.18.0.9, 203.0.113.7, 192.0.2.10",
        CLIENT_V4,
    ),
]


async def test_client_address_gives_the_right_network_facts(
    settings: Settings, kafka_bootstrap: str, geo_dbs: tuple[Path, Path]
) -> None:
    city, asn = geo_dbs
    expected: dict[str, tuple[str, Place]] = {}
    for name, host, hops, forwarded, place in CASES:
        scoped = settings.model_copy(
            update={
                "geoip_city_db": city,
                "geoip_asn_db": asn,
                "collector_trusted_proxy_hops": hops,
            }
        )
        event = player_event()
        headers = {"Content-Type": "application/json", "User-Agent": CHROME_LINUX}
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded
        async with (
            serve(scoped, host=host) as url,
            aiohttp.ClientSession() as http,
            http.post(f"{url}/v1/events", json=[event], headers=headers) as resp,
        ):
            answer = await resp.json()
        assert resp.status == 200 and answer["accepted"] == 1, (name, answer)
        expected[event["event_id"]] = (name, place)

    raw = await consume(kafka_bootstrap, settings.topic(topics.RAW), set(expected), event_id_of)
    assert set(raw) == set(expected)
    for event_id, (name, place) in expected.items():
        stored = EVENT_ADAPTER.validate_json(raw[event_id][1])
        net = stored.network
        assert (net.country, net.region, net.asn, net.isp) == (
            place.country,
            place.region,
            place.asn,
            place.isp,
        ), name
        assert {"network.country", "network.region", "network.asn", "network.isp"} <= set(
            stored.derived_facts
        ), name
        assert stored.device.device_type == "web" and stored.device.os == "Linux", name
        # The address itself is stored nowhere in the event.
        text = raw[event_id][1].decode()
        for address in ("127.0.0.1", "::1", "203.0.113.7", "2001:db8:1::5", "192.0.2.10"):
            assert f'"{address}"' not in text, name


async def test_without_a_database_facts_are_unknown_and_the_event_is_accepted(
    settings: Settings, kafka_bootstrap: str
) -> None:
    event = player_event()
    async with (
        serve(settings) as url,
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/v1/events",
            json=[event],
            headers={"Content-Type": "application/json"},
            skip_auto_headers=["User-Agent"],
        ) as resp,
    ):
        answer = await resp.json()
    assert resp.status == 200 and answer == {"accepted": 1, "rejected": []}
    raw = await consume(
        kafka_bootstrap, settings.topic(topics.RAW), {event["event_id"]}, event_id_of
    )
    stored = json.loads(raw[event["event_id"]][1])
    assert stored["network"] == {
        "country": "unknown",
        "region": "unknown",
        "isp": "unknown",
        "asn": 0,
        "oca_id": "unknown",
        "cdn_tier": "unknown",
        "connection_type": "unknown",
    }
    assert stored["device"]["device_type"] == "unknown"  # no User-Agent either
    assert stored["derived_facts"] == []
    assert set(stored["unknown_facts"]) >= {"network.country", "network.asn", "device.os"}


def test_sent_facts_win_and_v1_events_derive_nothing(geo_dbs: tuple[Path, Path]) -> None:
    from ingest.enrichment import ClientContext, Enricher

    city, asn = geo_dbs
    enricher = Enricher(Settings(geoip_city_db=city, geoip_asn_db=asn))
    client = ClientContext("203.0.113.7", CHROME_LINUX)
    sent = player_event(network={"country": "JP", "isp": "Own ISP"}, device={"os": "Plan 9"})
    enricher.enrich(sent, client)
    assert sent["network"]["country"] == "JP" and sent["network"]["isp"] == "Own ISP"
    assert sent["network"]["region"] == "CA" and sent["network"]["asn"] == 64501
    assert sent["device"]["os"] == "Plan 9" and sent["device"]["device_type"] == "web"
    assert "network.country" not in sent["derived_facts"]
    assert "network.region" in sent["derived_facts"]
    from testkit.sample_events import sample_event

    nulls = player_event(network=None, device=None)
    enricher.enrich(nulls, client)
    assert EVENT_ADAPTER.validate_python(nulls).network.country == "US"
    v1 = sample_event()
    before = json.loads(json.dumps(v1))
    enricher.enrich(v1, client)
    assert v1["network"] == before["network"] and v1["derived_facts"] == []
    enricher.close()


def test_device_from_user_agent_and_edge_from_host_map() -> None:
    from ingest.enrichment import edge_for

    assert device_from_user_agent(CHROME_LINUX).device_type == "web"
    assert device_from_user_agent(CHROME_LINUX).device_model == "Chrome 131"
    phone = device_from_user_agent(ANDROID_PHONE)
    assert (phone.device_type, phone.os) == ("mobile", "Android 13")
    assert device_from_user_agent(TIZEN_TV).device_type == "tv"
    hosts = {
        "edge-7.cdn.example.net": CdnEdge(oca_id="oca-ams-007"),
        "*.origin.example.net": CdnEdge(oca_id="origin-eu", cdn_tier="origin"),
        "akamai": CdnEdge(oca_id="akamai-edge"),
    }
    assert (
        edge_for(["https://edge-7.cdn.example.net/v/seg1.m4s"], hosts)
        == hosts["edge-7.cdn.example.net"]
    )
    assert edge_for(["a.b.origin.example.net"], hosts) == hosts["*.origin.example.net"]
    assert edge_for(["akamai"], hosts) == hosts["akamai"]
    assert edge_for(["elsewhere.example.org"], hosts) is None


def test_client_address_takes_forwarded_for_only_through_trusted_hops(
    geo_dbs: tuple[Path, Path],
) -> None:
    assert client_address("10.0.0.1", "203.0.113.7", 0) == "10.0.0.1"
    assert client_address("10.0.0.1", "6.6.6.6, 203.0.113.7", 1) == "203.0.113.7"
    assert client_address("10.0.0.1", "6.6.6.6, 203.0.113.7, 192.0.2.1", 2) == "203.0.113.7"
    assert client_address("10.0.0.1", "", 2) == "10.0.0.1"
    city, asn = geo_dbs
    geo = GeoLookup(city, asn)
    assert geo.lookup("not-an-address").country is None
    assert geo.lookup("[2001:db8:1::5]:443").country == "DE"
    geo.close()
