"""The real-player tooling without a browser: ladder, faults, segment server, error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ingest import player_errors
from ingest.error_catalog import load_catalog
from players import ladder as ladder_mod
from players.faults import (
    FailSegments,
    Segment,
    SessionLog,
    Throttle,
    fault_from_json,
    parse_segment,
)
from players.media_server import create_app

NAMES = ("low", "mid", "high")
BAD_FAULTS: list[dict[str, object]] = [
    {"kind": "slow"},
    {"kind": "throttle"},
    {"kind": "fail", "status": 404, "from_index": 1, "renditions": "x"},
]
TINY = ladder_mod.LadderSpec(
    renditions=(
        ladder_mod.Rendition("low", 64, 36, 60),
        ladder_mod.Rendition("high", 128, 72, 120),
    ),
    seconds=3,
)


def test_segments_are_recognised_in_both_layouts() -> None:
    assert parse_segment("hls/high/seg_004.m4s", NAMES) == Segment("high", 4)
    assert parse_segment("dash/seg-0-001.m4s", NAMES) == Segment("low", 0)
    assert parse_segment("dash/seg-2-012.m4s", NAMES) == Segment("high", 11)
    for not_media in ("hls/master.m3u8", "hls/low/index.m3u8", "hls/low/init.mp4",
                      "dash/manifest.mpd", "dash/init-1.m4s"):  # fmt: skip
        assert parse_segment(not_media, NAMES) is None


def test_faults_from_json_and_their_errors() -> None:
    assert fault_from_json({"kind": "throttle", "after_segments": 3, "for_s": 5, "kbps": 120}) == (
        Throttle(3, 5.0, 120)
    )
    fail = fault_from_json({"kind": "fail", "status": 404, "from_index": 2, "renditions": ["high"]})
    assert fail == FailSegments(404, 2, ("high",))
    assert isinstance(fail, FailSegments)
    assert fail.fails(Segment("high", 2)) and not fail.fails(Segment("high", 1))
    assert not fail.fails(Segment("low", 5))
    for bad in BAD_FAULTS:
        with pytest.raises((ValueError, KeyError)):
            fault_from_json(bad)


def test_throttle_window_opens_on_first_use_and_closes() -> None:
    log = SessionLog(fault=Throttle(after_segments=2, for_s=5, kbps=100))
    assert not log.throttle_active(100.0)  # not yet: 0 segments served
    log.segments_served = 2
    assert log.throttle_active(100.0) and log.throttle_started == 100.0
    assert log.throttle_active(104.9)
    assert not log.throttle_active(105.0)


def test_every_player_code_maps_to_a_catalog_entry() -> None:
    catalog = load_catalog()
    table = json.loads(
        (Path(player_errors.__file__).parent / "player_error_codes.json").read_text()
    )
    for player, entry in table["players"].items():
        assert entry["default"] in catalog, player
        for own, code in entry["codes"].items():
            assert code in catalog, (player, own)
            assert player_errors.catalog_code(player, own) == code
    assert player_errors.catalog_code("hls.js", "fragLoadError") == "HLS-3001"
    assert player_errors.catalog_code("dash.js", 27) == "DASH-0027"
    assert player_errors.catalog_code("dash.js", 4242) == "DASH-0000"
    assert player_errors.catalog_code("shaka", 1001) is None


@pytest.fixture(scope="module")
def tiny_ladder(tmp_path_factory: pytest.TempPathFactory) -> ladder_mod.Ladder:
    return ladder_mod.build(tmp_path_factory.mktemp("ladder"), TINY)


def test_ladder_has_every_rendition_in_hls_and_one_dash_adaptation_set(
    tiny_ladder: ladder_mod.Ladder,
) -> None:
    master = tiny_ladder.hls_master.read_text()
    assert master.count("#EXT-X-STREAM-INF") == 2
    assert "low/index.m3u8" in master and "high/index.m3u8" in master
    assert len(list((tiny_ladder.root / "hls" / "high").glob("seg_*.m4s"))) == 3
    mpd = tiny_ladder.dash_manifest.read_text()
    assert mpd.count("<AdaptationSet") == 1 and mpd.count("<Representation") == 2
    stamp = (tiny_ladder.root / "ladder.json").stat().st_mtime_ns
    again = ladder_mod.build(tiny_ladder.root, TINY)  # same recipe: reused, not remade
    assert again.hls_master == tiny_ladder.hls_master
    assert (tiny_ladder.root / "ladder.json").stat().st_mtime_ns == stamp


async def test_server_applies_each_sessions_fault(tiny_ladder: ladder_mod.Ladder) -> None:
    async with TestClient(TestServer(create_app(tiny_ladder))) as client:
        r = await client.put("/faults/bad", json={"kind": "fail", "status": 500, "from_index": 1})
        assert r.status == 200
        r = await client.put("/faults/slow", json={"kind": "throttle", "after_segments": 1,
                                                   "for_s": 60, "kbps": 100000})  # fmt: skip
        assert r.status == 200
        assert (await client.put("/faults/x", json={"kind": "nope"})).status == 400
        ok = await client.get("/m/bad/hls/high/seg_000.m4s")
        assert ok.status == 200
        failed = await client.get("/m/bad/hls/high/seg_001.m4s")
        assert failed.status == 500
        playlist = await client.get("/m/bad/hls/high/index.m3u8")  # playlists never fail
        assert playlist.status == 200
        other = await client.get("/m/clean/hls/high/seg_001.m4s")  # another session: no fault
        assert other.status == 200
        want = (tiny_ladder.root / "hls" / "low" / "seg_001.m4s").read_bytes()
        await client.get("/m/slow/hls/low/seg_000.m4s")
        paced = await client.get("/m/slow/hls/low/seg_001.m4s")
        assert paced.status == 200 and await paced.read() == want  # paced, not truncated
        log = await (await client.get("/faults/slow")).json()
        assert log["throttle_started"] is not None and log["segments_served"] == 2
        assert (await client.get("/m/bad/../../etc/passwd")).status == 404
        captured = await client.post("/capture/cmcd/t1", data=b'e=t,sid="a",ts=1,v=2\n')
        assert captured.status == 204
        assert await (await client.get("/capture/cmcd/t1")).json() == ['e=t,sid="a",ts=1,v=2\n']
        no_collector = await client.post("/collector/v1/events", data=b"[]")
        assert no_collector.status == 503
